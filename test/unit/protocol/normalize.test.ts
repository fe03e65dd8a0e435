import { describe, expect, it } from "vitest";
import { InvalidRequestError } from "../../../src/errors.js";
import { normalize } from "../../../src/protocol/normalize.js";
import { renderSettle } from "../../../src/protocol/render.js";

const served = (version: 1 | 2, network: string) => (version === 1 ? network === "base-sepolia" : network === "eip155:84532");
const authorization = {
  from: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
  to: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
  value: "10000",
  validAfter: "0",
  validBefore: "99999999999",
  nonce: `0x${"ab".repeat(32)}`,
};
const signature = `0x${"11".repeat(65)}`;
const requirementsV2 = {
  scheme: "exact",
  network: "eip155:84532",
  amount: "10000",
  asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  payTo: authorization.to,
  maxTimeoutSeconds: 60,
  extra: { name: "USDC", version: "2" },
};
const v2 = () => ({ paymentPayload: { x402Version: 2, accepted: { ...requirementsV2 }, payload: { signature, authorization: { ...authorization } } }, paymentRequirements: { ...requirementsV2 } });

describe("normalize", () => {
  it("turns a v2 body into one request with checksummed addresses and bigint amounts", () => {
    const result = normalize(v2(), served);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.request).toMatchObject({
      x402Version: 2,
      chainId: 84532,
      authorization: { from: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", valueAtomic: 10_000n, validBeforeSeconds: 99_999_999_999n },
      requirements: { amountAtomic: 10_000n, extraName: "USDC", extraVersion: "2" },
    });
  });

  it("reads v1's maxAmountRequired and network names", () => {
    const { amount: _amount, ...rest } = requirementsV2;
    const body = {
      paymentPayload: { x402Version: 1, scheme: "exact", network: "base-sepolia", payload: { signature, authorization } },
      paymentRequirements: { ...rest, network: "base-sepolia", maxAmountRequired: "10000", resource: "http://x", description: "" },
    };
    const result = normalize(body, served);
    expect(result.ok && result.request.requirements.amountAtomic).toBe(10_000n);
    expect(result.ok && result.request.chainId).toBe(84532);
  });

  it("answers an unknown version, scheme or network as a rejection (HTTP 200), not an error", () => {
    const badVersion = v2();
    badVersion.paymentPayload.x402Version = 7;
    expect(normalize(badVersion, served)).toMatchObject({ ok: false, rejection: { reason: "invalid_x402_version" } });
    const unknownScheme = v2();
    unknownScheme.paymentRequirements.scheme = "deferred";
    expect(normalize(unknownScheme, served)).toMatchObject({ ok: false, rejection: { reason: "unsupported_scheme" } });
    // upto is served over Permit2 only (@x402/evm 2.27): an EIP-3009 payload is the wrong type.
    const uptoWithEip3009 = v2();
    uptoWithEip3009.paymentRequirements.scheme = "upto";
    expect(normalize(uptoWithEip3009, served)).toMatchObject({ ok: false, rejection: { reason: "unsupported_payload_type" } });
    const solana = v2();
    solana.paymentRequirements.network = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp";
    expect(normalize(solana, served)).toMatchObject({ ok: false, rejection: { reason: "invalid_network" }, payer: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" });
  });

  it.each([
    ["a short nonce", (b: ReturnType<typeof v2>) => (b.paymentPayload.payload.authorization.nonce = "0x12")],
    ["a value with a leading zero", (b: ReturnType<typeof v2>) => (b.paymentPayload.payload.authorization.value = "010")],
    ["a value above uint256", (b: ReturnType<typeof v2>) => (b.paymentPayload.payload.authorization.value = "9".repeat(78))],
    ["a non-hex signature", (b: ReturnType<typeof v2>) => (b.paymentPayload.payload.signature = "0xzz")],
    ["a missing authorization", (b: ReturnType<typeof v2>) => delete (b.paymentPayload.payload as { authorization?: unknown }).authorization],
  ])("throws a 400 invalid_payload for %s", (_name, mutate) => {
    const body = v2();
    mutate(body);
    expect(() => normalize(body, served)).toThrow(InvalidRequestError);
    try {
      normalize(body, served);
    } catch (error) {
      expect(error).toMatchObject({ code: "invalid_payload", httpStatus: 400 });
    }
  });

  it("throws a 400 invalid_payment_requirements for a malformed payTo", () => {
    const body = v2();
    body.paymentRequirements.payTo = "0x123";
    expect(() => normalize(body, served)).toThrow(/paymentRequirements.payTo/);
  });
});

describe("renderSettle", () => {
  it("always carries transaction and network, even on failure", () => {
    expect(renderSettle({ success: false, reason: "invalid_network", message: "m", transaction: "" }, "", undefined)).toEqual({
      success: false,
      errorReason: "invalid_network",
      errorMessage: "m",
      transaction: "",
      network: "",
    });
  });
});
