/**
 * Every custom error of the local Permit2 and proxy contracts (contracts/Permit2.sol,
 * contracts/X402Permit2Proxy.sol; ABIs in src/permit2/abi.ts) maps to its wire code. The revert
 * data is encoded with viem's encodeErrorResult and wrapped as viem surfaces a node's revert: the
 * node's JSON-RPC error (code 3, `data`) in an RpcRequestError, under viem's own getCallError
 * (client.call: verify's simulation) or getEstimateGasError (estimateGas: prepare-sign-send).
 * 2.27's column is what its mapSettleError (shared/permit2.ts) makes of the same error's name: it
 * matches substrings of the message, where ours decodes the selector.
 */
import { readFileSync } from "node:fs";
import { BaseError, RpcRequestError, encodeErrorResult, parseAbi, type Abi, type Hex } from "viem";
import { getCallError, getEstimateGasError } from "viem/utils";
import { describe, expect, it } from "vitest";
import { exactPermit2ProxyAbi, permit2Abi, uptoPermit2ProxyAbi } from "../../../src/permit2/abi.js";
import { permit2Revert, reasonForPermit2Revert } from "../../../src/permit2/revert-reasons.js";
import { permit2Address, x402UptoPermit2ProxyAddress } from "../../../src/contracts/permit2.js";
import { ReasonCode } from "../../../src/protocol/reason-codes.js";

const url = "http://127.0.0.1:8545";
const from = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

/** A node's revert, as viem's http transport raises it and client.call / estimateGas wrap it. */
function nodeRevert(data: Hex): RpcRequestError {
  return new RpcRequestError({ url, body: { method: "eth_call" }, error: { code: 3, message: "execution reverted", data } });
}
const wrappings: [string, (data: Hex) => BaseError][] = [
  ["client.call (CallExecutionError)", (data) => getCallError(nodeRevert(data), { account: from, to: x402UptoPermit2ProxyAddress, data: "0x" })],
  ["estimateGas (EstimateGasExecutionError)", (data) => getEstimateGasError(nodeRevert(data), { to: x402UptoPermit2ProxyAddress, data: "0x" })],
  ["the bare RPC error", (data) => nodeRevert(data)],
];

const fallback = ReasonCode.permit2SimulationFailed;
/** 2.27's mapSettleError for a message it recognises nothing in: transaction_failed plus the message. */
const transactionFailed = "transaction_failed: …";

interface Row {
  contract: "Permit2" | "proxy (both)" | "upto proxy";
  abi: Abi;
  error: string;
  args?: readonly unknown[];
  code: string;
  /** What 2.27's mapSettleError answers for a message holding this error's name. */
  sdk227: string;
}

