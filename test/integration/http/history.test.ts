import { readFileSync } from "node:fs";
import type { Address, Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { startOperatorFacilitator, type OperatorFacilitator } from "../../helpers/operator.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { postJson } from "../../helpers/http.js";

/**
 * GET /settlements, /settlements/:id, /openapi.json and /docs against real payments: real Anvil,
 * real Postgres, real signatures. Six settlements: five confirmed, one failed (unfunded payer).
 */
const payer = addressOf(keys.payer);
const poorPayer = addressOf(keys.stranger); // never funded: its settlement fails at the gas estimate
const payToA = addressOf(keys.payTo);
const payToB = addressOf(keys.facilitator3);

interface Item {
  id: string;
  status: string;
  network: string;
  chainId: number;
  asset: string;
  payer: string;
  payTo: string;
  valueAtomic: string;
  txHash: string | null;
  settledTxHash: string | null;
  errorReason: string | null;
  createdAt: string;
  updatedAt: string;
  gasUsed: number | null;
  gasCostWei: string | null;
}

interface Settled {
  payer: Address;
  payTo: Address;
  valueAtomic: bigint;
  nonce: Hex;
  success: boolean;
  transaction: string;
}

let chain: TestChain;
let database: TestDatabase;
let facilitator: OperatorFacilitator;
const settled: Settled[] = [];

async function settle(payerKey: Hex, payTo: Address, valueAtomic: bigint): Promise<Settled> {
  const payment = await signPayment({ payerKey, token: chain.token, chainId: chain.chainId, payTo, valueAtomic });
  const { body } = await postJson<{ success: boolean; transaction: string }>(facilitator.app, "/settle", v2Body(payment, v2Requirements({ token: chain.token, payTo, amountAtomic: valueAtomic })));
  const entry = { payer: addressOf(payerKey), payTo, valueAtomic, nonce: payment.authorization.nonce, success: body.success, transaction: body.transaction };
  settled.push(entry);
  return entry;
}

async function get(url: string, headers: Record<string, string> = {}, app = facilitator.app) {
  const response = await app.inject({ method: "GET", url, headers });
  return { status: response.statusCode, body: response.json() as Record<string, unknown> };
}

async function page(query: string): Promise<{ items: Item[]; nextCursor: string | null }> {
  const response = await get(`/settlements${query}`);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body as unknown as { items: Item[]; nextCursor: string | null };
}

/** Follows nextCursor to the end; `query` must start with "?". */
async function allPages(query: string): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const current = await page(cursor === null ? query : `${query}&cursor=${cursor}`);
    ids.push(...current.items.map((item) => item.id));
    cursor = current.nextCursor;
    pages += 1;
    expect(pages).toBeLessThan(50);
  } while (cursor !== null);
  return { ids, pages };
}

/** The order the API promises, straight from Postgres. */
async function idsInOrder(where = "true", params: unknown[] = []): Promise<string[]> {
  return withPgClient(database.url, async (client) => (await client.query(`select id from settlements where ${where} order by created_at desc, id desc`, params)).rows.map((row) => row.id as string));
}

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(payer, 100_000_000n);
  database = await createTestDatabase("history");
  facilitator = await startOperatorFacilitator({ databaseUrl: database.url, rpcUrls: [chain.rpcUrl], token: chain.token });
  await settle(keys.payer, payToA, 10_000n);
  await settle(keys.payer, payToB, 20_000n);
  await settle(keys.stranger, payToA, 15_000n); // fails: the payer holds no USDC
  await settle(keys.payer, payToA, 30_000n);
  await settle(keys.payer, payToB, 40_000n);
  await settle(keys.payer, payToA, 50_000n);
});

afterAll(async () => {
  await facilitator?.close();
  await database?.drop();
  await chain?.stop();
});

