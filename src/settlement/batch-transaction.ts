import { batchSettlerAddress, encodeBatchSettle } from "../contracts/batch-settler.js";
import type { PreparedTransaction } from "./prepare-sign-send.js";

/**
 * BatchSettler's own cost per call, generously: its packed framing's calldata, the loop, the
 * calldata copy, a CALL to a warm target, a CallFailed log when it fails, and the 10k it keeps in
 * hand before each call. (A gas limit only: what a batch uses is ~0.8k gas a call over the calls'
 * own, test/integration/contracts/batch-settler-gas.test.ts.)
 */
export const batchGasPerCallOverhead = 16_000n;
/** The transaction's base cost, paid once per batch instead of once per settlement. */
const intrinsicGas = 21_000n;

/**
 * Several prepared settlements of one signer as one transaction through BatchSettler: each call
 * gets its own gas limit (its padded estimate without the base cost) and may fail alone, so one
 * authorization that fails on chain (spent balance, nonce used meanwhile, a payer's code that burns
 * gas: an EOA may delegate itself with EIP-7702 after we looked) spends at most its own limit and
 * cannot sink the others; each row reads its own outcome from the logs. Each call was simulated and
 * estimated alone just before; the gas limit is the sum of the calls' limits, the 1/64 EIP-150
 * keeps back from each, and BatchSettler's overhead — state warmed by earlier calls only makes
 * later ones cheaper. Fees: the highest of the estimates.
 * One item is returned unchanged (a plain token call costs less than a batch of one).
 */
export function batchTransaction(items: readonly PreparedTransaction[]): PreparedTransaction {
  if (items.length === 0) throw new Error("a batch needs at least one settlement");
  if (items.length === 1) return items[0]!;
  return {
    call: {
      to: batchSettlerAddress,
      data: encodeBatchSettle(items.map((item) => ({ target: item.call.to, gasLimit: callGasLimit(item), callData: item.call.data }))),
    },
    gasLimit: batchGasLimit(items),
    maxFeePerGas: max(items.map((item) => item.maxFeePerGas)),
    maxPriorityFeePerGas: max(items.map((item) => item.maxPriorityFeePerGas)),
    chainPendingNonce: Math.max(...items.map((item) => item.chainPendingNonce)),
    signerBalanceWei: lowestSignerBalanceWei(items),
    payerHasCode: items.some((item) => item.payerHasCode),
  };
}

/**
 * Splits settlements (in order) into groups whose batch transaction stays within `gasMax` — so a
 * long queue never makes a transaction above a chain's per-transaction gas cap (16.7M gas after
 * EIP-7825) or near a block's limit — and whose worst-case cost (gas limit × fee cap) the signer's
 * balance covers, so a nearly empty signer still pays for the settlements it can instead of
 * having the node refuse one big transaction. A single settlement is never split further (it was
 * checked against the balance alone when it was prepared).
 */
export function splitIntoBatches<T extends { prepared: PreparedTransaction }>(items: readonly T[], gasMax: bigint): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  for (const item of items) {
    const candidate = [...current, item];
    if (current.length > 0 && !fits(candidate.map((entry) => entry.prepared), gasMax)) {
      groups.push(current);
      current = [item];
    } else current = candidate;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

function fits(items: readonly PreparedTransaction[], gasMax: bigint): boolean {
  const gasLimit = batchGasLimit(items);
  const maxFeePerGas = max(items.map((item) => item.maxFeePerGas));
  return gasLimit <= gasMax && gasLimit * maxFeePerGas <= lowestSignerBalanceWei(items);
}

/** One settlement's gas inside a batch: its own transaction's limit without the base cost. */
function callGasLimit(item: PreparedTransaction): bigint {
  return item.gasLimit - intrinsicGas;
}

/** The gas limit batchTransaction gives these settlements (arithmetic only: nothing is encoded). */
function batchGasLimit(items: readonly PreparedTransaction[]): bigint {
  if (items.length === 1) return items[0]!.gasLimit;
  const callsGas = items.reduce((sum, item) => sum + callGasLimit(item) + callGasLimit(item) / 63n + batchGasPerCallOverhead, 0n);
  return intrinsicGas + callsGas;
}

/** The lowest signer balance any of the settlements saw: the most recent reading is at most that. */
function lowestSignerBalanceWei(items: readonly PreparedTransaction[]): bigint {
  return items.reduce((low, item) => (item.signerBalanceWei < low ? item.signerBalanceWei : low), items[0]!.signerBalanceWei);
}

function max(values: readonly bigint[]): bigint {
  return values.reduce((best, value) => (value > best ? value : best));
}
