import { describe, expect, it } from "vitest";
import type { Address, Hex } from "viem";
import { batchSettlerAddress, decodeBatchSettle } from "../../../src/contracts/batch-settler.js";
import { batchGasPerCallOverhead, batchTransaction, splitIntoBatches } from "../../../src/settlement/batch-transaction.js";
import type { PreparedTransaction } from "../../../src/settlement/prepare-sign-send.js";

const token: Address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";

function prepared(data: Hex, gasLimit: bigint, maxFeePerGas: bigint, chainPendingNonce: number, signerBalanceWei = 10n ** 18n): PreparedTransaction {
  return { call: { to: token, data }, gasLimit, maxFeePerGas, maxPriorityFeePerGas: maxFeePerGas / 10n, chainPendingNonce, signerBalanceWei, payerHasCode: false };
}

describe("batchTransaction", () => {
  it("sends one settlement as it is (a plain token call is cheaper than a batch of one)", () => {
    const one = prepared("0xe3ee160e01", 90_000n, 1_000n, 7);
    expect(batchTransaction([one])).toBe(one);
  });

  it("wraps several settlements in BatchSettler, each call with its own gas limit and allowed to fail alone, in order", () => {
    const items = [prepared("0xaa01", 90_000n, 1_000n, 7), prepared("0xbb02", 80_000n, 3_000n, 9), prepared("0xcc03", 85_000n, 2_000n, 8)];
    const batch = batchTransaction(items);
    expect(batch.call.to).toBe(batchSettlerAddress);
    // Each call may spend what it would have spent alone, without the base cost: no more.
    expect(decodeBatchSettle(batch.call.data)).toEqual(items.map((item) => ({ target: token, gasLimit: item.gasLimit - 21_000n, callData: item.call.data })));
    // One base cost (21,000) instead of three; per call, the 1/64 EIP-150 keeps back and BatchSettler's overhead.
    const callGas = [69_000n, 59_000n, 64_000n];
    expect(batch.gasLimit).toBe(21_000n + callGas.reduce((sum, gas) => sum + gas + gas / 63n + batchGasPerCallOverhead, 0n));
    expect(batch.maxFeePerGas).toBe(3_000n);
    expect(batch.maxPriorityFeePerGas).toBe(300n);
    expect(batch.chainPendingNonce).toBe(9);
  });

  it("refuses an empty batch", () => {
    expect(() => batchTransaction([])).toThrow();
  });
});

describe("splitIntoBatches", () => {
  const item = (gasLimit: bigint) => ({ prepared: prepared("0xaa", gasLimit, 1n, 0) });

  it("keeps every batch within the gas cap, in order, and never splits one settlement", () => {
    const items = [item(90_000n), item(90_000n), item(90_000n), item(500_000n), item(90_000n)];
    const groups = splitIntoBatches(items, 200_000n);
    expect(groups).toEqual([[items[0], items[1]], [items[2]], [items[3]], [items[4]]]);
    for (const group of groups.filter((g) => g.length > 1)) expect(batchTransaction(group.map((g) => g.prepared)).gasLimit).toBeLessThanOrEqual(200_000n);
  });

  it("keeps every batch's worst-case cost within the signer's balance (the lowest any item saw)", () => {
    // 1 wei/gas: a batch of two costs 21,000 + 2 × (69,000 + 1,095 + 16,000) = 193,190 wei, of three 279,285.
    const poor = (balanceWei: bigint) => ({ prepared: prepared("0xaa", 90_000n, 1n, 0, balanceWei) });
    const items = [poor(200_000n), poor(10n ** 18n), poor(10n ** 18n), poor(10n ** 18n)];
    expect(splitIntoBatches(items, 10_000_000n)).toEqual([[items[0], items[1]], [items[2], items[3]]]);
  });

  it("leaves a queue that fits as one batch", () => {
    const items = [item(90_000n), item(90_000n), item(90_000n)];
    expect(splitIntoBatches(items, 10_000_000n)).toEqual([items]);
  });
});
