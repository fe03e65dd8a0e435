import { describe, expect, it } from "vitest";
import { encodeAbiParameters, encodeEventTopics, type Address, type Hex, type TransactionReceipt } from "viem";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { batchSettlerAbi, batchSettlerAddress } from "../../../src/contracts/batch-settler.js";
import { failureIsPayersDoing, paymentLogOf } from "../../../src/settlement/receipt.js";

const token: Address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const payer: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const payTo: Address = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const nonceA: Hex = `0x${"aa".repeat(32)}`;
const nonceB: Hex = `0x${"bb".repeat(32)}`;

type ReceiptLog = TransactionReceipt["logs"][number];

function log(topics: Hex[], data: Hex, logIndex: number, address: Address = token): ReceiptLog {
  const hash: Hex = `0x${"11".repeat(32)}`;
  return { address, topics: topics as [Hex, ...Hex[]], data, logIndex, blockHash: hash, blockNumber: 1n, transactionHash: hash, transactionIndex: 0, removed: false };
}
const authorizationUsed = (nonce: Hex, logIndex: number) =>
  log(encodeEventTopics({ abi: eip3009Abi, eventName: "AuthorizationUsed", args: { authorizer: payer, nonce } }) as Hex[], "0x", logIndex);
const transfer = (value: bigint, logIndex: number, address: Address = token) =>
  log(encodeEventTopics({ abi: eip3009Abi, eventName: "Transfer", args: { from: payer, to: payTo } }) as Hex[], encodeAbiParameters([{ type: "uint256" }], [value]), logIndex, address);

const expected = { token, from: payer, to: payTo, valueAtomic: 1_000n };
const receiptPaysAuthorization = (...args: Parameters<typeof paymentLogOf>) => paymentLogOf(...args) !== undefined;

describe("receiptPaysAuthorization: the Transfer paired with this authorization's AuthorizationUsed", () => {
  // One batch: payer paid payTo 1000 with authorization A; the call with B (same payer, payee and value) failed.
  const batchReceipt = { status: "success" as const, logs: [authorizationUsed(nonceA, 0), transfer(1_000n, 1)] };

  it("credits the authorization whose AuthorizationUsed is in the receipt", () => {
    expect(receiptPaysAuthorization(batchReceipt, expected, nonceA)).toBe(true);
  });

  it("does not credit another authorization of the same payer, payee and value whose call failed", () => {
    expect(receiptPaysAuthorization(batchReceipt, expected, nonceB)).toBe(false);
  });

  it("needs the Transfer too, from the token, of the value", () => {
    expect(receiptPaysAuthorization({ status: "success", logs: [authorizationUsed(nonceA, 0)] }, expected, nonceA)).toBe(false);
    expect(receiptPaysAuthorization({ status: "success", logs: [authorizationUsed(nonceA, 0), transfer(999n, 1)] }, expected, nonceA)).toBe(false);
    expect(receiptPaysAuthorization({ status: "success", logs: [authorizationUsed(nonceA, 0), transfer(1_000n, 1, payTo)] }, expected, nonceA)).toBe(false);
  });

  it("pairs by log order: a Transfer that follows another authorization's AuthorizationUsed pays only that one (decoy credit)", () => {
    // A front-runner's [A2: payer→payer with nonce A, Y: payer→payTo with nonce B] in one transaction.
    const toSelf = log(encodeEventTopics({ abi: eip3009Abi, eventName: "Transfer", args: { from: payer, to: payer } }) as Hex[], encodeAbiParameters([{ type: "uint256" }], [1_000n]), 1);
    const decoy = { status: "success" as const, logs: [authorizationUsed(nonceA, 0), toSelf, authorizationUsed(nonceB, 2), transfer(1_000n, 3)] };
    expect(receiptPaysAuthorization(decoy, expected, nonceA)).toBe(false);
    expect(paymentLogOf(decoy, expected, nonceB)).toMatchObject({ transferLogIndex: 3 });
    // Logs may come in any order in a receipt object: pairing goes by logIndex, not array position.
    expect(paymentLogOf({ ...decoy, logs: [...decoy.logs].reverse() }, expected, nonceB)).toMatchObject({ transferLogIndex: 3 });
    expect(receiptPaysAuthorization({ ...decoy, logs: [...decoy.logs].reverse() }, expected, nonceA)).toBe(false);
  });

  it("needs the Transfer to be the very next log, from the token", () => {
    const between = log(encodeEventTopics({ abi: eip3009Abi, eventName: "Transfer", args: { from: payer, to: payTo } }) as Hex[], encodeAbiParameters([{ type: "uint256" }], [1_000n]), 1, payTo);
    expect(receiptPaysAuthorization({ status: "success", logs: [authorizationUsed(nonceA, 0), between, transfer(1_000n, 2)] }, expected, nonceA)).toBe(false);
  });

  it("credits nothing in a reverted transaction", () => {
    expect(receiptPaysAuthorization({ ...batchReceipt, status: "reverted" }, expected, nonceA)).toBe(false);
  });
});

