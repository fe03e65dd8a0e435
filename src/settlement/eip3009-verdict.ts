import type { Hex, PublicClient, TransactionReceipt } from "viem";
import { hasCode } from "../chain/code.js";
import { unknownOnTransportFailure } from "../chain/rpc-errors.js";
import { eip3009Abi } from "../exact-evm/abi.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { SettlementRow } from "../store/schema.js";
import type { ReceiptVerdict } from "./chain-verdict.js";
import { authorizationUsedTxHashes, failureIsPayersDoing, paymentLogOf, type ExpectedTransfer } from "./receipt.js";

/** How far back a front-runner's AuthorizationUsed log is looked for (bounded getLogs range). */
const frontRunLookbackBlocks = 1_000n;

/**
 * The verdict on an EIP-3009 row's receipt (ARCHITECTURE.md §1.2, *Verdict*): paid by the
 * Transfer(from → payTo, value) paired with this authorization's AuthorizationUsed in our
 * transaction; else paid by a front-runner's transaction that used the same authorization for the
 * same payment; else failed — with the authorization unused (reclaimable) when the token says so.
 */
export const eip3009Verdict: ReceiptVerdict = async (client, row, receipt, expected, { gasUsed, gasCostWei }) => {
  if (paymentLogOf(receipt, expected, row.nonce as Hex)) {
    return { kind: "paid", txHash: receipt.transactionHash, blockNumber: receipt.blockNumber, gasUsed, gasCostWei };
  }
  // A fault while searching is "not known yet": the row stays unfinished and is judged again
  // (thrown, it reached the identical retry that reconciles the row as a 500).
  const frontRunner = await unknownOnTransportFailure(findPayingTransaction(client, row, expected, receipt.blockNumber).then((found) => found ?? ("none" as const)));
  if (frontRunner === undefined) return { kind: "unknown" };
  if (frontRunner !== "none") return { ...frontRunner, gasUsed, gasCostWei };
  // Not paid. Whether the authorization is still unused decides if the payment may be tried again;
  // without an answer the verdict waits (an honest payment must not end failed while unused).
  // And whether the payer's address had code when it failed: only then can its own code be why.
  const [used, payerHadCode] = await Promise.all([
    unknownOnTransportFailure(client.readContract({ address: expected.token, abi: eip3009Abi, functionName: "authorizationState", args: [expected.from, row.nonce as Hex] })),
    unknownOnTransportFailure(hasCode(client, expected.from)),
  ]);
  if (used === undefined || payerHadCode === undefined) return { kind: "unknown" };
  const { reason, message } = whyNotPaid(receipt, expected, row);
  const why = used ? `${message}; the authorization's nonce is used on chain without paying payTo, so it cannot be settled again` : message;
  return { kind: "failed", reason, message: why, gasCostWei, authorizationUnused: !used, payerHadCode, payersDoing: failureIsPayersDoing(row, receipt, { authorizationUsed: used }) };
};

/**
 * A receipt that does not pay, in 2.27's words: our call reverted — the transaction, or this
 * authorization's call inside a batch (no AuthorizationUsed of it: BatchSettler let it fail alone) —
 * is `invalid_exact_evm_transaction_failed`; it ran without reverting but no paired
 * Transfer(from → payTo, value) came with it (a token that returns quietly, ARCHITECTURE.md pitfall
 * 12) is `invalid_exact_evm_transfer_event_mismatch`.
 */
function whyNotPaid(receipt: TransactionReceipt, expected: ExpectedTransfer, row: SettlementRow): { reason: ReasonCode; message: string } {
  if (receipt.status !== "success") return { reason: ReasonCode.transactionFailed, message: "the settlement transaction reverted" };
  const callRan = authorizationUsedTxHashes(receipt.logs, expected.token, expected.from, row.nonce as Hex).length > 0;
  if (row.txSettlements > 1 && !callRan) {
    return {
      reason: ReasonCode.transactionFailed,
      message: `this authorization's call failed inside the batch transaction of ${row.txSettlements} settlements (the others are unaffected): nothing was paid`,
    };
  }
  return {
    reason: ReasonCode.transferEventMismatch,
    message: callRan
      ? "the token logged this authorization as used but no Transfer(from → payTo, value) right after it: nothing was paid"
      : "the transaction succeeded but the token logged no Transfer(from → payTo, value): nothing was paid",
  };
}

/**
 * Our transaction did not pay. If the authorization was used by another transaction that did pay
 * payTo the value, the payee has its money: report that transaction (ARCHITECTURE.md pitfall 10, front-running).
 */
async function findPayingTransaction(
  client: PublicClient,
  row: SettlementRow,
  expected: ExpectedTransfer,
  atBlock: bigint,
): Promise<{ kind: "paid"; txHash: Hex; blockNumber: bigint } | undefined> {
  const logs = await client.getContractEvents({
    address: expected.token,
    abi: eip3009Abi,
    eventName: "AuthorizationUsed",
    args: { authorizer: expected.from, nonce: row.nonce as Hex },
    fromBlock: atBlock > frontRunLookbackBlocks ? atBlock - frontRunLookbackBlocks : 0n,
    toBlock: atBlock,
  });
  for (const hash of authorizationUsedTxHashes(logs, expected.token, expected.from, row.nonce as Hex)) {
    // Only the Transfer paired with *this* authorization's AuthorizationUsed pays it: a front-runner
    // that used the nonce for another payee, next to some other payment's Transfer, paid nothing here.
    const receipt = await client.getTransactionReceipt({ hash });
    if (paymentLogOf(receipt, expected, row.nonce as Hex)) return { kind: "paid", txHash: hash, blockNumber: receipt.blockNumber };
  }
  return undefined;
}
