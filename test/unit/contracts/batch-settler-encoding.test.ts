import { describe, expect, it } from "vitest";
import { concat, decodeFunctionData, size, slice, type Address, type Hex } from "viem";
import { batchSettlerAbi, decodeBatchSettle, encodeBatchSettle, type GasLimitedCall } from "../../../src/contracts/batch-settler.js";
import { builderCodeSuffix } from "../../../src/protocol/builder-code.js";

const token: Address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const other: Address = "0xcA11bde05977b3631167028862bE2a173976CA11";

/**
 * BatchSettler's packed calls: head (2: "same target" bit ‖ 15-bit length) ‖ gasLimit (4) ‖ target
 * (20, left out when it repeats the previous call's) ‖ callData, back to back.
 */
describe("encodeBatchSettle", () => {
  const calls: GasLimitedCall[] = [
    { target: token, gasLimit: 69_000n, callData: "0xe3ee160e0102" },
    { target: other, gasLimit: 1n, callData: "0x" },
    { target: token, gasLimit: 2n ** 32n - 1n, callData: `0x${"ab".repeat(300)}` },
  ];

  it("packs each call's head, gas limit, target and call data, and reads them back", () => {
    const data = encodeBatchSettle(calls);
    const [packed] = decodeFunctionData({ abi: batchSettlerAbi, data }).args;
    expect(size(packed)).toBe(3 * 26 + 6 + 0 + 300);
    expect(packed.slice(0, 2 + 2 * 26 + 12)).toBe(`0x000600010d88${token.slice(2).toLowerCase()}e3ee160e0102`);
    expect(decodeBatchSettle(data)).toEqual(calls);
  });

  it("writes a run of calls to one target's address once: later calls set the head's top bit instead", () => {
    const sameToken = [calls[0]!, { ...calls[0]!, gasLimit: 70_000n }, { ...calls[0]!, callData: "0xe3ee160e03" as Hex }, calls[1]!, calls[1]!];
    const data = encodeBatchSettle(sameToken);
    const [packed] = decodeFunctionData({ abi: batchSettlerAbi, data }).args;
    expect(size(packed)).toBe(26 + 6 + (6 + 6) + (6 + 5) + 26 + 6);
    expect(slice(packed, 32, 38)).toBe("0x800600011170"); // same target, 6 bytes; 70,000 gas
    expect(decodeBatchSettle(data)).toEqual(sameToken);
  });

  it("carries the call data byte for byte: what was estimated is what the token gets", () => {
    expect(decodeBatchSettle(encodeBatchSettle(calls)).map((call) => call.callData)).toEqual(calls.map((call) => call.callData));
  });

  it("ignores a builder-code suffix after the argument, as the contract does", () => {
    expect(decodeBatchSettle(concat([encodeBatchSettle(calls), builderCodeSuffix("my_facilitator")]))).toEqual(calls);
  });

  it("refuses what the framing cannot carry", () => {
    expect(() => encodeBatchSettle([{ target: token, gasLimit: 2n ** 32n, callData: "0x" }])).toThrow(RangeError);
    expect(() => encodeBatchSettle([{ target: token, gasLimit: -1n, callData: "0x" }])).toThrow(RangeError);
    expect(() => encodeBatchSettle([{ target: token, gasLimit: 1n, callData: `0x${"00".repeat(32_768)}` as Hex }])).toThrow(RangeError);
  });
});
