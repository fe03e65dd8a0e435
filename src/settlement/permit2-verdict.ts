import { decodeFunctionData, type Address, type Hex, type PublicClient, type TransactionReceipt } from "viem";
import { hasCode } from "../chain/code.js";
import { isTransportFailure } from "../chain/rpc-errors.js";
import { permit2Address, x402ExactPermit2ProxyAddress } from "../contracts/permit2.js";
import { exactPermit2ProxyAbi, permit2Abi, permit2TokenAbi } from "../permit2/abi.js";
import { nonceBitSet } from "../permit2/chain-state.js";
import { proxyOf } from "../permit2/checks.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { SettlementRow } from "../store/schema.js";
import type { ChainVerdict } from "./chain-verdict.js";
import { permit2PaymentLogOf, type ExpectedTransfer } from "./receipt.js";

/** How far back a front-runner's Transfer is looked for, and how many candidate transactions are read at most. */
const frontRunLookbackBlocks = 1_000n;
const frontRunCandidatesMax = 16;

/**
 * The verdict on a Permit2 row's receipt (ARCHITECTURE.md §1.2, *Verdict*): paid by the
 * Transfer(owner → payTo, value) of the proxy call in our transaction (receipt.ts
 * permit2PaymentLogOf), with the nonce's bit set at that block; else, for `exact`, paid by a
 * front-runner that sent the same permit to the exact proxy itself (anyone may: it checks no
 * caller); else failed — with the authorization unused (reclaimable: the engine may settle it again
 * alone, as for EIP-3009) when the nonce's bit is still clear.
 */
export async function permit2Verdict(
  client: PublicClient,
  row: SettlementRow,
  receipt: TransactionReceipt,
  expected: ExpectedTransfer,
  cost: { gasUsed: bigint; gasCostWei: bigint },
): Promise<ChainVerdict> {
  const proxy = proxyOf(row.scheme === "upto" ? "upto" : "exact");
  const nonce = BigInt(row.nonce);
  if (permit2PaymentLogOf(receipt, expected, proxy)) {
    // At the receipt's block: a lagging node's "latest" could be older than the receipt. A node that
    // no longer keeps that block's state (a pruned one, for an old row) is asked at "latest": a
    // Permit2 nonce bit, once set, is never cleared.
    const used = await unknownOnTransportFailure(
      nonceUsedAt(client, expected.from, nonce, receipt.blockNumber).catch((error: unknown) => {
        if (isTransportFailure(error)) throw error;
        return nonceUsedAt(client, expected.from, nonce, undefined);
      }),
    );
    if (used === undefined) return { kind: "unknown" };
    if (used) return { kind: "paid", txHash: receipt.transactionHash, blockNumber: receipt.blockNumber, ...cost };
  }
  if (row.scheme !== "upto") {
    const frontRunner = await findFrontRunner(client, expected, nonce, receipt.blockNumber);
    if (frontRunner) return { ...frontRunner, ...cost };
  }
  const [used, payerHadCode] = await Promise.all([
    unknownOnTransportFailure(nonceUsedAt(client, expected.from, nonce, undefined)),
    unknownOnTransportFailure(hasCode(client, expected.from)),
  ]);
  if (used === undefined || payerHadCode === undefined) return { kind: "unknown" };
  const reverted = receipt.status !== "success";
  const reason = reverted ? (row.scheme === "upto" ? ReasonCode.uptoTransactionFailed : ReasonCode.transactionFailed) : ReasonCode.transferEventMismatch;
  const message = reverted
    ? "the settlement transaction reverted"
    : "the transaction succeeded but logged no Transfer(owner → payTo, value) from the token right before the proxy's Settled: nothing was paid";
  const why = used ? `${message}; the Permit2 nonce is used on chain without paying payTo, so it cannot be settled again` : message;
  return { kind: "failed", reason, message: why, gasCostWei: cost.gasCostWei, authorizationUnused: !used, payerHadCode };
}

async function nonceUsedAt(client: PublicClient, owner: Address, nonce: bigint, blockNumber: bigint | undefined): Promise<boolean> {
  const word = await client.readContract({
    address: permit2Address,
    abi: permit2Abi,
    functionName: "nonceBitmap",
    args: [owner, nonce >> 8n],
    ...(blockNumber === undefined ? {} : { blockNumber }),
  });
  return nonceBitSet(word, nonce);
}

/**
 * Someone else sent this very permit to the exact proxy first (ARCHITECTURE.md pitfall 10): a
 * transaction to the proxy, among the token's recent Transfer(owner → payTo) logs, whose calldata
 * carries this owner's nonce, this payTo and this value, and whose receipt pays it the same way ours
 * would have. A permit used through some other contract is not recognised: that row ends failed.
 */
async function findFrontRunner(client: PublicClient, expected: ExpectedTransfer, nonce: bigint, atBlock: bigint): Promise<{ kind: "paid"; txHash: Hex; blockNumber: bigint } | undefined> {
  const logs = await client.getContractEvents({
    address: expected.token,
    abi: permit2TokenAbi,
    eventName: "Transfer",
    args: { from: expected.from, to: expected.to },
    fromBlock: atBlock > frontRunLookbackBlocks ? atBlock - frontRunLookbackBlocks : 0n,
    toBlock: atBlock,
  });
  const hashes = [...new Set(logs.filter((log) => log.args.value === expected.valueAtomic).map((log) => log.transactionHash))].reverse().slice(0, frontRunCandidatesMax);
  for (const hash of hashes) {
    const transaction = await client.getTransaction({ hash });
    if (!transaction.to || transaction.to.toLowerCase() !== x402ExactPermit2ProxyAddress.toLowerCase()) continue;
    if (!carriesPermit(transaction.input, expected, nonce)) continue;
    const receipt = await client.getTransactionReceipt({ hash });
    if (permit2PaymentLogOf(receipt, expected, x402ExactPermit2ProxyAddress)) return { kind: "paid", txHash: hash, blockNumber: receipt.blockNumber };
  }
  return undefined;
}

/** The exact proxy's settle / settleWithPermit calldata for this owner's nonce, paying payTo the value. */
function carriesPermit(input: Hex, expected: ExpectedTransfer, nonce: bigint): boolean {
  try {
    const decoded = decodeFunctionData({ abi: exactPermit2ProxyAbi, data: input });
    const args = decoded.functionName === "settle" ? decoded.args : decoded.functionName === "settleWithPermit" ? decoded.args.slice(1) : undefined;
    if (!args) return false;
    const [permit, owner, witness] = args as unknown as [{ permitted: { token: Address; amount: bigint }; nonce: bigint }, Address, { to: Address }];
    return (
      permit.nonce === nonce &&
      permit.permitted.amount === expected.valueAtomic &&
      permit.permitted.token.toLowerCase() === expected.token.toLowerCase() &&
      owner.toLowerCase() === expected.from.toLowerCase() &&
      witness.to.toLowerCase() === expected.to.toLowerCase()
    );
  } catch {
    return false;
  }
}

async function unknownOnTransportFailure<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (isTransportFailure(error)) return undefined;
    throw error;
  }
}