/**
 * failureIsPayersDoing: which on-chain failures serialise a payer (PAYER_ONE_AT_A_TIME_MS) or cool
 * it down (PAYER_CODE_COOLDOWN_MS). A batch that reverted, ran nothing or skipped calls for want of
 * gas must never count against the payer.
 */
describe("failureIsPayersDoing", () => {
  const callFailed = (index: bigint, skipped: boolean, logIndex: number, address: Address = batchSettlerAddress) =>
    log(encodeEventTopics({ abi: batchSettlerAbi, eventName: "CallFailed", args: { index } }) as Hex[], encodeAbiParameters([{ type: "bool" }], [skipped]), logIndex, address);
  const gasLimit = 90_000;
  const single = () => ({ txSettlements: 1, gasLimit });
  const batch = { txSettlements: 4, gasLimit: 1_000_000 };
  const receipt = (status: TransactionReceipt["status"], logs: ReceiptLog[], gasUsed = 40_000n) => ({ status, logs, gasUsed });
  const unused = { authorizationUsed: false };

  it("its nonce used without paying payTo: the payer's, whatever the transaction", () => {
    for (const row of [single(), batch]) expect(failureIsPayersDoing(row, receipt("reverted", [], BigInt(gasLimit)), { authorizationUsed: true })).toBe(true);
  });

  it("a transaction of its own: the payer's, whatever made it fail (out of gas too: a 7702 delegation can come and go around it)", () => {
    expect(failureIsPayersDoing(single(), receipt("reverted", []), unused)).toBe(true);
    expect(failureIsPayersDoing(single(), receipt("success", []), unused)).toBe(true);
    expect(failureIsPayersDoing(single(), receipt("reverted", [], BigInt(gasLimit)), unused)).toBe(true);
  });

  it("in a batch: only when BatchSettler ran and every call it reports failed by itself", () => {
    expect(failureIsPayersDoing(batch, receipt("success", [callFailed(2n, false, 0)]), unused)).toBe(true);
    expect(failureIsPayersDoing(batch, receipt("success", [callFailed(0n, false, 0), callFailed(3n, false, 1)]), unused)).toBe(true);
  });

  it("in a batch: not when it reverted as a whole, ran no call, skipped calls, or the log is not BatchSettler's", () => {
    expect(failureIsPayersDoing(batch, receipt("reverted", [callFailed(2n, false, 0)]), unused)).toBe(false);
    expect(failureIsPayersDoing(batch, receipt("success", []), unused)).toBe(false);
    expect(failureIsPayersDoing(batch, receipt("success", [callFailed(1n, false, 0), callFailed(2n, true, 1)]), unused)).toBe(false);
    expect(failureIsPayersDoing(batch, receipt("success", [callFailed(2n, false, 0, `0x${"33".repeat(20)}`)]), unused)).toBe(false);
  });
});

