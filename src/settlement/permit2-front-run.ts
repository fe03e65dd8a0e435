import { BaseError, ContractFunctionZeroDataError, decodeFunctionData, type Address, type Hex, type PublicClient } from "viem";
import { isTransportFailure } from "../chain/rpc-errors.js";
import { x402ExactPermit2ProxyAddress } from "../contracts/permit2.js";
import { exactPermit2ProxyAbi, permit2TokenAbi } from "../permit2/abi.js";
import { permit2NonceUsed } from "../permit2/chain-state.js";
import { permit2PaymentLogOf, type ExpectedTransfer } from "./receipt.js";

/**
 * How far before our receipt's block the nonce's bit is looked for. The front-runner landed after
 * our simulation saw the nonce unused (right before signing) and no later than our receipt, so the
 * distance is how long our transaction waited to be mined — fee bumps included. 2^17 blocks is
 * ~3 days at Base's 2 s (~18 days at 12 s), far beyond how long a settlement waits, and costs at most
 * 2 × 18 eth_calls (galloping back, then bisection); a bit already set at the window's start was
 * not set by a front-runner of this transaction.
 */
export const frontRunStateLookbackBlocks = 131_072n;
/**
 * The fallback when the node keeps no state that old (a pruned node): the token's
 * Transfer(owner → payTo) logs over the last blocks up to the receipt, read in windows of
 * frontRunLogWindowBlocks — many providers refuse eth_getLogs ranges above 500–2,000 blocks — at
 * most frontRunLogWindowsMax of them, newest first.
 */
export const frontRunLogWindowBlocks = 500n;
export const frontRunLogWindowsMax = 2;
/**
 * Candidate transactions read at most (2 RPC calls each). In the block where the nonce's bit was
 * set, only Transfers immediately followed by the proxy's Settled log count, so 16 is out of reach
 * of an honest payer; in the fallback log scan, the newest 16 of the same value.
 */
export const frontRunCandidatesMax = 16;

export type FrontRunSearch =
  | { kind: "found"; txHash: Hex; blockNumber: bigint }
  /** Nobody paid payTo with this permit through the exact proxy (within the bounds above). */
  | { kind: "none" }
  /** The RPC could not be asked: the verdict waits (the row stays unfinished), never "none". */
  | { kind: "unknown" };

/**
 * Someone else sent this very permit to the exact proxy first (ARCHITECTURE.md pitfall 10). Finds the
 * block where the nonce's bit in Permit2's bitmap got set (state at past blocks, O(log n) eth_calls)
 * and looks only at that block's Transfer(owner → payTo) logs; on a node without that state, scans
 * the recent logs instead. Only a transaction *to the exact proxy* whose calldata carries this
 * owner's nonce, payTo, value and token, and whose receipt pays it the proxy's way, is credited.
 * A permit used through some other contract is deliberately not recognised (the row ends failed):
 * crediting "any transaction that paid payTo the value" would let one on-chain payment confirm two
 * settlements (pitfall 16). A transport fault anywhere is `unknown`.
 */
export async function findPermit2FrontRunner(client: PublicClient, expected: ExpectedTransfer, nonce: bigint, atBlock: bigint): Promise<FrontRunSearch> {
  try {
    const setAt = await blockWhereNonceSet(client, expected.from, nonce, atBlock);
    if (setAt.kind === "at") return await frontRunnerInBlock(client, expected, nonce, setAt.blockNumber);
    if (setAt.kind === "never") return { kind: "none" };
    return await frontRunnerInRecentLogs(client, expected, nonce, atBlock);
  } catch (error) {
    if (isTransportFailure(error)) return { kind: "unknown" };
    throw error;
  }
}

type NonceSetAt =
  | { kind: "at"; blockNumber: bigint }
  /** Clear at the receipt's block, or already set when the window starts: no front-runner of ours set it. */
  | { kind: "never" }
  /** The node answered that it has no state at a block asked (not a transport fault): scan logs instead. */
  | { kind: "state-unavailable" };

/**
 * The block where the nonce's bit went from clear to set, at or before `atBlock`: galloping back
 * from `atBlock` (a front-runner is usually in the same block or a few before), then bisecting
 * between the last clear and the first set probe. At most log2(lookback) + 1 probes each way.
 * Transport faults are thrown (the caller makes them `unknown`); any other error reading the state
 * is taken as "state not kept here".
 */
