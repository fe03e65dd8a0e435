/**
 * ownCallFailed (src/settlement/receipt.ts): which on-chain failures are the payer's doing, and so
 * serialise it (PAYER_FAILED_CALL_SERIAL_MS) or cool it down (PAYER_CODE_COOLDOWN_MS). A batch that
 * reverted, ran nothing, or skipped calls for want of gas must never count against its honest payers.
 */
import { encodeAbiParameters, encodeEventTopics, type Address, type Hex, type Log, type TransactionReceipt } from "viem";
import { describe, expect, it } from "vitest";
import { batchSettlerAbi, batchSettlerAddress } from "../../../src/contracts/batch-settler.js";
import { ownCallFailed } from "../../../src/settlement/receipt.js";

function callFailed(index: bigint, skipped: boolean, address: Address = batchSettlerAddress): Log {
  return {
    address,
    topics: encodeEventTopics({ abi: batchSettlerAbi, eventName: "CallFailed", args: { index } }) as [Hex, ...Hex[]],
    data: encodeAbiParameters([{ type: "bool" }], [skipped]),
    blockHash: `0x${"11".repeat(32)}`,
    blockNumber: 1n,
    logIndex: 0,
    transactionHash: `0x${"22".repeat(32)}`,
    transactionIndex: 0,
    removed: false,
  };
}

const receipt = (status: TransactionReceipt["status"], logs: Log[]) => ({ status, logs }) as Pick<TransactionReceipt, "status" | "logs">;

describe("ownCallFailed", () => {
  it("a transaction of its own: the payer's call is the transaction, reverted or not", () => {
    expect(ownCallFailed({ txSettlements: 1 }, receipt("reverted", []))).toBe(true);
    expect(ownCallFailed({ txSettlements: 1 }, receipt("success", []))).toBe(true);
  });

  it("in a batch: only when BatchSettler ran and every call it reports failed by itself", () => {
    expect(ownCallFailed({ txSettlements: 4 }, receipt("success", [callFailed(2n, false)]))).toBe(true);
    expect(ownCallFailed({ txSettlements: 4 }, receipt("success", [callFailed(0n, false), callFailed(3n, false)]))).toBe(true);
  });

  it("in a batch: not when it reverted as a whole, ran no call, skipped calls, or the log is not BatchSettler's", () => {
    expect(ownCallFailed({ txSettlements: 4 }, receipt("reverted", [callFailed(2n, false)]))).toBe(false);
    expect(ownCallFailed({ txSettlements: 4 }, receipt("success", []))).toBe(false);
    expect(ownCallFailed({ txSettlements: 4 }, receipt("success", [callFailed(1n, false), callFailed(2n, true)]))).toBe(false);
    expect(ownCallFailed({ txSettlements: 4 }, receipt("success", [callFailed(2n, false, `0x${"33".repeat(20)}`)]))).toBe(false);
  });
});
