import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { NewApiKey } from "../../../src/store/api-keys-repo.js";
import { migrationsFolder, runMigrations } from "../../../src/store/migrate.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { paymentBody } from "../../helpers/payments.js";
import { postJson } from "../../helpers/http.js";

/**
 * Idempotency-Key on /settle with several tenants (AUTH=api-keys), against real Postgres and
 * Anvil: each API key has its own keys, and a recorded answer is only returned to a caller the
 * policy lets through.
 */
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

const fx = usePaymentFixture({
  label: "idempotency",
  payerBalanceAtomic: 100_000_000n,
  facilitator: { policy: { auth: "api-keys", allowedPayTo: [], amountMaxAtomic: undefined } },
});

const body = async (to = payTo) =>
  paymentBody(fx.chain, { payerKey: keys.payer, payTo: to, amountAtomic });

async function settle(payload: unknown, idempotencyKey: string, apiKey?: string, app: TestFacilitator["app"] = fx.facilitator.app) {
  const headers: Record<string, string> = { "idempotency-key": idempotencyKey };
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  return postJson(app, "/settle", payload, headers);
}

const tenant = async (name: string, extra: Partial<NewApiKey> = {}) =>
  (await fx.facilitator.services.apiKeys.create({ name, role: "client", ...extra })).key;

describe("Idempotency-Key across API keys", () => {
  it("does not give tenant B the answer recorded for tenant A's key", async () => {
    const [a, b] = [await tenant("tenant-a"), await tenant("tenant-b")];
    const payment = await body();
    const first = await settle(payment, "order-1", a);
    expect(first.body).toMatchObject({ success: true });
    // B replays A's request under A's Idempotency-Key: B has no record, so the payment itself answers.
    const replayed = await settle(payment, "order-1", b);
    expect(replayed.status).toBe(200);
    expect(replayed.body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: first.body.transaction });
    // A's own retry still gets A's recorded answer.
    expect((await settle(payment, "order-1", a)).body).toEqual(first.body);
  });

  it("does not let tenant B squat an Idempotency-Key that tenant A uses next", async () => {
    const [a, b] = [await tenant("squatted"), await tenant("squatter")];
    expect((await settle(await body(), "order-2", b)).body).toMatchObject({ success: true });
    const own = await settle(await body(), "order-2", a);
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ success: true });
  });

  it("still refuses the same key with another body (422) and answers a retry from the record, per tenant", async () => {
    const a = await tenant("strict");
    const payment = await body();
    const first = await settle(payment, "order-3", a);
    expect(first.body).toMatchObject({ success: true });
    expect(await settle(await body(), "order-3", a)).toMatchObject({ status: 422, body: { success: false, errorReason: "idempotency_key_reused" } });
    expect((await settle(payment, "order-3", a)).body).toEqual(first.body);
  });

  it("checks the key's allowlist before answering from the record", async () => {
    // The operator narrows the key's allowlist between the call and its retry: the retry is
    // refused like any new request, not served the recorded outcome.
    const other = addressOf(keys.stranger);
    const a = await tenant("allowlisted", { allowedPayTo: [other] });
    const payment = await body(other);
    const first = await settle(payment, "order-4", a);
    expect(first.body).toMatchObject({ success: true });
    const row = await fx.facilitator.services.apiKeys.findActive(a);
    await withPgClient(fx.database.url, (client) => client.query("update api_keys set allowed_pay_to = $2 where id = $1", [row!.id, [payTo.toLowerCase()]]));
    const refused = await settle(payment, "order-4", a);
    expect(refused).toMatchObject({ status: 403, body: { success: false, errorReason: "pay_to_not_allowed", transaction: "" } });
  });

  it("answers a replay from the record without reserving the key's gas budget again", async () => {
    const a = await tenant("budgeted", { dailyGasBudgetWei: 10n ** 18n });
    const keyId = (await fx.facilitator.services.apiKeys.list()).find((row) => row.name === "budgeted")!.id;
    const payment = await body();
    const first = await settle(payment, "order-5", a);
    expect(first.body).toMatchObject({ success: true });
    const spent = await fx.facilitator.services.gasBudget.todayWei(keyId);
    expect(spent.spentWei).toBeGreaterThan(0n);
    expect(spent.reservedWei).toBe(0n);
    expect(await settle(payment, "order-5", a)).toMatchObject({ status: 200, body: first.body });
    expect(await fx.facilitator.services.gasBudget.todayWei(keyId)).toEqual(spent);
  });
});