const rows: Row[] = [
  { contract: "Permit2", abi: permit2Abi, error: "SignatureExpired", args: [1_900_000_000n], code: "invalid_permit2_signature", sdk227: "invalid_permit2_signature" },
  { contract: "Permit2", abi: permit2Abi, error: "InvalidNonce", code: "permit2_invalid_nonce", sdk227: "permit2_invalid_nonce" },
  // 2.27: "InvalidSignatureLength" contains "InvalidSignature".
  { contract: "Permit2", abi: permit2Abi, error: "InvalidSignatureLength", code: "invalid_permit2_signature", sdk227: "invalid_permit2_signature" },
  { contract: "Permit2", abi: permit2Abi, error: "InvalidSignature", code: "invalid_permit2_signature", sdk227: "invalid_permit2_signature" },
  // Deliberate (revert-reasons.ts: "InvalidSigner matches nothing" in 2.27; every signature failure is ours invalid_permit2_signature).
  { contract: "Permit2", abi: permit2Abi, error: "InvalidSigner", code: "invalid_permit2_signature", sdk227: transactionFailed },
  { contract: "Permit2", abi: permit2Abi, error: "InvalidContractSignature", code: "invalid_permit2_signature", sdk227: transactionFailed },
  { contract: "Permit2", abi: permit2Abi, error: "InvalidAmount", args: [500_000n], code: "permit2_invalid_amount", sdk227: "permit2_invalid_amount" },
  { contract: "proxy (both)", abi: exactPermit2ProxyAbi, error: "InvalidAmount", code: "permit2_invalid_amount", sdk227: "permit2_invalid_amount" },
  { contract: "proxy (both)", abi: exactPermit2ProxyAbi, error: "InvalidDestination", code: "permit2_invalid_destination", sdk227: "permit2_invalid_destination" },
  { contract: "proxy (both)", abi: exactPermit2ProxyAbi, error: "InvalidOwner", code: "permit2_invalid_owner", sdk227: "permit2_invalid_owner" },
  { contract: "proxy (both)", abi: exactPermit2ProxyAbi, error: "PaymentTooEarly", code: "permit2_payment_too_early", sdk227: "permit2_payment_too_early" },
  { contract: "proxy (both)", abi: exactPermit2ProxyAbi, error: "Permit2612AmountMismatch", code: "permit2_2612_amount_mismatch", sdk227: "permit2_2612_amount_mismatch" },
  // OpenZeppelin's ReentrancyGuardTransient (the proxies' base): no code of its own, in 2.27 or here.
  { contract: "proxy (both)", abi: exactPermit2ProxyAbi, error: "ReentrancyGuardReentrantCall", code: fallback, sdk227: transactionFailed },
  { contract: "upto proxy", abi: uptoPermit2ProxyAbi, error: "AmountExceedsPermitted", code: "upto_amount_exceeds_permitted", sdk227: "upto_amount_exceeds_permitted" },
  { contract: "upto proxy", abi: uptoPermit2ProxyAbi, error: "UnauthorizedFacilitator", code: "upto_unauthorized_facilitator", sdk227: "upto_unauthorized_facilitator" },
];

/** Where our code and 2.27's differ, and why (revert-reasons.ts says so). */
const deliberate = new Set(["InvalidSigner", "InvalidContractSignature"]);

