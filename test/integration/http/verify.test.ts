import { describe, expect, it } from "vitest";
import { addressOf, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { authorizationOf, malleate, nowSeconds, randomNonce, signPayment, v1Body, v2Body, v2Requirements, type SignPaymentOptions } from "../../helpers/payments.js";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { transferWithAuthorizationCall } from "../../../src/exact-evm/transfer-call.js";
import { createWalletClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { postJson } from "../../helpers/http.js";

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n; // $0.01

const fx = usePaymentFixture({ label: "verify", payerBalanceAtomic: 1_000_000n });

const sign = (overrides: Partial<SignPaymentOptions> = {}) =>
  signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic, ...overrides });
const requirements = (overrides: Partial<Parameters<typeof v2Requirements>[0]> = {}) =>
  v2Requirements({ token: fx.chain.token, payTo, amountAtomic, ...overrides });

const verify = (body: unknown) => postJson(fx.facilitator.app, "/verify", body);

async function expectInvalid(body: unknown, reason: string) {
  const answer = await verify(body);
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ isValid: false, invalidReason: reason, payer });
  expect(typeof answer.body.invalidMessage).toBe("string");
  return answer;
}

describe("POST /verify", () => {
  it("accepts a valid v2 payment and names the payer", async () => {
    const answer = await verify(v2Body(await sign(), requirements()));
    expect(answer).toEqual({ status: 200, body: { isValid: true, payer } });
  });

  it("accepts a valid v1 payment (network base-sepolia, maxAmountRequired)", async () => {
    const answer = await verify(v1Body(await sign(), { token: fx.chain.token, payTo, amountAtomic }));
    expect(answer).toEqual({ status: 200, body: { isValid: true, payer } });
  });

  it("rejects a signature by another key with invalid_exact_evm_signature", async () => {
    await expectInvalid(v2Body(await sign({ signerKey: keys.stranger }), requirements()), "invalid_exact_evm_signature");
  });

  it("rejects a high-s (malleated) signature with invalid_exact_evm_signature", async () => {
    const payment = await sign();
    const answer = await expectInvalid(v2Body({ ...payment, signature: malleate(payment.signature) }, requirements()), "invalid_exact_evm_signature");
    expect(answer.body.invalidMessage).toMatch(/high s/);
  });

  it("rejects a payment to another recipient with invalid_exact_evm_recipient_mismatch", async () => {
    const payment = await sign({ payTo: addressOf(keys.stranger) });
    await expectInvalid(v2Body(payment, requirements()), "invalid_exact_evm_recipient_mismatch");
  });

  it("rejects an authorization below the amount with invalid_exact_evm_payload_authorization_value_mismatch (v2)", async () => {
    await expectInvalid(v2Body(await sign({ valueAtomic: amountAtomic - 1n }), requirements()), "invalid_exact_evm_payload_authorization_value_mismatch");
  });

  it("rejects an authorization above the amount with invalid_exact_evm_payload_authorization_value_mismatch (exact equality)", async () => {
    await expectInvalid(v2Body(await sign({ valueAtomic: amountAtomic + 1n }), requirements()), "invalid_exact_evm_payload_authorization_value_mismatch");
  });

  it("names a v1 amount mismatch as 2.27's v1 facilitator does: invalid_exact_evm_authorization_value", async () => {
    await expectInvalid(v1Body(await sign({ valueAtomic: amountAtomic + 1n }), { token: fx.chain.token, payTo, amountAtomic }), "invalid_exact_evm_authorization_value");
  });

  it("rejects an authorization expiring within 6 s with invalid_exact_evm_payload_authorization_valid_before", async () => {
    const payment = await sign({ validBeforeSeconds: nowSeconds() + 3n });
    await expectInvalid(v2Body(payment, requirements()), "invalid_exact_evm_payload_authorization_valid_before");
  });

  it("rejects an authorization not yet valid with invalid_exact_evm_payload_authorization_valid_after", async () => {
    const payment = await sign({ validAfterSeconds: nowSeconds() + 120n });
    await expectInvalid(v2Body(payment, requirements()), "invalid_exact_evm_payload_authorization_valid_after");
  });

  it("rejects a network it does not serve with invalid_network", async () => {
    const other = requirements({ network: "eip155:8453" });
    await expectInvalid(v2Body(await sign(), other), "invalid_network");
  });

  it("rejects a v1 payload whose network differs from the requirements with invalid_exact_evm_network_mismatch", async () => {
    const body = v1Body(await sign(), { token: fx.chain.token, payTo, amountAtomic, payloadNetwork: "base" });
    await expectInvalid(body, "invalid_exact_evm_network_mismatch");
  });

  it("rejects an asset it does not accept with invalid_payment_requirements", async () => {
    const stranger = addressOf(keys.stranger);
    const payment = await sign({ token: stranger });
    await expectInvalid(v2Body(payment, requirements({ token: stranger })), "invalid_payment_requirements");
  });

  it("rejects a wrong EIP-712 name with invalid_exact_evm_token_name_mismatch", async () => {
    const payment = await sign({ domainName: "USD Coin" });
    await expectInvalid(v2Body(payment, requirements({ name: "USD Coin" })), "invalid_exact_evm_token_name_mismatch");
  });

  it("rejects a scheme other than exact and upto with unsupported_scheme", async () => {
    const req = { ...requirements(), scheme: "deferred" };
    await expectInvalid(v2Body(await sign(), req, req), "unsupported_scheme");
  });

  it("rejects an EIP-3009 payload for upto (Permit2 only) with unsupported_payload_type", async () => {
    const req = { ...requirements(), scheme: "upto" };
    await expectInvalid(v2Body(await sign(), req, req), "unsupported_payload_type");
  });

  it("rejects an unknown x402Version with invalid_x402_version", async () => {
    const body = v2Body(await sign(), requirements());
    await expectInvalid({ ...body, paymentPayload: { ...body.paymentPayload, x402Version: 3 } }, "invalid_x402_version");
  });

  it("rejects a v2 payload whose accepted differs from the requirements", async () => {
    const payment = await sign();
    await expectInvalid(v2Body(payment, requirements(), requirements({ amountAtomic: 1n })), "invalid_payment_requirements");
    await expectInvalid(v2Body(payment, requirements(), { ...requirements(), scheme: "exact2" }), "invalid_exact_evm_scheme");
    await expectInvalid(v2Body(payment, requirements(), requirements({ network: "eip155:8453" })), "invalid_exact_evm_network_mismatch");
  });

  it("rejects a payer without enough USDC with invalid_exact_evm_insufficient_balance", async () => {
    const poor = keys.stranger;
    const payment = await signPayment({ payerKey: poor, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic });
    const answer = await verify(v2Body(payment, requirements()));
    expect(answer.body).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_insufficient_balance", payer: addressOf(poor) });
  });

  it("rejects a nonce already used on chain with invalid_exact_evm_nonce_already_used", async () => {
    const payment = await sign();
    const wallet = createWalletClient({ account: privateKeyToAccount(keys.stranger), transport: http(fx.chain.rpcUrl) });
    const call = transferWithAuthorizationCall(fx.chain.token, authorizationOf(payment), payment.signature);
    const hash = await wallet.sendTransaction({ ...call, chain: null });
    await fx.chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 });
    await expectInvalid(v2Body(payment, requirements()), "invalid_exact_evm_nonce_already_used");
  });

  it("rejects a nonce claimed in Postgres with invalid_exact_evm_nonce_already_used", async () => {
    const payment = await sign();
    await fx.facilitator.services.settlements.claim({
      chainId: fx.chain.chainId,
      asset: fx.chain.token,
      payer,
      nonce: payment.authorization.nonce,
      payTo,
      valueAtomic: amountAtomic,
      validAfterSeconds: authorizationOf(payment).validAfterSeconds,
      validBeforeSeconds: authorizationOf(payment).validBeforeSeconds,
      authorizationDigest: "0x00",
      signature: payment.signature,
      x402Version: 2,
      network: "eip155:84532",
      leaseMs: 60_000,
    });
    const answer = await expectInvalid(v2Body(payment, requirements()), "invalid_exact_evm_nonce_already_used");
    expect(answer.body.invalidMessage).toMatch(/being settled/);
  });

  it("answers malformed bodies with 400 and a reason code", async () => {
    const payment = await sign();
    const broken = v2Body({ ...payment, authorization: { ...payment.authorization, nonce: "0x1234" } }, requirements());
    const answer = await verify(broken);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ isValid: false, invalidReason: "invalid_payload" });
    const notJson = await fx.facilitator.app.inject({ method: "POST", url: "/verify", payload: "{not json", headers: { "content-type": "application/json" } });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json()).toMatchObject({ isValid: false, invalidReason: "invalid_payload" });
  });

  it("answers a fault of ours on /verify with 500 unexpected_verify_error, not the settle code", async () => {
    // A real fault, not a stub: the replay check's table is missing, so its query fails with a
    // Postgres error that is neither the caller's mistake nor "database unavailable".
    await withPgClient(fx.database.url, (client) => client.query("alter table settlements rename to settlements_hidden"));
    try {
      const answer = await verify(v2Body(await sign(), requirements()));
      expect(answer.status).toBe(500);
      expect(answer.body).toMatchObject({ isValid: false, invalidReason: "unexpected_verify_error", error: "unexpected_verify_error", payer });
      expect(answer.body.invalidMessage).not.toMatch(/settlements/); // the SQL stays in the log
    } finally {
      await withPgClient(fx.database.url, (client) => client.query("alter table settlements_hidden rename to settlements"));
    }
  });

  it("keeps eip3009Abi in step with the token (authorizationState is readable)", async () => {
    const used = await fx.chain.publicClient.readContract({ address: fx.chain.token, abi: eip3009Abi, functionName: "authorizationState", args: [payer, randomNonce()] });
    expect(used).toBe(false);
  });
});
