/**
 * Every field the 2026 SDKs read from /verify and /settle answers, checked on our real answers
 * (real Anvil, Postgres and HTTP) by the SDKs' own parsing:
 * - @x402/core 2.27 HTTPFacilitatorClient: its zod schemas for 200 answers (private to the module:
 *   their field lists are read from the installed source map, so a field added by 2.28 shows up
 *   here), its VerifyError / SettleError for 4xx/5xx answers;
 * - the resource server on top of it (x402ResourceServer.verifyPayment / settlePayment and
 *   x402HTTPResourceServer.processSettlement → PAYMENT-RESPONSE, decoded by the buyer's
 *   decodePaymentResponseHeader);
 * - x402 1.2 (v1): useFacilitator, which hands the answer to x402-express as it came.
 * For v2 and v1 payments alike, success and failure, the amount settled (`amount`) included.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { decodePaymentResponseHeader, HTTPFacilitatorClient, x402HTTPResourceServer } from "@x402/core/http";
import { x402ResourceServer } from "@x402/core/server";
import { SettleError, VerifyError, type PaymentPayload, type PaymentRequirements } from "@x402/core/types";
import { ExactEvmScheme as ExactEvmClientScheme } from "@x402/evm/exact/client";
import { ExactEvmScheme as ExactEvmServerScheme } from "@x402/evm/exact/server";
import { x402Client } from "@x402/fetch";
import { useFacilitator } from "x402/verify";
import { addressOf, keys } from "../helpers/chain.js";
import { startAnotherInstance, usePaymentFixture } from "../helpers/fixture.js";
import type { TestFacilitator } from "../helpers/facilitator.js";
import { signPayment, v1Body } from "../helpers/payments.js";
import { sdkSource, zodObjectFields } from "../helpers/sdk-sources.js";

const network = "eip155:84532" as const;
const payer = addressOf(keys.payer);
const broke = addressOf(keys.stranger); // holds no USDC
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;
const txHash = /^0x[0-9a-f]{64}$/;

const fx = usePaymentFixture({ label: "sdk_fields", payerBalanceAtomic: 10_000_000n, facilitator: { listen: true } });
/** The same chain and database, with an amount cap: its refusals are 403 error answers. */
let capped: TestFacilitator;
beforeAll(async () => {
  capped = await startAnotherInstance(fx, { listen: true, policy: { auth: "off", allowedPayTo: [], amountMaxAtomic: amountAtomic - 1n } });
});
afterAll(async () => {
  await capped?.close();
});

// The fields HTTPFacilitatorClient's zod schemas take from a 200 answer, as 2.27 declares them.
const clientSource = sdkSource("@x402/core", "@x402/core/http", "src/http/httpFacilitatorClient.ts");
const verifyFields = zodObjectFields(clientSource, "verifyResponseSchema");
const settleFields = zodObjectFields(clientSource, "settleResponseSchema");

/** Records the raw body of every answer from our facilitators while `run` runs the SDK. */
async function withRawAnswers<T>(run: () => Promise<T>): Promise<{ result: T | undefined; error: unknown; raw: Record<string, unknown>[]; statuses: number[] }> {
  const original = globalThis.fetch;
  const raw: Record<string, unknown>[] = [];
  const statuses: number[] = [];
  globalThis.fetch = async (input, init) => {
    const response = await original(input, init);
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (/\/(verify|settle)$/.test(url)) {
      raw.push((await response.clone().json()) as Record<string, unknown>);
      statuses.push(response.status);
    }
    return response;
  };
  try {
    return { result: await run(), error: undefined, raw, statuses };
  } catch (error) {
    return { result: undefined, error, raw, statuses };
  } finally {
    globalThis.fetch = original;
  }
}

/**
 * A 200 answer went through the client's schema whole: every field it requires is there, every
 * field we sent is one it reads (none dropped on the way), and each comes out as we sent it.
 */
function expectParsedWhole(fields: { key: string; optional: boolean }[], raw: Record<string, unknown>, parsed: object) {
  const known = fields.map((field) => field.key);
  expect(fields.filter((field) => !field.optional && !(field.key in raw)).map((field) => field.key), "required fields missing").toEqual([]);
  expect(Object.keys(raw).filter((key) => !known.includes(key)), "fields the client does not read").toEqual([]);
  const kept = Object.fromEntries(Object.entries(parsed).filter(([key]) => key in raw));
  expect(kept).toEqual(raw);
}

const requirements = (): PaymentRequirements => ({
  scheme: "exact",
  network,
  amount: amountAtomic.toString(),
  asset: fx.chain.token,
  payTo,
  maxTimeoutSeconds: 300,
  extra: { name: "USDC", version: "2" },
});

async function signedPayload(privateKey: Hex): Promise<PaymentPayload> {
  const client = new x402Client().register(network, new ExactEvmClientScheme(privateKeyToAccount(privateKey)));
  return client.createPaymentPayload({ x402Version: 2, resource: { url: "http://127.0.0.1/weather" }, accepts: [requirements()] });
}

