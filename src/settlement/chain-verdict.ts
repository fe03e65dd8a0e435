import {
  TransactionReceiptNotFoundError,
  WaitForTransactionReceiptTimeoutError,
  type Address,
  type Hex,
  type PublicClient,
  type TransactionReceipt,
} from "viem";
import { isTransportFailure } from "../chain/rpc-errors.js";
import { hasCode } from "../chain/code.js";
import { eip3009Abi } from "../exact-evm/abi.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { SettlementRow } from "../store/schema.js";
import { authorizationUsedTxHashes, paymentLogOf, type ExpectedTransfer } from "./receipt.js";
import { permit2Verdict } from "./permit2-verdict.js";

export type ChainVerdict =
  /** gasCostWei: what our own transaction cost the sponsor (also when a front-runner paid). */
  | { kind: "paid"; txHash: Hex; blockNumber: bigint; gasUsed: bigint; gasCostWei: bigint }
  /**
   * authorizationUnused: the chain (read after the receipt) says nobody used this authorization —
   * our call failed on its own (a batch neighbour burnt the gas, the payer's code misbehaved, the
   * balance moved): the payment may be settled again, so the row must stay reclaimable.
   */
  | { kind: "failed"; reason: ReasonCode; message: string; gasCostWei?: bigint; authorizationUnused: boolean; payerHadCode: boolean }
  | { kind: "unknown" };

/** How far back a front-runner's AuthorizationUsed log is looked for (bounded getLogs range). */
const frontRunLookbackBlocks = 1_000n;

export function expectedTransferOf(row: SettlementRow): ExpectedTransfer {
  return { token: row.asset as Address, from: row.payer as Address, to: row.payTo as Address, valueAtomic: BigInt(row.valueAtomic) };
}

/**
 * What the chain says about a row's transaction: paid (by our tx, or by a front-runner who
 * submitted the same authorization first), failed, or not known yet. Waits at most `waitMs`.
 * `known`: the receipt of the row's transaction, already in hand (a sync send answers with it; a
 * batch's rows share one): read as it is, nothing asked for it. A receipt of any other hash is ignored.
 */
export async function chainVerdict(client: PublicClient, row: SettlementRow, waitMs: number, known?: TransactionReceipt): Promise<ChainVerdict> {
  const inHand = known && row.txHash && known.transactionHash.toLowerCase() === row.txHash.toLowerCase() ? known : undefined;
  const receipt = inHand ?? (await receiptWithin(client, row.txHash as Hex, waitMs)) ?? (await replacedReceipt(client, row));
  if (!receipt) return { kind: "unknown" };
  const expected = expectedTransferOf(row);
  // A batch transaction's cost is shared evenly by the settlements it carries.
  const share = BigInt(Math.max(1, row.txSettlements));
  const gasUsed = receipt.gasUsed / share;
  const gasCostWei = (receipt.gasUsed * receipt.effectiveGasPrice) / share;
  if (row.transferMethod === "permit2") return permit2Verdict(client, row, receipt, expected, { gasUsed, gasCostWei });
  if (paymentLogOf(receipt, expected, row.nonce as Hex)) {
    return { kind: "paid", txHash: receipt.transactionHash, blockNumber: receipt.blockNumber, gasUsed, gasCostWei };
  }
  // A fault while searching is "not known yet": the row stays unfinished and is judged again
  // (thrown, it reached the identical retry that reconciles the row as a 500).
  const frontRunner = await unknownOnTransportFailure(findPayingTransaction(client, row, expected, receipt.blockNumber).then((found) => found ?? "none" as const));
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
  return { kind: "failed", reason, message: why, gasCostWei, authorizationUnused: !used, payerHadCode };
}

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

/** The read's answer, or undefined when the RPC could not be asked (the verdict then waits). */
async function unknownOnTransportFailure<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (isTransportFailure(error)) return undefined;
    throw error;
  }
}

/** After fee bumps, the earlier transaction at the same nonce may be the one that was mined. */
async function replacedReceipt(client: PublicClient, row: SettlementRow): Promise<TransactionReceipt | undefined> {
  for (const hash of row.replacedTxHashes ?? []) {
    const receipt = await receiptWithin(client, hash as Hex, 0);
    if (receipt) return receipt;
  }
  return undefined;
}

async function receiptWithin(client: PublicClient, hash: Hex, waitMs: number): Promise<TransactionReceipt | undefined> {
  try {
    // Ask once straight away: on automine and fast L2s the receipt often exists before any new-block poll.
    const immediate = await client.getTransactionReceipt({ hash }).catch((error: unknown) => {
      if (error instanceof TransactionReceiptNotFoundError) return undefined;
      throw error;
    });
    if (immediate || waitMs <= 0) return immediate;
    // viem has no default timeout here: always pass one (ARCHITECTURE.md pitfall 4).
    return await client.waitForTransactionReceipt({ hash, timeout: waitMs, pollingInterval: 100, retryCount: 0 });
  } catch (error) {
    if (error instanceof TransactionReceiptNotFoundError || error instanceof WaitForTransactionReceiptTimeoutError) return undefined;
    if (isTransportFailure(error)) return undefined;
    throw error;
  }
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