async function blockWhereNonceSet(client: PublicClient, owner: Address, nonce: bigint, atBlock: bigint): Promise<NonceSetAt> {
  const usedAt = async (blockNumber: bigint): Promise<boolean | undefined> => {
    try {
      return await permit2NonceUsed(client, owner, nonce, blockNumber);
    } catch (error) {
      if (isTransportFailure(error)) throw error;
      // No Permit2 code at that block yet (a young chain, a window reaching before its deployment): no bit was set.
      if (error instanceof BaseError && error.walk((cause) => cause instanceof ContractFunctionZeroDataError)) return false;
      return undefined;
    }
  };
  const atReceipt = await usedAt(atBlock);
  if (atReceipt === undefined) return { kind: "state-unavailable" };
  if (!atReceipt) return { kind: "never" };
  const floor = atBlock > frontRunStateLookbackBlocks ? atBlock - frontRunStateLookbackBlocks : 0n;
  const probesMax = frontRunStateLookbackBlocks.toString(2).length + 1;
  // Galloping back: the bit is set at `set`; the first probe found clear is `clear`.
  let set = atBlock;
  let clear: bigint | undefined;
  for (let i = 0, step = 1n; clear === undefined; i++, step *= 2n) {
    if (set === floor || i >= probesMax) return { kind: "never" };
    const probe = set - step > floor ? set - step : floor;
    const used = await usedAt(probe);
    if (used === undefined) return { kind: "state-unavailable" };
    if (used) set = probe;
    else clear = probe;
  }
  // Bisecting: clear at `low`, set at `set`, until they are neighbours.
  let low: bigint = clear;
  for (let i = 0; set - low > 1n; i++) {
    if (i >= probesMax) throw new Error(`nonce bisection did not converge: clear at ${low}, set at ${set}`);
    const middle: bigint = (set + low) / 2n;
    const used = await usedAt(middle);
    if (used === undefined) return { kind: "state-unavailable" };
    if (used) set = middle;
    else low = middle;
  }
  return { kind: "at", blockNumber: set };
}

/**
 * In the block where the bit got set: the Transfer(owner → payTo, value) logs immediately followed
 * by the exact proxy's Settled / SettledWithPermit in the same transaction (how permit2PaymentLogOf
 * recognises a proxy payment), so the payer's plain transfers of the same value in that block,
 * however many, are never candidates.
 */
async function frontRunnerInBlock(client: PublicClient, expected: ExpectedTransfer, nonce: bigint, blockNumber: bigint): Promise<FrontRunSearch> {
  const [transfers, settled] = await Promise.all([
    transfersToPayTo(client, expected, blockNumber, blockNumber),
    client.getContractEvents({ address: x402ExactPermit2ProxyAddress, abi: exactPermit2ProxyAbi, fromBlock: blockNumber, toBlock: blockNumber }),
  ]);
  const settledAt = new Set(settled.map((log) => `${log.transactionHash}:${log.logIndex}`));
  const hashes = transfers.filter((log) => settledAt.has(`${log.transactionHash}:${log.logIndex + 1}`)).map((log) => log.transactionHash);
  return creditedAmong(client, expected, nonce, hashes);
}

/** The fallback: the newest Transfer(owner → payTo, value) logs of the last windows up to the receipt's block. */
async function frontRunnerInRecentLogs(client: PublicClient, expected: ExpectedTransfer, nonce: bigint, atBlock: bigint): Promise<FrontRunSearch> {
  const hashes: Hex[] = [];
  for (let window = 0, toBlock = atBlock; window < frontRunLogWindowsMax && hashes.length < frontRunCandidatesMax; window++) {
    const fromBlock = toBlock >= frontRunLogWindowBlocks ? toBlock - frontRunLogWindowBlocks + 1n : 0n;
    const logs = await transfersToPayTo(client, expected, fromBlock, toBlock);
    hashes.push(...logs.map((log) => log.transactionHash).reverse());
    if (fromBlock === 0n) break;
    toBlock = fromBlock - 1n;
  }
  return creditedAmong(client, expected, nonce, hashes);
}

async function transfersToPayTo(client: PublicClient, expected: ExpectedTransfer, fromBlock: bigint, toBlock: bigint): Promise<Array<{ transactionHash: Hex; logIndex: number }>> {
  const logs = await client.getContractEvents({
    address: expected.token,
    abi: permit2TokenAbi,
    eventName: "Transfer",
    args: { from: expected.from, to: expected.to },
    fromBlock,
    toBlock,
  });
  return logs.filter((log) => log.args.value === expected.valueAtomic).map((log) => ({ transactionHash: log.transactionHash, logIndex: log.logIndex }));
}

/** The first of (at most frontRunCandidatesMax distinct) transactions that is this permit's front-run. */
async function creditedAmong(client: PublicClient, expected: ExpectedTransfer, nonce: bigint, hashes: readonly Hex[]): Promise<FrontRunSearch> {
  for (const hash of [...new Set(hashes)].slice(0, frontRunCandidatesMax)) {
    const transaction = await client.getTransaction({ hash });
    if (!transaction.to || transaction.to.toLowerCase() !== x402ExactPermit2ProxyAddress.toLowerCase()) continue;
    if (!carriesPermit(transaction.input, expected, nonce)) continue;
    const receipt = await client.getTransactionReceipt({ hash });
    if (permit2PaymentLogOf(receipt, expected, x402ExactPermit2ProxyAddress)) return { kind: "found", txHash: hash, blockNumber: receipt.blockNumber };
  }
  return { kind: "none" };
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