/** A v1 request as the v1 SDK sends it: (payload, requirements). */
async function v1Request(privateKey: Hex, valueAtomic = amountAtomic) {
  const payment = await signPayment({ payerKey: privateKey, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic });
  const body = v1Body(payment, { token: fx.chain.token, payTo, amountAtomic });
  return { payload: body.paymentPayload, requirements: body.paymentRequirements, nonce: payment.authorization.nonce };
}

describe("the 2.27 HTTPFacilitatorClient's schemas against our 200 answers", () => {
  it("reads the fields it parses from the installed 2.27 source", () => {
    expect(verifyFields.map((field) => field.key)).toEqual(expect.arrayContaining(["isValid", "invalidReason", "invalidMessage", "payer", "extensions", "extra"]));
    expect(settleFields.map((field) => field.key)).toEqual(expect.arrayContaining(["success", "errorReason", "errorMessage", "payer", "transaction", "network", "amount", "extensions", "extra"]));
    expect(settleFields.filter((field) => !field.optional).map((field) => field.key)).toEqual(["success", "transaction", "network"]);
    expect(verifyFields.filter((field) => !field.optional).map((field) => field.key)).toEqual(["isValid"]);
  });

  it("v2: valid, settled (with amount), then duplicate (the original hash) and already-used", async () => {
    const client = new HTTPFacilitatorClient({ url: fx.facilitator.baseUrl! });
    const payload = await signedPayload(keys.payer);

    const verified = await withRawAnswers(() => client.verify(payload, requirements()));
    expect(verified.raw[0]).toEqual({ isValid: true, payer });
    expectParsedWhole(verifyFields, verified.raw[0]!, verified.result!);

    const settled = await withRawAnswers(() => client.settle(payload, requirements()));
    expect(settled.raw[0]).toEqual({ success: true, transaction: expect.stringMatching(txHash), network, payer, amount: amountAtomic.toString() });
    expectParsedWhole(settleFields, settled.raw[0]!, settled.result!);
    const transaction = settled.result!.transaction;

    const again = await withRawAnswers(() => client.settle(payload, requirements()));
    expect(again.raw[0]).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction, network, payer });
    expect(again.raw[0]).not.toHaveProperty("amount"); // this call settled nothing
    expectParsedWhole(settleFields, again.raw[0]!, again.result!);

    const used = await withRawAnswers(() => client.verify(payload, requirements()));
    expect(used.raw[0]).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_nonce_already_used", invalidMessage: expect.any(String), payer });
    expectParsedWhole(verifyFields, used.raw[0]!, used.result!);
  });

  it("v2: a business refusal keeps transaction \"\" and network on settle", async () => {
    const client = new HTTPFacilitatorClient({ url: fx.facilitator.baseUrl! });
    const poor = await signedPayload(keys.stranger);
    const verified = await withRawAnswers(() => client.verify(poor, requirements()));
    expect(verified.raw[0]).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_insufficient_balance", payer: broke });
    expectParsedWhole(verifyFields, verified.raw[0]!, verified.result!);
    const settled = await withRawAnswers(() => client.settle(poor, requirements()));
    expect(settled.raw[0]).toEqual({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", errorMessage: expect.any(String), transaction: "", network, payer: broke });
    expectParsedWhole(settleFields, settled.raw[0]!, settled.result!);
  });

  it("v1 through the same client: the v1 network name, the amount on success, transaction \"\" on failure", async () => {
    const client = new HTTPFacilitatorClient({ url: fx.facilitator.baseUrl! });
    const { payload, requirements: v1Requirements } = await v1Request(keys.payer);
    const verified = await withRawAnswers(() => client.verify(payload as never, v1Requirements as never));
    expectParsedWhole(verifyFields, verified.raw[0]!, verified.result!);
    const settled = await withRawAnswers(() => client.settle(payload as never, v1Requirements as never));
    expect(settled.raw[0]).toEqual({ success: true, transaction: expect.stringMatching(txHash), network: "base-sepolia", payer, amount: amountAtomic.toString() });
    expectParsedWhole(settleFields, settled.raw[0]!, settled.result!);

    const poor = await v1Request(keys.stranger);
    const refused = await withRawAnswers(() => client.settle(poor.payload as never, poor.requirements as never));
    expect(refused.raw[0]).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "", network: "base-sepolia", payer: broke });
    expectParsedWhole(settleFields, refused.raw[0]!, refused.result!);
  });
});