describe("GET /settlements", () => {
  it("lists every settlement newest first, with amounts as strings and the chain's facts", async () => {
    expect(settled.map((entry) => entry.success)).toEqual([true, true, false, true, true, true]);
    const { items, nextCursor } = await page("");
    expect(nextCursor).toBeNull();
    expect(items.map((item) => item.id)).toEqual(await idsInOrder());
    expect(items.map((item) => item.valueAtomic)).toEqual(["50000", "40000", "30000", "15000", "20000", "10000"]);

    const newest = items[0]!;
    const last = settled.at(-1)!;
    expect(newest).toMatchObject({
      status: "confirmed",
      network: "eip155:84532",
      chainId: 84532,
      asset: chain.token.toLowerCase(),
      payer: payer.toLowerCase(),
      payTo: payToA.toLowerCase(),
      valueAtomic: "50000",
      txHash: last.transaction,
      settledTxHash: last.transaction,
      errorReason: null,
    });
    expect(newest.gasUsed).toBeGreaterThan(20_000);
    expect(BigInt(newest.gasCostWei!)).toBeGreaterThan(0n);
    expect(new Date(newest.createdAt).toISOString()).toBe(newest.createdAt);
    expect(Date.parse(newest.updatedAt)).toBeGreaterThanOrEqual(Date.parse(newest.createdAt));
    expect(Object.keys(newest).sort()).toEqual(
      ["id", "status", "network", "chainId", "asset", "payer", "payTo", "valueAtomic", "scheme", "transferMethod", "permittedAtomic", "txHash", "settledTxHash", "errorReason", "createdAt", "updatedAt", "gasUsed", "gasCostWei"].sort(),
    );

    const failed = items.find((item) => item.status === "failed")!;
    expect(failed).toMatchObject({ payer: poorPayer.toLowerCase(), valueAtomic: "15000", txHash: null, settledTxHash: null, gasUsed: null, gasCostWei: null });
    expect(failed.errorReason).toMatch(/^invalid_exact_evm_/);
  });

  it("pages with limit=2 over three pages: every row exactly once, in order", async () => {
    const first = await page("?limit=2");
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).toMatch(/^[A-Za-z0-9_-]+$/);
    const { ids, pages } = await allPages("?limit=2");
    expect(pages).toBe(3);
    expect(ids).toEqual(await idsInOrder());
    expect(new Set(ids).size).toBe(6);
    // A page that ends exactly at the last row says so: no empty extra page.
    const { pages: threePages } = await allPages("?limit=3");
    expect(threePages).toBe(2);
    expect((await allPages("?limit=4")).pages).toBe(2);
  });

  it("filters by payer (any case), payTo, status and since, alone and together, and pages within a filter", async () => {
    const ids = async (query: string) => (await allPages(query)).ids;
    expect(await ids(`?payer=${payer.toUpperCase().replace("0X", "0x")}`)).toEqual(await idsInOrder("payer = $1", [payer.toLowerCase()]));
    expect(await ids(`?payer=${payer}`)).toHaveLength(5);
    expect(await ids(`?payer=${poorPayer}`)).toHaveLength(1);
    expect(await ids(`?payTo=${payToB}`)).toEqual(await idsInOrder("pay_to = $1", [payToB.toLowerCase()]));
    expect(await ids(`?payTo=${payToB}`)).toHaveLength(2);
    expect(await ids("?status=failed")).toEqual(await idsInOrder("status = 'failed'"));
    expect(await ids("?status=confirmed")).toHaveLength(5);
    expect(await ids("?status=submitted")).toEqual([]);
    expect(await ids(`?payTo=${payToA}&status=confirmed`)).toHaveLength(3);
    expect(await ids(`?payer=${poorPayer}&status=confirmed`)).toEqual([]);
    const filteredPages = await allPages(`?payTo=${payToA}&limit=1`);
    expect(filteredPages.pages).toBe(4);
    expect(filteredPages.ids).toEqual(await idsInOrder("pay_to = $1", [payToA.toLowerCase()]));

    // since: created_at >= since. The fourth settlement's own timestamp keeps it and the two after it.
    const all = (await page("")).items;
    const fourth = all[2]!; // newest first: the 30000 payment
    expect(fourth.valueAtomic).toBe("30000");
    expect((await page(`?since=${encodeURIComponent(fourth.createdAt)}`)).items.map((item) => item.valueAtomic)).toEqual(["50000", "40000", "30000"]);
    expect((await page(`?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).items).toEqual([]);
    expect((await page("?since=2000-01-01T00:00:00%2B02:00")).items).toHaveLength(6);
  });

  it("answers 400 with a reason code, never 500, for every malformed parameter", async () => {
    const crafted = (createdAt: string, id = "00000000-0000-4000-8000-000000000000") => Buffer.from(JSON.stringify([createdAt, id])).toString("base64url");
    const notFromUs = Buffer.from(JSON.stringify(["yesterday", "x"])).toString("base64url");
    const cases: Array<[string, RegExp]> = [
      ["?limit=0", /limit/],
      ["?limit=201", /limit/],
      ["?limit=abc", /limit/],
      ["?limit=1.5", /limit/],
      ["?limit=-1", /limit/],
      ["?payer=0x1234", /payer/],
      ["?payer=alice", /payer/],
      ["?payTo=0xZZ", /payTo/],
      ["?status=done", /status/],
      ["?status=confirmed&status=failed", /status/],
      ["?since=yesterday", /since/],
      ["?since=2025-01-01", /since/],
      ["?since=2025-13-45T99:00:00Z", /since/],
      ["?cursor=!!!", /cursor/],
      [`?cursor=${"a".repeat(300)}`, /cursor/],
      [`?cursor=${notFromUs}`, /cursor/],
      ["?cursor=bm90LWpzb24", /cursor/], // "not-json"
      // Shaped like ours, but not a position Postgres can read: each was a 500 with the SQL in the log.
      [`?cursor=${crafted("2025-02-30T00:00:00.000000Z")}`, /cursor/],
      [`?cursor=${crafted("2025-01-31T24:00:00.000000Z")}`, /cursor/],
      [`?cursor=${crafted("2025-13-01T00:00:00.000000Z")}`, /cursor/],
      [`?cursor=${crafted("0000-01-01T00:00:00.000000Z")}`, /cursor/],
      [`?cursor=${crafted("2025-01-31T12:00:60.000000Z")}`, /cursor/],
      [`?cursor=${crafted("2025-01-31T12:00:00.000000Z", "0000000g-0000-4000-8000-000000000000")}`, /cursor/],
      [`?cursor=${Buffer.from(JSON.stringify(["2025-01-31T12:00:00.000000Z", "00000000-0000-4000-8000-000000000000", "x"])).toString("base64url")}`, /cursor/],
      [`?pay_to=${payToA}`, /unknown query parameter "pay_to"/],
    ];
    for (const [query, message] of cases) {
      const response = await get(`/settlements${query}`);
      expect(response.status, query).toBe(400);
      expect(response.body.error, query).toBe("invalid_payload");
      expect(response.body.message, query).toMatch(message);
    }
  });
});

describe("GET /settlements/:id", () => {
  it("answers one settlement, 404 for an unknown id, 400 for a malformed one", async () => {
    const listed = (await page("?status=failed")).items[0]!;
    const one = await get(`/settlements/${listed.id}`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual(listed);
    expect((await get(`/settlements/${listed.id.toUpperCase()}`)).body).toEqual(listed);

    const missing = await get("/settlements/00000000-0000-4000-8000-000000000000");
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: "not_found" });
    for (const bad of ["abc", "00000000-0000-4000-8000-00000000000g", "1", "'%20or%201=1"]) {
      const response = await get(`/settlements/${bad}`);
      expect(response.status, bad).toBe(400);
      expect(response.body).toMatchObject({ error: "invalid_payload", message: "id must be a settlement id (uuid)" });
    }
  });
});

describe("keyset pagination across equal and microsecond-apart timestamps", () => {
  it("lists every row once when created_at ties or differs below the millisecond", async () => {
    // Rewrites created_at (restored afterwards): three rows share one instant, three sit 1-3 µs after it.
    const original = await withPgClient(database.url, async (client) => (await client.query("select id, created_at from settlements")).rows as Array<{ id: string; created_at: Date }>);
    try {
      await withPgClient(database.url, (client) =>
        client.query(`
          with ranked as (select id, row_number() over (order by id) as n from settlements)
          update settlements s set created_at = '2030-01-01T00:00:00.000001Z'::timestamptz
            + case when r.n <= 3 then interval '0' else make_interval(secs => (r.n - 3) / 1000000.0) end
          from ranked r where r.id = s.id`),
      );
      const expected = await idsInOrder();
      for (const limit of [1, 2, 4]) {
        const { ids } = await allPages(`?limit=${limit}`);
        expect(ids, `limit=${limit}`).toEqual(expected);
      }
    } finally {
      await withPgClient(database.url, async (client) => {
        for (const row of original) await client.query("update settlements set created_at = $2 where id = $1", [row.id, row.created_at]);
      });
    }
  });
});

describe("admin protection", () => {
  it("with AUTH=off lets loopback callers in and keeps remote ones out", async () => {
    expect((await get("/settlements")).status).toBe(200);
    for (const url of ["/settlements", `/settlements/00000000-0000-4000-8000-000000000000`, "/dashboard"]) {
      const remote = await facilitator.app.inject({ method: "GET", url, remoteAddress: "203.0.113.7" });
      expect(remote.statusCode, url).toBe(401);
      expect(remote.json()).toMatchObject({ error: "unauthorized" });
    }
  });

  it("with AUTH=api-keys: no key 401, client key 403, admin key 200, revoked admin key 401", async () => {
    const strict = await startOperatorFacilitator({
      databaseUrl: database.url,
      rpcUrls: [chain.rpcUrl],
      token: chain.token,
      policy: { auth: "api-keys", allowedPayTo: [], amountMaxAtomic: undefined },
    });
    try {
      const client = await strict.services.apiKeys.create({ name: "shop", role: "client" });
      const admin = await strict.services.apiKeys.create({ name: "ops", role: "admin" });
      const retired = await strict.services.apiKeys.create({ name: "old-ops", role: "admin" });
      await strict.services.apiKeys.revoke(retired.row.id);
      const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
      const someId = (await page("")).items[0]!.id;
      for (const url of ["/settlements", `/settlements/${someId}`, "/dashboard"]) {
        const anonymous = await strict.app.inject({ method: "GET", url });
        expect(anonymous.statusCode, url).toBe(401);
        expect(anonymous.json()).toMatchObject({ error: "unauthorized" });
        const asClient = await strict.app.inject({ method: "GET", url, headers: bearer(client.key) });
        expect(asClient.statusCode, url).toBe(403);
        expect(asClient.json()).toMatchObject({ error: "forbidden" });
        expect((await strict.app.inject({ method: "GET", url, headers: bearer(retired.key) })).statusCode, url).toBe(401);
        expect((await strict.app.inject({ method: "GET", url, headers: { authorization: "Bearer x402_nope" } })).statusCode, url).toBe(401);
        const asAdmin = await strict.app.inject({ method: "GET", url, headers: bearer(admin.key) });
        expect(asAdmin.statusCode, url).toBe(200);
      }
      const listed = await get("/settlements?limit=2", bearer(admin.key), strict.app);
      expect((listed.body.items as Item[]).map((item) => item.id)).toEqual((await idsInOrder()).slice(0, 2));
      // Authentication comes before validation: a caller without a key learns nothing about the parameters.
      expect((await get("/settlements?limit=9999")).status).toBe(400);
      expect((await get("/settlements?limit=9999", {}, strict.app)).status).toBe(401);
      expect((await get("/settlements/abc", bearer(client.key), strict.app)).status).toBe(403);
      // The API description stays public.
      expect((await strict.app.inject({ method: "GET", url: "/openapi.json" })).statusCode).toBe(200);
    } finally {
      await strict.close();
    }
  });
});

describe("OpenAPI", () => {
  const httpMethods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

  it("serves an OpenAPI 3 document at /openapi.json listing the payment, info and operator routes", async () => {
    const response = await facilitator.app.inject({ method: "GET", url: "/openapi.json" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toMatch(/application\/json/);
    const document = response.json() as {
      openapi: string;
      info: { title: string; version: string };
      paths: Record<string, Record<string, { responses?: Record<string, unknown>; parameters?: Array<{ name: string; in: string; required?: boolean; schema?: unknown }> }>>;
      components?: { securitySchemes?: Record<string, unknown> };
    };
    const packageJson = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(document.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(document.info).toMatchObject({ title: "x402-facilitator", version: packageJson.version });
    for (const path of ["/verify", "/settle", "/supported", "/settlements", "/settlements/{id}", "/dashboard"]) expect(document.paths, path).toHaveProperty([path]);
    expect(Object.keys(document.paths).some((path) => path.startsWith("/docs") || path === "/openapi.json")).toBe(false);
    expect(document.paths["/verify"]!.post).toBeDefined();
    expect(document.paths["/settle"]!.post).toBeDefined();
    expect(document.components?.securitySchemes).toHaveProperty(["bearerAuth"]);

    const history = document.paths["/settlements"]!.get!;
    expect(history.parameters!.map((parameter) => parameter.name).sort()).toEqual(["cursor", "limit", "payTo", "payer", "since", "status"]);
    expect(history.responses).toHaveProperty(["200"]);
    expect(document.paths["/settlements/{id}"]!.get!.parameters).toEqual([expect.objectContaining({ name: "id", in: "path", required: true })]);

    // Structural checks of OpenAPI 3.0 rules (no validator package is installed).
    for (const [path, item] of Object.entries(document.paths)) {
      expect(path).toMatch(/^\//);
      for (const [method, operation] of Object.entries(item)) {
        expect(httpMethods, `${path} ${method}`).toContain(method);
        expect(Object.keys(operation.responses ?? {}).length, `${path} ${method} responses`).toBeGreaterThan(0);
        for (const code of Object.keys(operation.responses!)) expect(code).toMatch(/^([1-5]\d\d|[1-5]XX|default)$/);
        for (const parameter of operation.parameters ?? []) {
          expect(["query", "path", "header", "cookie"]).toContain(parameter.in);
          if (parameter.in === "path") {
            expect(parameter.required).toBe(true);
            expect(path).toContain(`{${parameter.name}}`);
          }
          expect(parameter.schema).toBeDefined();
        }
      }
    }
    const text = response.body;
    for (const match of text.matchAll(/"\$ref":"#\/([^"]+)"/g)) {
      const target = match[1]!.split("/").reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], document);
      expect(target, match[0]).toBeDefined();
    }
  });

  it("serves Swagger UI at /docs from local assets", async () => {
    const response = await facilitator.app.inject({ method: "GET", url: "/docs" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toMatch(/text\/html/);
    expect(response.body).toMatch(/swagger-ui/i);
    expect(response.body).not.toMatch(/src="https?:\/\//);
    const bundle = await facilitator.app.inject({ method: "GET", url: "/docs/static/swagger-ui-bundle.js" });
    expect(bundle.statusCode).toBe(200);
  });
});