describe("Idempotency-Key and the recorded answer", () => {
  it("records an answer that quotes a lone surrogate or NUL from the body (jsonb refuses both) instead of answering 500", async () => {
    const key = await tenant("odd-text");
    for (const [index, version] of ["\ud800", "a\u0000b"].entries()) {
      const payment = await body();
      const odd = { ...payment, paymentRequirements: { ...payment.paymentRequirements, extra: { name: "USDC", version } } };
      const first = await settle(odd, `odd-${index}`, key);
      expect(first).toMatchObject({ status: 200, body: { success: false, errorReason: "invalid_exact_evm_token_version_mismatch" } });
      const replay = await settle(odd, `odd-${index}`, key); // recorded, and replayed (the odd character as U+FFFD)
      expect(replay).toMatchObject({ status: 200, body: { success: false, errorReason: "invalid_exact_evm_token_version_mismatch", errorMessage: expect.stringContaining("\ufffd") } });
    }
  });
});

describe("Idempotency-Key with AUTH=off", () => {
  it("checks the operator's policy before answering from the record", async () => {
    const open = await startTestFacilitator({ databaseUrl: fx.database.url, rpcUrls: [fx.chain.rpcUrl], token: fx.chain.token });
    const strict = await startTestFacilitator({
      databaseUrl: fx.database.url,
      rpcUrls: [fx.chain.rpcUrl],
      token: fx.chain.token,
      policy: { auth: "off", allowedPayTo: [addressOf(keys.stranger).toLowerCase()], amountMaxAtomic: undefined },
    });
    try {
      const payment = await body();
      expect((await settle(payment, "anon-1", undefined, open.app)).body).toMatchObject({ success: true });
      expect((await settle(payment, "anon-1", undefined, open.app)).body).toMatchObject({ success: true });
      expect(await settle(payment, "anon-1", undefined, strict.app)).toMatchObject({ status: 403, body: { errorReason: "pay_to_not_allowed" } });
    } finally {
      await strict.close();
      await open.close();
    }
  });
});

describe("migration 0004 (idempotency scope)", () => {
  it("keeps the rows recorded before it, in the AUTH=off scope of /settle", async () => {
    const database = await createTestDatabase("idempotency_migration");
    // Migrate to 0003 only: a copy of migrations/ whose journal stops there.
    const before = mkdtempSync(path.join(os.tmpdir(), "x402-migrations-"));
    try {
      cpSync(migrationsFolder, before, { recursive: true });
      const journalPath = path.join(before, "meta", "_journal.json");
      const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: Array<{ tag: string }> };
      journal.entries = journal.entries.filter((entry) => entry.tag < "0004");
      writeFileSync(journalPath, JSON.stringify(journal));
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        await migrate(drizzle(client), { migrationsFolder: before });
        await client.query(`insert into idempotency_keys (key, request_hash, response) values ('old-order', 'h', '{"success":true}'::jsonb)`);
      } finally {
        await client.end();
      }

      await runMigrations(database.url);
      await withPgClient(database.url, async (client) => {
        const rows = (await client.query("select scope, route, key, request_hash, response from idempotency_keys")).rows;
        expect(rows).toEqual([{ scope: "", route: "settle", key: "old-order", request_hash: "h", response: { success: true } }]);
        const primaryKey = await client.query(
          `select array_agg(a.attname::text order by array_position(i.indkey, a.attnum)) as columns
             from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
            where i.indrelid = 'idempotency_keys'::regclass and i.indisprimary`,
        );
        expect(primaryKey.rows[0].columns).toEqual(["scope", "route", "key"]);
        // The same key may now exist once per scope.
        await client.query(`insert into idempotency_keys (scope, route, key, request_hash) values ('00000000-0000-4000-8000-000000000000', 'settle', 'old-order', 'h2')`);
      });
    } finally {
      rmSync(before, { recursive: true, force: true });
      await database.drop();
    }
  });
});
