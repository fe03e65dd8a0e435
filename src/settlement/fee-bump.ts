import { keccak256, parseTransaction, type Hex, type LocalAccount } from "viem";
import type { Limits } from "../config.js";
import type { SettlementRow } from "../store/schema.js";

export type Replacement = { rawTx: Hex; txHash: Hex } | { refused: string };

/** A fee raised by `percent`, rounded up (nodes require at least +10 % for a replacement). */
export function bumpedFee(value: bigint, percent: number): bigint {
  return (value * BigInt(100 + percent) + 99n) / 100n;
}

/**
 * The highest fee cap a transaction offered at `maxFeePerGas` may reach through its fee bumps:
 * what a gas reservation must cover. Never above MAX_FEE_PER_GAS_WEI (bumps stop there).
 */
export function bumpedFeeCapPerGas(maxFeePerGas: bigint, limits: Pick<Limits, "feeBumpPercent" | "feeBumpsMax" | "maxFeePerGasWei">): bigint {
  let fee = maxFeePerGas;
  for (let bump = 0; bump < limits.feeBumpsMax && fee < limits.maxFeePerGasWei; bump++) fee = bumpedFee(fee, limits.feeBumpPercent);
  return fee < limits.maxFeePerGasWei ? fee : limits.maxFeePerGasWei;
}

/**
 * The same transaction (same nonce, calldata and gas limit) with both fee caps raised by
 * `feeBumpPercent`, so nodes accept it as a replacement of a stuck one. Never above
 * MAX_FEE_PER_GAS_WEI, and never more than `feeBumpsMax` times per settlement.
 */
export async function feeBumpedReplacement(
  row: SettlementRow,
  signer: LocalAccount,
  limits: Pick<Limits, "feeBumpPercent" | "feeBumpsMax" | "maxFeePerGasWei">,
): Promise<Replacement> {
  if (row.feeBumps >= limits.feeBumpsMax) return { refused: `already bumped ${row.feeBumps} times (FEE_BUMPS_MAX)` };
  const stuck = parseTransaction(row.rawTx as Hex);
  if (stuck.type !== "eip1559" || stuck.maxFeePerGas === undefined || stuck.maxPriorityFeePerGas === undefined) {
    return { refused: `stored transaction is not EIP-1559 (${stuck.type})` };
  }
  const bump = (value: bigint) => bumpedFee(value, limits.feeBumpPercent);
  const maxFeePerGas = bump(stuck.maxFeePerGas);
  if (maxFeePerGas > limits.maxFeePerGasWei) return { refused: `a bump would exceed MAX_FEE_PER_GAS_WEI (${limits.maxFeePerGasWei})` };
  const rawTx = await signer.signTransaction({
    type: "eip1559",
    chainId: stuck.chainId!,
    to: stuck.to!,
    data: stuck.data!,
    value: 0n,
    nonce: stuck.nonce!,
    gas: stuck.gas!,
    maxFeePerGas,
    maxPriorityFeePerGas: bump(stuck.maxPriorityFeePerGas),
  });
  return { rawTx, txHash: keccak256(rawTx) };
}