describe("the 2.27 client on our 4xx answers: VerifyError / SettleError carry every field", () => {
  it("a 403 policy refusal: reason, message, payer; on settle also transaction \"\" and network", async () => {
    const client = new HTTPFacilitatorClient({ url: capped.baseUrl! });
    const payload = await signedPayload(keys.payer);

    const verified = await withRawAnswers(() => client.verify(payload, requirements()));
    expect(verified.statuses).toEqual([403]);
    expect(verified.error).toBeInstanceOf(VerifyError);
    const verifyError = verified.error as VerifyError;
    expect({ statusCode: verifyError.statusCode, invalidReason: verifyError.invalidReason, invalidMessage: verifyError.invalidMessage, payer: verifyError.payer }).toEqual({
      statusCode: 403,
      invalidReason: "amount_above_limit",
      invalidMessage: verified.raw[0]!.invalidMessage,
      payer,
    });

    const settled = await withRawAnswers(() => client.settle(payload, requirements()));
    expect(settled.statuses).toEqual([403]);
    expect(settled.error).toBeInstanceOf(SettleError);
    const settleError = settled.error as SettleError;
    expect({
      statusCode: settleError.statusCode,
      errorReason: settleError.errorReason,
      errorMessage: settleError.errorMessage,
      payer: settleError.payer,
      transaction: settleError.transaction,
      network: settleError.network,
    }).toEqual({ statusCode: 403, errorReason: "amount_above_limit", errorMessage: settled.raw[0]!.errorMessage, payer, transaction: "", network });
  });

  it("a 400 malformed body: the reason and message, transaction \"\" and network \"\" (nothing parsed)", async () => {
    const client = new HTTPFacilitatorClient({ url: fx.facilitator.baseUrl! });
    const payload = await signedPayload(keys.payer);
    const malformed = { ...payload, payload: { ...payload.payload, signature: "0xnot-hex" } };
    const settled = await withRawAnswers(() => client.settle(malformed, requirements()));
    expect(settled.statuses).toEqual([400]);
    const error = settled.error as SettleError;
    expect(error).toBeInstanceOf(SettleError);
    expect({ errorReason: error.errorReason, transaction: error.transaction, network: error.network }).toEqual({ errorReason: "invalid_payload", transaction: "", network: "" });
    expect(error.errorMessage).toBe(settled.raw[0]!.errorMessage);
  });
});

describe("the 2.27 resource server's handling of our answers", () => {
  let resourceServer: x402ResourceServer;
  let httpServer: x402HTTPResourceServer;
  beforeAll(async () => {
    resourceServer = new x402ResourceServer(new HTTPFacilitatorClient({ url: fx.facilitator.baseUrl! })).register(network, new ExactEvmServerScheme());
    httpServer = new x402HTTPResourceServer(resourceServer, {});
    await httpServer.initialize();
  });

  it("verifyPayment, then processSettlement: PAYMENT-RESPONSE carries transaction, network, payer and amount", async () => {
    const payload = await signedPayload(keys.payer);
    expect(await resourceServer.verifyPayment(payload, requirements())).toMatchObject({ isValid: true, payer });
    const settled = await httpServer.processSettlement(payload, requirements());
    expect(settled).toMatchObject({ success: true, transaction: expect.stringMatching(txHash), network, payer, amount: amountAtomic.toString() });
    const header = settled.success ? settled.headers["PAYMENT-RESPONSE"] : undefined;
    expect(decodePaymentResponseHeader(header!)).toEqual({ success: true, transaction: settled.transaction, network, payer, amount: amountAtomic.toString() });
  });

  it("a refused settlement comes back as success:false with our reason, transaction \"\" and network in PAYMENT-RESPONSE", async () => {
    const poor = await signedPayload(keys.stranger);
    const settled = await httpServer.processSettlement(poor, requirements());
    expect(settled).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "", network, payer: broke });
    const header = settled.headers["PAYMENT-RESPONSE"];
    expect(decodePaymentResponseHeader(header!)).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "", network, payer: broke });
  });
});

describe("x402 1.2 (v1) useFacilitator against our v1 answers", () => {
  it("returns our answers as sent, with the fields x402-express reads (isValid, invalidReason, payer; success, errorReason, transaction, network)", async () => {
    const v1 = useFacilitator({ url: fx.facilitator.baseUrl as `${string}://${string}` });
    const { payload, requirements: v1Requirements } = await v1Request(keys.payer);
    const verified = await withRawAnswers(() => v1.verify(payload as never, v1Requirements as never));
    expect(verified.result).toEqual({ isValid: true, payer });
    expect(verified.result).toEqual(verified.raw[0]);
    const settled = await withRawAnswers(() => v1.settle(payload as never, v1Requirements as never));
    expect(settled.result).toEqual({ success: true, transaction: expect.stringMatching(txHash), network: "base-sepolia", payer, amount: amountAtomic.toString() });

    const mismatch = await v1Request(keys.payer, amountAtomic + 1n);
    const refused = await withRawAnswers(() => v1.settle(mismatch.payload as never, mismatch.requirements as never));
    expect(refused.result).toMatchObject({ success: false, errorReason: "invalid_exact_evm_authorization_value", transaction: "", network: "base-sepolia", payer });
  });
});
