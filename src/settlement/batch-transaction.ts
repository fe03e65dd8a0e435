import { encodeAggregate3, multicall3Address } from "../exact-evm/multicall3.js";
import type { PreparedTransaction } from "./broadcast.js";

/** Multicall3's own cost per call (ABI decoding, CALL to a warm target, result copying), generously. */
export const batchGasPerCallOverhead = 6_000n;
/** The transaction's base cost, paid once per batch instead of once per settlement. */
const intrinsicGas = 21_000n;

/**
 * Several prepared settlements of one signer as one transaction: Multicall3 `aggregate3` with
 * `allowFailure: true` on every call, so one authorization that fails on chain (spent balance,
 * nonce used meanwhile) cannot sink the others; each row reads its own outcome from the logs.
 * Each call was simulated and estimated alone just before; the gas limit is the sum of those
 * (already padded) limits without their repeated base cost, plus Multicall3's overhead — state
 * warmed by earlier calls only makes later ones cheaper. Fees: the highest of the estimates.
 * One item is returned unchanged (a plain token call costs less than a batch of one).
 */
export function batchTransaction(items: readonly PreparedTransaction[]): PreparedTransaction {
  if (items.length === 0) throw new Error("a batch needs at least one settlement");
  if (items.length === 1) return items[0]!;
  const callsGas = items.reduce((sum, item) => sum + item.gasLimit - intrinsicGas, 0n);
  return {
    call: {
      to: multicall3Address,
      data: encodeAggregate3(items.map((item) => ({ target: item.call.to, allowFailure: true, callData: item.call.data }))),
    },
    gasLimit: intrinsicGas + callsGas + batchGasPerCallOverhead * BigInt(items.length),
    maxFeePerGas: max(items.map((item) => item.maxFeePerGas)),
    maxPriorityFeePerGas: max(items.map((item) => item.maxPriorityFeePerGas)),
    chainPendingNonce: Math.max(...items.map((item) => item.chainPendingNonce)),
  };
}

function max(values: readonly bigint[]): bigint {
  return values.reduce((best, value) => (value > best ? value : best));
}
