import { HTTPFacilitatorClient } from "@x402/core/server";
import { describe, expect, it } from "vitest";
import { addressOf, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { startTestFacilitator } from "../../helpers/facilitator.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { paymentBody, signPayment, v1Body } from "../../helpers/payments.js";
import { keysCommand } from "../../../src/cli/key-commands.js";
import { postJson } from "../../helpers/http.js";

/** Caller authentication, allowlists, caps and rate limits, against real Postgres and Anvil. */
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const otherPayTo = addressOf(keys.stranger);
const amountAtomic = 10_000n;

const fx = usePaymentFixture({ label: "auth", payerBalanceAtomic: 100_000_000n, facilitator: { policy: { auth: "api-keys", allowedPayTo: [], amountMaxAtomic: 1_000_000n } } });

const v1 = async () =>
  v1Body(await signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic }), { token: fx.chain.token, payTo, amountAtomic });

const body = async (to = payTo, value = amountAtomic) =>
  paymentBody(fx.chain, { payerKey: keys.payer, payTo: to, amountAtomic: value });

const call = (route: "/verify" | "/settle", payload: unknown, key?: string) => postJson(fx.facilitator.app, route, payload, key ? { authorization: `Bearer ${key}` } : {});

describe("API keys (AUTH=api-keys)", () => {
  it("answers 401 without a key, in the route's shape", async () => {
    const verify = await call("/verify", await body());
    expect(verify).toMatchObject({ status: 401, body: { isValid: false, invalidReason: "unauthorized" } });
    const settle = await call("/settle", await body());
    expect(settle).toMatchObject({ status: 401, body: { success: false, errorReason: "unauthorized", transaction: "" } });
    expect((await fx.facilitator.app.inject({ method: "GET", url: "/supported" })).statusCode).toBe(200);
  });

  it("accepts a valid key, stores only its hash, and refuses it once revoked", async () => {
    const { key, row } = await fx.facilitator.services.apiKeys.create({ name: "proxy", role: "client" });
    const stored = await withPgClient(fx.database.url, async (c) => (await c.query("select key_hash from api_keys where id = $1", [row.id])).rows[0]);
    expect(stored.key_hash).not.toContain(key.slice(5));
    expect(stored.key_hash).toMatch(/^[0-9a-f]{64}$/);
    const settled = await call("/settle", await body(), key);
    expect(settled.body).toMatchObject({ success: true });
    const settlementKey = await withPgClient(fx.database.url, async (c) => (await c.query("select api_key_id, gas_cost_wei from settlements where tx_hash = $1", [settled.body.transaction])).rows[0]);
    expect(settlementKey.api_key_id).toBe(row.id);
    expect(BigInt(settlementKey.gas_cost_wei)).toBeGreaterThan(0n);
    expect(await fx.facilitator.services.apiKeys.revoke(row.keyPrefix)).toBe(1);
    expect((await call("/verify", await body(), key)).status).toBe(401);
    expect((await call("/verify", await body(), "x402_not-a-real-key")).body).toMatchObject({ invalidReason: "unauthorized" });
  });

  it("works with the official SDK client's createAuthHeaders", async () => {
    const { key } = await fx.facilitator.services.apiKeys.create({ name: "sdk", role: "client" });
    const address = await fx.facilitator.app.listen({ host: "127.0.0.1", port: 0 });
    const headers = { Authorization: `Bearer ${key}` };
    const client = new HTTPFacilitatorClient({ url: address, createAuthHeaders: async () => ({ verify: headers, settle: headers, supported: headers }) });
    const payload = await body();
    const verified = await client.verify(payload.paymentPayload as never, payload.paymentRequirements as never);
    expect(verified).toMatchObject({ isValid: true, payer });
    const settled = await client.settle(payload.paymentPayload as never, payload.paymentRequirements as never);
    expect(settled).toMatchObject({ success: true, network: "eip155:84532" });
    const anonymous = new HTTPFacilitatorClient({ url: address });
    await expect(anonymous.verify(payload.paymentPayload as never, payload.paymentRequirements as never)).rejects.toThrow();
  });

  it("refuses a payTo outside the key's allowlist with 403 pay_to_not_allowed", async () => {
    const { key } = await fx.facilitator.services.apiKeys.create({ name: "one-shop", role: "client", allowedPayTo: [payTo] });
    expect((await call("/verify", await body(payTo), key)).body).toMatchObject({ isValid: true });
    const refused = await call("/settle", await body(otherPayTo), key);
    expect(refused).toMatchObject({ status: 403, body: { success: false, errorReason: "pay_to_not_allowed", payer, network: "eip155:84532", transaction: "" } });
  });

  it("refuses a network outside the key's allowlist with 403 network_not_allowed", async () => {
    const { key } = await fx.facilitator.services.apiKeys.create({ name: "mainnet-only", role: "client", allowedNetworks: ["eip155:8453"] });
    expect(await call("/verify", await body(), key)).toMatchObject({ status: 403, body: { invalidReason: "network_not_allowed" } });
  });

  it("lets a key allowed a network by its v1 name use it in v2, and a CAIP-2 key use it in v1", async () => {
    // Rows stored before names were normalised at creation hold whatever the operator typed.
    const { key: byV1Name } = await fx.facilitator.services.apiKeys.create({ name: "v1-named", role: "client", allowedNetworks: ["base-sepolia"] });
    expect(await call("/verify", await body(), byV1Name)).toMatchObject({ status: 200, body: { isValid: true } });
    expect(await call("/verify", await v1(), byV1Name)).toMatchObject({ status: 200, body: { isValid: true } });
    const { key: byCaip2 } = await fx.facilitator.services.apiKeys.create({ name: "caip2-named", role: "client", allowedNetworks: ["eip155:84532"] });
    expect(await call("/verify", await v1(), byCaip2)).toMatchObject({ status: 200, body: { isValid: true } });
    const { key: mainnetByName } = await fx.facilitator.services.apiKeys.create({ name: "base-only", role: "client", allowedNetworks: ["base"] });
    expect(await call("/verify", await v1(), mainnetByName)).toMatchObject({ status: 403, body: { invalidReason: "network_not_allowed" } });
  });

  it("stores --networks of `keys create` as CAIP-2, and refuses a name that is no network", async () => {
    const lines: string[] = [];
    await keysCommand(["create", "--name", "cli-networks", "--networks", "base-sepolia, eip155:8453"], { DATABASE_URL: fx.database.url }, (line) => lines.push(line));
    const key = lines.find((line) => line.startsWith("key: "))!.slice("key: ".length);
    const row = await fx.facilitator.services.apiKeys.findActive(key);
    expect(row?.allowedNetworks).toEqual(["eip155:84532", "eip155:8453"]);
    expect(await call("/verify", await body(), key)).toMatchObject({ status: 200, body: { isValid: true } });
    await expect(keysCommand(["create", "--name", "typo", "--networks", "base-sepolai"], { DATABASE_URL: fx.database.url }, () => {})).rejects.toThrow(/--networks: "base-sepolai"/);
  });

  it("refuses an amount above MAX_AMOUNT_ATOMIC with 403 amount_above_limit", async () => {
    const { key } = await fx.facilitator.services.apiKeys.create({ name: "caps", role: "client" });
    expect(await call("/verify", await body(payTo, 1_000_001n), key)).toMatchObject({ status: 403, body: { invalidReason: "amount_above_limit" } });
  });

  it("refuses a settlement whose worst-case gas does not fit in the key's daily budget (429 gas_budget_exhausted), leaving the authorization free", async () => {
    const { key } = await fx.facilitator.services.apiKeys.create({ name: "budget", role: "client", dailyGasBudgetWei: 1n });
    const payment = await body();
    const refused = await call("/settle", payment, key);
    expect(refused).toMatchObject({ status: 429, body: { success: false, errorReason: "gas_budget_exhausted" } });
    const { key: unlimited } = await fx.facilitator.services.apiKeys.create({ name: "no-budget", role: "client" });
    expect((await call("/settle", payment, unlimited)).body).toMatchObject({ success: true });
  });

  it("rate-limits per key, with Retry-After, separately for verify and settle", async () => {
    const { key } = await fx.facilitator.services.apiKeys.create({ name: "slow", role: "client", rateLimitPerMinute: 2 });
    const payload = await body();
    expect((await call("/verify", payload, key)).status).toBe(200);
    expect((await call("/verify", payload, key)).status).toBe(200);
    const limited = await call("/verify", payload, key);
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ isValid: false, invalidReason: "rate_limited" });
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    // settle has its own counter; another key has its own too.
    expect((await call("/settle", payload, key)).status).toBe(200);
    const { key: other } = await fx.facilitator.services.apiKeys.create({ name: "fast", role: "client" });
    expect((await call("/verify", await body(), other)).status).toBe(200);
  });
});

describe("with AUTH=off", () => {
  it("rate-limits per IP and needs no key", async () => {
    const open = await startTestFacilitator({ databaseUrl: fx.database.url, rpcUrls: [fx.chain.rpcUrl], token: fx.chain.token, limits: { rateLimitPerMinute: 1 } });
    try {
      const payload = await body();
      expect((await open.app.inject({ method: "POST", url: "/verify", payload })).statusCode).toBe(200);
      expect((await open.app.inject({ method: "POST", url: "/verify", payload })).statusCode).toBe(429);
    } finally {
      await open.close();
    }
  });
});
