import { describe, expect, it } from "vitest";
import { InvalidRequestError } from "../../../src/errors.js";
import { eip2612ExtensionOf } from "../../../src/protocol/eip2612-extension.js";
import { normalize } from "../../../src/protocol/normalize.js";

const token = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const owner = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const payTo = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const facilitator = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const served = () => true;

function body(scheme: "exact" | "upto", witness: Record<string, string> = scheme === "upto" ? { to: payTo, facilitator, validAfter: "0" } : { to: payTo, validAfter: "0" }) {
  const requirements = { scheme, network: "eip155:84532", amount: "500000", asset: token, payTo, maxTimeoutSeconds: 300, extra: { name: "USDC", version: "2", assetTransferMethod: "permit2" } };
  return {
    paymentPayload: {
      x402Version: 2,
      accepted: requirements,
      payload: {
        signature: `0x${"11".repeat(65)}`,
        permit2Authorization: {
          from: owner,
          permitted: { token, amount: "500000" },
          spender: "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002",
          nonce: "115792089237316195423570985008687907853269984665640564039457584007913129639935",
          deadline: "2000000000",
          witness,
        },
      },
    } as Record<string, unknown>,
    paymentRequirements: requirements as Record<string, unknown>,
  };
}

describe("normalize: Permit2 payloads", () => {
  it("parses a permit2Authorization payload as a Permit2 payment, with its facts in the authorization view", () => {
    const normalized = normalize(body("upto"), served);
    expect(normalized.ok).toBe(true);
    if (!normalized.ok) return;
    const { request } = normalized;
    expect(request.transferMethod).toBe("permit2");
    expect(request.permit2).toMatchObject({ owner, token, permittedAtomic: 500_000n, nonce: 2n ** 256n - 1n, deadlineSeconds: 2_000_000_000n, witness: { to: payTo, facilitator, validAfterSeconds: 0n } });
    expect(request.authorization).toEqual({ from: owner, to: payTo, valueAtomic: 500_000n, validAfterSeconds: 0n, validBeforeSeconds: 2_000_000_000n, nonce: `0x${"f".repeat(64)}` });
  });

  it("takes a hex nonce too (the spec's example) and names it the same 32 bytes", () => {
    const b = body("exact");
    ((b.paymentPayload.payload as Record<string, Record<string, unknown>>).permit2Authorization as Record<string, unknown>).nonce = "0x01";
    const normalized = normalize(b, served);
    expect(normalized.ok && normalized.request.authorization.nonce).toBe(`0x${"0".repeat(63)}1`);
  });

  it("upto without witness.facilitator is unsupported_payload_type; upto in v1 is unsupported_scheme", () => {
    expect(normalize(body("upto", { to: payTo, validAfter: "0" }), served)).toMatchObject({ ok: false, rejection: { reason: "unsupported_payload_type" } });
    const v1 = { paymentPayload: { x402Version: 1, scheme: "upto", network: "base-sepolia", payload: {} }, paymentRequirements: { scheme: "upto", network: "base-sepolia", maxAmountRequired: "1", asset: token, payTo } };
    expect(normalize(v1, served)).toMatchObject({ ok: false, rejection: { reason: "unsupported_scheme" } });
  });

  it.each([
    ["a nonce above uint256", (p: Record<string, unknown>) => (p.nonce = `${2n ** 256n}`)],
    ["a non-decimal amount", (p: Record<string, unknown>) => ((p.permitted as Record<string, string>).amount = "1e6")],
    ["a bad spender", (p: Record<string, unknown>) => (p.spender = "0x1234")],
  ])("refuses %s with 400 invalid_payload", (_name, mutate) => {
    const b = body("exact");
    mutate((b.paymentPayload.payload as Record<string, Record<string, unknown>>).permit2Authorization as Record<string, unknown>);
    expect(() => normalize(b, served)).toThrow(InvalidRequestError);
  });
});

describe("eip2612ExtensionOf", () => {
  const info = { from: owner, asset: token, spender: "0x000000000022D473030F116dDEE9F6B43aC78BA3", amount: "500000", nonce: "0", deadline: "2000000000", signature: `0x${"22".repeat(65)}`, version: "1" };

  it("reads the extension's info as 2.27 does: absent unless all eight fields are there, malformed when one has the wrong form", () => {
    expect(eip2612ExtensionOf(undefined)).toBeUndefined();
    expect(eip2612ExtensionOf({ eip2612GasSponsoring: { info: { ...info, signature: "" } } })).toBeUndefined();
    expect(eip2612ExtensionOf({ eip2612GasSponsoring: { info } })).toMatchObject({ ok: true, permit: { from: owner, amountAtomic: 500_000n, deadlineSeconds: 2_000_000_000n, version: "1" } });
    expect(eip2612ExtensionOf({ eip2612GasSponsoring: { info: { ...info, amount: "-1" } } })).toMatchObject({ ok: false });
    expect(eip2612ExtensionOf({ eip2612GasSponsoring: { info: { ...info, from: 7 } } })).toMatchObject({ ok: false });
  });
});
