import { randomUUID } from "node:crypto";
import { appendPaymentIdentifierToExtensions, declarePaymentIdentifierExtension, PAYMENT_IDENTIFIER } from "@x402/extensions/payment-identifier";
import { describe, expect, it } from "vitest";
import { addressOf, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";
import { paymentBody, signPayment, v1Body } from "../../helpers/payments.js";

/**
 * The payment-identifier extension on /settle, against real Postgres and Anvil (AUTH=api-keys):
 * the v2 payload's `extensions["payment-identifier"].info.id` is the request's idempotency key,
 * in the same key space and record as the Idempotency-Key header. Payloads carry the extension
 * as @x402/extensions 2.27 builds it (declared by the resource server, the id appended by the client).
 */
const payTo = addressOf(keys.payTo);
const signer = addressOf(keys.facilitator);
const amountAtomic = 10_000n;

const fx = usePaymentFixture({
  label: "payment_identifier",
  payerBalanceAtomic: 100_000_000n,
  facilitator: { policy: { auth: "api-keys", allowedPayTo: [], amountMaxAtomic: undefined } },
});

type Body = Awaited<ReturnType<typeof paymentBody>>;

const newId = () => `pay_${randomUUID().replace(/-/g, "")}`;
const payment = () => paymentBody(fx.chain, { payerKey: keys.payer, payTo, amountAtomic });

/** `body` with the extension as the SDK's client leaves it: the server's declaration plus the id. */
function withId(body: Body, id: string): Body {
  const extensions: Record<string, unknown> = { [PAYMENT_IDENTIFIER]: declarePaymentIdentifierExtension() };
  appendPaymentIdentifierToExtensions(extensions, id);
  return { ...body, paymentPayload: { ...body.paymentPayload, extensions } } as Body;
}

/** `body` with `extensions["payment-identifier"].info` as given (for ids the SDK would refuse to build). */
function withInfo(body: Body, info: Record<string, unknown>): Body {
  return { ...body, paymentPayload: { ...body.paymentPayload, extensions: { [PAYMENT_IDENTIFIER]: { info } } } } as Body;
}

async function settle(body: unknown, apiKey: string | undefined, headers: Record<string, string> = {}, app: TestFacilitator["app"] = fx.facilitator.app) {
  return postJson(app, "/settle", body, apiKey ? { ...headers, authorization: `Bearer ${apiKey}` } : headers);
}

const tenant = async (name: string) => (await fx.facilitator.services.apiKeys.create({ name, role: "client" })).key;
const tenantId = async (name: string) => (await fx.facilitator.services.apiKeys.list()).find((row) => row.name === name)!.id;

const signerTransactions = () => fx.chain.publicClient.getTransactionCount({ address: signer, blockTag: "pending" });
const idempotencyRows = (key: string) =>
  withPgClient(fx.database.url, async (client) => (await client.query("select scope, route, key from idempotency_keys where key = $1 order by scope", [key])).rows);
const settlementRowsOf = (body: Body) =>
  withPgClient(fx.database.url, async (client) => (await client.query("select status, tx_hash from settlements where nonce = $1", [body.paymentPayload.payload.authorization.nonce.toLowerCase()])).rows);

describe("GET /supported", () => {
  it("lists the payment-identifier extension", async () => {
    const answer = await fx.facilitator.app.inject({ method: "GET", url: "/supported" });
    expect(answer.json().extensions).toEqual(["payment-identifier", "eip2612GasSponsoring", "bazaar"]);
  });
});

/** What a replay of a settled payment gets under its payment identifier: the hash, never a second success. */
const replayOf = (first: { body: Record<string, unknown> }) => ({ status: 200, body: { success: false, errorReason: "duplicate_settlement", transaction: first.body.transaction } });

describe("payment-identifier as the idempotency key of /settle", () => {
  it("answers a replay of the same id and request without a second transaction or a second success (the id is the payer's)", async () => {
    const key = await tenant("replay");
    const id = newId();
    const body = withId(await payment(), id);
    const first = await settle(body, key);
    expect(first).toMatchObject({ status: 200, body: { success: true, transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/) } });
    const sent = await signerTransactions();
    const paid = await fx.chain.balanceOf(payTo);

    // One success per authorization: a replay (a payer sending the same payment again, or concurrently)
    // learns the hash as duplicate_settlement, exactly as without an id.
    const replays = await Promise.all([0, 1, 2].map(() => settle(body, key)));
    for (const replay of replays) {
      expect(replay).toMatchObject({ status: 200, body: { success: false, errorReason: "duplicate_settlement", transaction: first.body.transaction } });
    }
    expect(await signerTransactions()).toBe(sent);
    expect(await fx.chain.balanceOf(payTo)).toBe(paid);
    expect(await settlementRowsOf(body)).toEqual([{ status: "confirmed", tx_hash: first.body.transaction }]);
    expect(await idempotencyRows(id)).toEqual([{ scope: await tenantId("replay"), route: "settle", key: id }]);
  });

  it("answers the same id with another request 409 payment_identifier_conflict, and settles nothing for it", async () => {
    const key = await tenant("conflict");
    const id = newId();
    const first = withId(await payment(), id);
    expect((await settle(first, key)).body).toMatchObject({ success: true });
    const sent = await signerTransactions();

    const other = withId(await payment(), id);
    const message = "this payment identifier was used with a different request body";
    expect(await settle(other, key)).toEqual({
      status: 409,
      body: { success: false, errorReason: "payment_identifier_conflict", errorMessage: message, transaction: "", network: "", error: "payment_identifier_conflict", message },
    });
    expect(await settlementRowsOf(other)).toEqual([]);
    expect(await signerTransactions()).toBe(sent);
    // The other payment settles under an id of its own.
    expect((await settle(withId(await payment(), newId()), key)).body).toMatchObject({ success: true });
  });

  it("keeps each API key's ids apart: the same id under two keys is two records", async () => {
    const [a, b] = [await tenant("tenant-a"), await tenant("tenant-b")];
    const id = newId();
    const paymentA = withId(await payment(), id);
    const answerA = await settle(paymentA, a);
    expect(answerA.body).toMatchObject({ success: true });
    // B's own payment under the same id is new for B, not a conflict with A's.
    const answerB = await settle(withId(await payment(), id), b);
    expect(answerB).toMatchObject({ status: 200, body: { success: true } });
    expect(answerB.body.transaction).not.toBe(answerA.body.transaction);
    // B replaying A's request under A's id gets no record of A's: the payment itself answers.
    const replayedByB = await settle(paymentA, b);
    expect(replayedByB).toMatchObject({ status: 409, body: { errorReason: "payment_identifier_conflict" } });
    // A's retry learns its hash again (duplicate_settlement: one success per authorization).
    expect(await settle(paymentA, a)).toMatchObject(replayOf(answerA));
    expect((await idempotencyRows(id)).map((row) => row.scope).sort()).toEqual([await tenantId("tenant-a"), await tenantId("tenant-b")].sort());
  });

  it("lets another key replay a request it has no record of: the payment answers duplicate_settlement", async () => {
    const [a, b] = [await tenant("owner"), await tenant("bystander")];
    const body = withId(await payment(), newId());
    const first = await settle(body, a);
    expect(first.body).toMatchObject({ success: true });
    expect(await settle(body, b)).toMatchObject({ status: 200, body: { success: false, errorReason: "duplicate_settlement", transaction: first.body.transaction } });
  });

  it("is one mechanism with Idempotency-Key: the header and an equal id are one key and one record", async () => {
    const key = await tenant("one-mechanism");
    const id = newId();
    const body = withId(await payment(), id);
    const first = await settle(body, key, { "idempotency-key": id });
    expect(first.body).toMatchObject({ success: true });
    expect(await idempotencyRows(id)).toHaveLength(1);
    // The same request with the id alone, and with both again: the record.
    expect(await settle(body, key)).toMatchObject(replayOf(first));
    expect(await settle(body, key, { "idempotency-key": id })).toMatchObject(replayOf(first));
    // The header alone names the same key: another body under it is the header's 422.
    const { extensions: _dropped, ...withoutExtension } = body.paymentPayload as Body["paymentPayload"] & { extensions?: unknown };
    expect(await settle({ ...body, paymentPayload: withoutExtension }, key, { "idempotency-key": id })).toMatchObject({ status: 422, body: { errorReason: "idempotency_key_reused" } });
    // The id with another payment: the extension's 409.
    expect(await settle(withId(await payment(), id), key, { "idempotency-key": id })).toMatchObject({ status: 409, body: { errorReason: "payment_identifier_conflict" } });
    expect(await idempotencyRows(id)).toHaveLength(1);
  });

  it("refuses a header and an id that differ (400 idempotency_keys_differ) before looking either up", async () => {
    const key = await tenant("differ");
    const [id, header] = [newId(), newId()];
    const body = withId(await payment(), id);
    const message = "Idempotency-Key and the payment-identifier id differ: send one of them, or the same value in both";
    expect(await settle(body, key, { "idempotency-key": header })).toEqual({
      status: 400,
      body: { success: false, errorReason: "idempotency_keys_differ", errorMessage: message, transaction: "", network: "", error: "idempotency_keys_differ", message },
    });
    expect(await idempotencyRows(id)).toEqual([]);
    expect(await idempotencyRows(header)).toEqual([]);
    expect(await settlementRowsOf(body)).toEqual([]);
  });

  it.each([
    ["15 characters", "pay_12345678901"],
    ["129 characters", "p".repeat(129)],
    ["a character outside A-Z a-z 0-9 _ -", "pay_1234567890abcdef!"],
    ["a space", "pay_1234567890 abcdef"],
    ["not a string", 1234567890123456],
  ])("refuses an id of %s (400 invalid_payload) instead of settling without idempotency", async (_what, id) => {
    const key = await tenant(`bad-id-${randomUUID()}`);
    const body = withInfo(await payment(), { required: false, id });
    const answer = await settle(body, key);
    expect(answer).toMatchObject({ status: 400, body: { success: false, errorReason: "invalid_payload", errorMessage: 'extensions["payment-identifier"].info.id must be 16-128 characters of A-Z, a-z, 0-9, _ and -' } });
    expect(await settlementRowsOf(body)).toEqual([]);
  });

  it("accepts the bounds of the format: 16 and 128 characters", async () => {
    const key = await tenant("bounds");
    for (const id of [`b${"x".repeat(15)}`, `B${"_-".repeat(63)}Z`]) {
      const body = withId(await payment(), id);
      const first = await settle(body, key);
      expect(first.body).toMatchObject({ success: true });
      expect(await settle(body, key)).toMatchObject(replayOf(first));
      expect(await idempotencyRows(id)).toHaveLength(1);
    }
  });

  it("settles an extension without an id (the declaration echoed) with no key, as without the extension", async () => {
    const key = await tenant("no-id");
    const body = withInfo(await payment(), { required: false });
    expect((await settle(body, key)).body).toMatchObject({ success: true });
    expect(await settle(body, key)).toMatchObject({ status: 200, body: { success: false, errorReason: "duplicate_settlement" } });
  });

  it("does not read extensions on a v1 payload (the extension is v2's)", async () => {
    const key = await tenant("v1");
    const id = newId();
    const signed = await signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic });
    const v1 = v1Body(signed, { token: fx.chain.token, payTo, amountAtomic });
    const body = { ...v1, paymentPayload: { ...v1.paymentPayload, extensions: { [PAYMENT_IDENTIFIER]: { info: { required: false, id } } } } };
    expect((await settle(body, key)).body).toMatchObject({ success: true });
    expect(await idempotencyRows(id)).toEqual([]);
  });
});

describe("payment-identifier with AUTH=off", () => {
  it("keeps callers without a key in one scope of their own, apart from every API key's", async () => {
    const open = await startTestFacilitator({ databaseUrl: fx.database.url, rpcUrls: [fx.chain.rpcUrl], token: fx.chain.token });
    try {
      const key = await tenant("keyed");
      const id = newId();
      const keyed = await settle(withId(await payment(), id), key);
      expect(keyed.body).toMatchObject({ success: true });
      const anonymousBody = withId(await payment(), id);
      const anonymous = await settle(anonymousBody, undefined, {}, open.app);
      expect(anonymous).toMatchObject({ status: 200, body: { success: true } });
      expect(anonymous.body.transaction).not.toBe(keyed.body.transaction);
      expect(await settle(anonymousBody, undefined, {}, open.app)).toMatchObject(replayOf(anonymous));
      expect(await settle(withId(await payment(), id), undefined, {}, open.app)).toMatchObject({ status: 409, body: { errorReason: "payment_identifier_conflict" } });
      expect((await idempotencyRows(id)).map((row) => row.scope).sort()).toEqual(["", await tenantId("keyed")].sort());
    } finally {
      await open.close();
    }
  });
});