/** `error Name(` declarations of a Solidity file. */
function solidityErrors(file: string): string[] {
  return [...readFileSync(new URL(`../../../contracts/${file}`, import.meta.url), "utf8").matchAll(/^\s*error\s+(\w+)\s*\(/gm)].map((match) => match[1]!);
}

describe("permit2Revert + reasonForPermit2Revert: each contract error maps to its code", () => {
  const cases = rows.flatMap((row) => wrappings.map(([how, wrap]) => ({ ...row, how, wrap })));
  it.each(cases)("$contract $error, via $how → $code", ({ abi, error, args, code, wrap }) => {
    const data = encodeErrorResult({ abi, errorName: error, ...(args ? { args } : {}) } as Parameters<typeof encodeErrorResult>[0]);
    const revert = permit2Revert(wrap(data));
    expect(revert.errorName).toBe(error);
    expect(revert.text).toBe(`${error}(${(args ?? []).join(", ")})`);
    expect(reasonForPermit2Revert(revert, fallback)).toBe(code);
  });

  it.each(rows.filter((row) => !deliberate.has(row.error) && row.sdk227 !== transactionFailed))("$error: the same code as 2.27's mapSettleError", ({ code, sdk227 }) => {
    expect(code).toBe(sdk227);
  });

  it.each(rows.filter((row) => deliberate.has(row.error)))("$error (deliberately unlike 2.27, whose substring match misses it): $code", ({ code, sdk227 }) => {
    expect(sdk227).toBe(transactionFailed);
    expect(code).toBe("invalid_permit2_signature");
  });

  it("the table covers every error of the ABIs, and every error the contracts declare but one never thrown", () => {
    const inTable = new Set(rows.map((row) => row.error));
    const inAbis = [...permit2Abi, ...exactPermit2ProxyAbi, ...uptoPermit2ProxyAbi].filter((item) => item.type === "error").map((item) => item.name);
    expect(inAbis.filter((name) => !inTable.has(name))).toEqual([]);
    const declared = [...solidityErrors("Permit2.sol"), ...solidityErrors("X402Permit2Proxy.sol")];
    // X402Permit2Proxy.sol: "Never thrown here (no constructor); kept for the ABI" — and not in abi.ts.
    expect(declared.filter((name) => !inTable.has(name))).toEqual(["InvalidPermit2Address"]);
  });

  it("Permit2's InvalidAmount(uint256) and the proxy's InvalidAmount() are told apart by selector, and are one code", () => {
    const permit2Data = encodeErrorResult({ abi: permit2Abi, errorName: "InvalidAmount", args: [7n] });
    const proxyData = encodeErrorResult({ abi: exactPermit2ProxyAbi, errorName: "InvalidAmount" });
    expect(permit2Data.slice(0, 10)).not.toBe(proxyData.slice(0, 10));
    expect(permit2Revert(getCallError(nodeRevert(permit2Data), { to: permit2Address })).text).toBe("InvalidAmount(7)");
    expect(permit2Revert(getCallError(nodeRevert(proxyData), { to: permit2Address })).text).toBe("InvalidAmount()");
  });
});

describe("permit2Revert + reasonForPermit2Revert: anything else is the caller's fallback", () => {
  const unknownCustom = encodeErrorResult({ abi: parseAbi(["error InvalidPermit2Address()"]), errorName: "InvalidPermit2Address" });
  const errorString = encodeErrorResult({ abi: parseAbi(["error Error(string message)"]), errorName: "Error", args: ["TRANSFER_FROM_FAILED"] });
  const panic = encodeErrorResult({ abi: parseAbi(["error Panic(uint256 code)"]), errorName: "Panic", args: [0x11n] });

  // viem's decodeErrorResult always knows Error(string) and Panic(uint256), so permit2Revert names
  // them (errorName "Error" / "Panic", text `Error(reason)`) although its doc speaks only of
  // Permit2's and the proxies' errors: no code of ours is keyed by those names, so the fallback holds.
  it.each([
    ["a custom error of no ABI of ours (the proxy's InvalidPermit2Address)", getCallError(nodeRevert(unknownCustom), { to: x402UptoPermit2ProxyAddress }), undefined, `custom error ${unknownCustom.slice(0, 10)}`],
    ["Error(string), e.g. a token's transferFrom", getCallError(nodeRevert(errorString), { to: x402UptoPermit2ProxyAddress }), "Error", "Error(TRANSFER_FROM_FAILED)"],
    ["Panic(uint256)", getEstimateGasError(nodeRevert(panic), { to: x402UptoPermit2ProxyAddress }), "Panic", "Panic(17)"],
    [
      "a revert without data",
      getCallError(new RpcRequestError({ url, body: {}, error: { code: 3, message: "execution reverted" } }), { to: x402UptoPermit2ProxyAddress }),
      undefined,
      undefined,
    ],
    ["an error that is not viem's", new Error("socket hang up"), undefined, "socket hang up"],
  ] as const)("%s → the fallback, with the text", (_name, error, errorName, text) => {
    const revert = permit2Revert(error);
    expect(revert.errorName).toBe(errorName);
    if (text !== undefined) expect(revert.text).toBe(text);
    expect(reasonForPermit2Revert(revert, ReasonCode.permit2SimulationFailed)).toBe("permit2_simulation_failed");
    expect(reasonForPermit2Revert(revert, ReasonCode.uptoTransactionFailed)).toBe("invalid_upto_evm_transaction_failed");
  });

  it("a known error's code does not depend on the fallback", () => {
    const revert = permit2Revert(getCallError(nodeRevert(encodeErrorResult({ abi: uptoPermit2ProxyAbi, errorName: "UnauthorizedFacilitator" })), { to: x402UptoPermit2ProxyAddress }));
    expect(reasonForPermit2Revert(revert, ReasonCode.uptoTransactionFailed)).toBe("upto_unauthorized_facilitator");
  });
});
