/**
 * Bazaar discovery against real Postgres and Anvil: settled v2 payments carrying a `bazaar`
 * extension are catalogued (after the answer, apart from it) and listed by /discovery/resources and
 * /discovery/search, read here both directly and through @x402/extensions' withBazaar client; what
 * is malformed, invalid, too large, too slow to validate or unwritable is skipped and counted while
 * the payment's answer stays the same; caps, eviction and expiry hold.
 */
import { HTTPFacilitatorClient } from "@x402/core/server";
import { withBazaar } from "@x402/extensions/bazaar";
import { discoveryConcurrentMax, discoveryOffsetMax } from "../../../src/limits.js";
import { describe, expect, it } from "vitest";
import type { Address } from "viem";
import { withPgClient } from "../../helpers/database.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";
import { signPayment, v1Body, v2Body, v2Requirements } from "../../helpers/payments.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { openPolicy, type Limits, type Policy } from "../../../src/config.js";
import { bazaarQueueMax } from "../../../src/limits.js";
import { normalize, type Envelope } from "../../../src/protocol/normalize.js";

const payTo = addressOf(keys.payTo);
const otherPayTo = addressOf(keys.stranger);
const amountAtomic = 10_000n;

const fx = usePaymentFixture({ label: "discovery", payerBalanceAtomic: 100_000_000n, facilitator: { listen: true, limits: { inFlightPerPayerMax: 1_000 } } });

/** A GET endpoint's extension as bazaarResourceServerExtension leaves it (method enriched). */
function getExtension(queryParams: Record<string, string> = { city: "San Francisco" }) {
  return {
    info: { input: { type: "http", method: "GET", queryParams }, output: { type: "json", example: { weather: "foggy" } } },
    schema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: {
        input: {
          type: "object",
          properties: {
            type: { type: "string", const: "http" },
            method: { type: "string", enum: ["GET"] },
            queryParams: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
          },
          required: ["type", "method"],
          additionalProperties: false,
        },
        output: { type: "object", properties: { type: { type: "string" }, example: { type: "object" } }, required: ["type"] },
      },
      required: ["input"],
    },
  };
}

function mcpExtension(toolName: string) {
  return {
    info: { input: { type: "mcp", toolName, description: "Financial analysis of a ticker", inputSchema: { type: "object", properties: { ticker: { type: "string" } } } } },
    schema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: { input: { type: "object", properties: { type: { const: "mcp" }, toolName: { type: "string" }, inputSchema: { type: "object" } }, required: ["type", "toolName", "inputSchema"] } },
      required: ["input"],
    },
  };
}

interface PaidOptions {
  url?: string;
  resource?: Record<string, unknown>;
  extensions?: Record<string, unknown>;
  payTo?: Address;
}

/** A fresh signed v2 settle body whose payload carries `extensions` and `resource`. */
async function body(options: PaidOptions = {}) {
  const to = options.payTo ?? payTo;
  const payment = await signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo: to, valueAtomic: amountAtomic });
  const base = v2Body(payment, v2Requirements({ token: fx.chain.token, payTo: to, amountAtomic }));
  return {
    ...base,
    paymentPayload: {
      ...base.paymentPayload,
      resource: options.resource ?? { url: options.url ?? "https://api.example.com/weather?city=SF#top", description: "Weather data", mimeType: "application/json" },
      ...(options.extensions ? { extensions: options.extensions } : {}),
    },
  };
}

/** Settles, then waits until the catalogue has handled it (cataloguing runs after the answer). */
async function settle(facilitator: TestFacilitator, settleBody: unknown) {
  const answer = await postJson(facilitator.app, "/settle", settleBody);
  await facilitator.services.bazaar.idle();
  return answer;
}

async function get(path: string, facilitator: TestFacilitator = fx.facilitator) {
  const response = await facilitator.app.inject({ method: "GET", url: path });
  return { status: response.statusCode, body: response.json() as Record<string, any> };
}

async function outcomes(facilitator: TestFacilitator = fx.facilitator): Promise<Record<string, number>> {
  const metric = await facilitator.services.metrics.registry.getSingleMetric("x402_bazaar_catalogue_total")!.get();
  return Object.fromEntries(metric.values.map((value) => [String(value.labels.outcome), value.value]));
}

async function clearCatalogue() {
  await withPgClient(fx.database.url, (client) => client.query("delete from bazaar_resources"));
}

describe("Bazaar discovery", () => {
  it("advertises bazaar in /supported.extensions", async () => {
    expect((await get("/supported")).body.extensions).toEqual(["payment-identifier", "eip2612GasSponsoring", "bazaar"]);
  });

  it("catalogues a settled payment's bazaar extension: /discovery/resources lists it with its accepts, metadata and extension", async () => {
    await clearCatalogue();
    const settleBody = await body({
      resource: { url: "https://api.example.com/weather?city=SF#top", description: "Weather data", mimeType: "application/json", serviceName: "Example Weather", tags: ["weather", "Weather", "forecast"], iconUrl: "https://api.example.com/icon.png" },
      extensions: { bazaar: getExtension(), "payment-identifier": { info: { id: "pay_secret_per_payment" } } },
    });
    const answer = await settle(fx.facilitator, settleBody);
    expect(answer.body).toMatchObject({ success: true });

    const listed = await get("/discovery/resources");
    expect(listed.status).toBe(200);
    expect(listed.body).toMatchObject({ x402Version: 2, pagination: { limit: 20, offset: 0, total: 1 } });
    const [item] = listed.body.items;
    expect(item).toEqual({
      resource: "https://api.example.com/weather", // no query, no fragment
      type: "http",
      x402Version: 2,
      accepts: [settleBody.paymentRequirements],
      lastUpdated: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      description: "Weather data",
      mimeType: "application/json",
      serviceName: "Example Weather",
      tags: ["weather", "forecast"], // deduplicated case-insensitively
      iconUrl: "https://api.example.com/icon.png",
      // Other extensions are listed as present, without their per-payment info.
      extensions: { bazaar: getExtension(), "payment-identifier": {} },
    });
  });

  it("keys an entry by payTo, resource and method: a second payment refreshes it, a dynamic route's routeTemplate names it", async () => {
    await clearCatalogue();
    await settle(fx.facilitator, await body({ extensions: { bazaar: getExtension() } }));
    await settle(fx.facilitator, await body({ extensions: { bazaar: getExtension({ city: "Paris" }) } }));
    const dynamic = { ...getExtension(), routeTemplate: "/users/:userId" };
    dynamic.info.input = { ...dynamic.info.input, pathParams: { userId: "123" } } as never;
    (dynamic.schema.properties.input.properties as Record<string, unknown>).pathParams = { type: "object" };
    await settle(fx.facilitator, await body({ url: "https://api.example.com/users/123", extensions: { bazaar: dynamic } }));
    await settle(fx.facilitator, await body({ url: "https://api.example.com/users/456", extensions: { bazaar: { ...dynamic, info: { ...dynamic.info, input: { ...dynamic.info.input, pathParams: { userId: "456" } } } } } }));
    // A routeTemplate that breaks the spec's rules is discarded: the concrete path is the key.
    await settle(fx.facilitator, await body({ url: "https://api.example.com/files/a", extensions: { bazaar: { ...getExtension(), routeTemplate: "/files/%2e%2e/admin" } } }));

    const { items } = (await get("/discovery/resources")).body;
    expect(items.map((item: { resource: string }) => item.resource)).toEqual(["https://api.example.com/files/a", "https://api.example.com/users/:userId", "https://api.example.com/weather"]);
    const weather = items.find((item: { resource: string }) => item.resource.endsWith("/weather"));
    expect(weather.extensions.bazaar.info.input.queryParams).toEqual({ city: "Paris" }); // the latest payment's word
    expect(items[0].extensions.bazaar.routeTemplate).toBeUndefined();
    expect(items[1].extensions.bazaar.routeTemplate).toBe("/users/:userId");
  });

  it("filters by type, payTo, scheme, network and extensions, and pages with limit and offset", async () => {
    await clearCatalogue();
    for (const path of ["a", "b", "c"]) await settle(fx.facilitator, await body({ url: `https://api.example.com/${path}`, extensions: { bazaar: getExtension() } }));
    await settle(fx.facilitator, await body({ url: "https://mcp.example.com/mcp", payTo: otherPayTo, extensions: { bazaar: mcpExtension("financial_analysis"), "payment-identifier": {} } }));

    const resources = async (query: string) => (await get(`/discovery/resources${query}`)).body;
    const names = (answer: Record<string, any>) => answer.items.map((item: { resource: string }) => item.resource);
    expect(names(await resources(""))).toEqual(["https://mcp.example.com/mcp", "https://api.example.com/c", "https://api.example.com/b", "https://api.example.com/a"]);
    expect(names(await resources("?type=mcp"))).toEqual(["https://mcp.example.com/mcp"]);
    expect(names(await resources("?type=http"))).toHaveLength(3);
    expect(names(await resources(`?payTo=${otherPayTo.toLowerCase()}`))).toEqual(["https://mcp.example.com/mcp"]); // addresses compare case-insensitively
    expect(names(await resources(`?payTo=${payTo}`))).toHaveLength(3);
    expect(names(await resources("?scheme=exact"))).toHaveLength(4);
    expect((await resources("?scheme=batch-settlement")).items).toEqual([]);
    expect(names(await resources("?network=eip155:84532"))).toHaveLength(4);
    expect(await resources("?network=eip155:999999999")).toMatchObject({ items: [], pagination: { total: 0 } });
    expect(names(await resources("?extensions=payment-identifier"))).toEqual(["https://mcp.example.com/mcp"]);
    expect(names(await resources("?extensions=bazaar,payment-identifier"))).toEqual(["https://mcp.example.com/mcp"]);
    expect(names(await resources("?type=http&extensions=payment-identifier"))).toEqual([]);

    const first = await resources("?limit=2");
    const second = await resources("?limit=2&offset=2");
    expect(first.pagination).toEqual({ limit: 2, offset: 0, total: 4 });
    expect(second.pagination).toEqual({ limit: 2, offset: 2, total: 4 });
    expect([...names(first), ...names(second)]).toEqual(names(await resources("")));
    expect((await resources("?limit=1000")).pagination.limit).toBe(100); // x402 v2 §8.1: 1-100
    expect((await get("/discovery/resources?limit=zero")).status).toBe(400);
    expect((await get("/discovery/resources?offset=-1")).body).toMatchObject({ error: "invalid_payload" });

    const mcp = (await resources("?type=mcp")).items[0];
    expect(mcp.extensions).toEqual({ bazaar: mcpExtension("financial_analysis"), "payment-identifier": {} });
  });

  it("searches by words of the query (any word, most matches first), with filters and a cursor", async () => {
    await clearCatalogue();
    await settle(fx.facilitator, await body({ url: "https://api.example.com/weather", resource: { url: "https://api.example.com/weather", description: "Weather forecast by city" }, extensions: { bazaar: getExtension() } }));
    await settle(fx.facilitator, await body({ url: "https://api.example.com/news", resource: { url: "https://api.example.com/news", description: "Latest news headlines", serviceName: "News Now", tags: ["news"] }, extensions: { bazaar: getExtension() } }));
    await settle(fx.facilitator, await body({ resource: { url: "https://mcp.example.com/mcp" }, payTo: otherPayTo, extensions: { bazaar: mcpExtension("weather_alerts") } }));

    const search = async (query: string) => (await get(`/discovery/search?${query}`)).body;
    const names = (answer: Record<string, any>) => answer.resources.map((item: { resource: string }) => item.resource);
    const weather = await search("query=weather%20forecast");
    expect(weather).toMatchObject({ x402Version: 2, partialResults: false, pagination: { limit: 20, cursor: null } });
    expect(names(weather)).toEqual(["https://api.example.com/weather", "https://mcp.example.com/mcp"]); // two words match, then one
    expect(names(await search("query=NEWS"))).toEqual(["https://api.example.com/news"]);
    expect(names(await search("query=weather&type=mcp"))).toEqual(["https://mcp.example.com/mcp"]);
    expect(names(await search(`query=weather&payTo=${payTo}`))).toEqual(["https://api.example.com/weather"]);
    expect((await search("query=nothing-like-it")).resources).toEqual([]);

    const page1 = await search("query=example&limit=2");
    expect(page1.resources).toHaveLength(2);
    expect(page1.pagination.cursor).toEqual(expect.any(String));
    const page2 = await search(`query=example&limit=2&cursor=${page1.pagination.cursor}`);
    expect(page2).toMatchObject({ partialResults: false, pagination: { limit: 2, cursor: null } });
    expect(page2.resources).toHaveLength(1);
    expect(new Set([...names(page1), ...names(page2)]).size).toBe(3);

    expect((await get("/discovery/search")).status).toBe(400); // query is required
    expect((await get("/discovery/search?query=%20%20")).body).toMatchObject({ error: "invalid_payload" });
    expect((await get("/discovery/search?query=x&cursor=bogus")).status).toBe(400);
  });

  it("@x402/extensions' withBazaar client lists, filters, pages and searches our catalogue", async () => {
    await clearCatalogue();
    for (const path of ["one", "two", "three"]) await settle(fx.facilitator, await body({ url: `https://api.example.com/${path}`, extensions: { bazaar: getExtension() } }));
    await settle(fx.facilitator, await body({ url: "https://mcp.example.com/mcp", payTo: otherPayTo, extensions: { bazaar: mcpExtension("financial_analysis") } }));

    const client = withBazaar(new HTTPFacilitatorClient({ url: fx.facilitator.baseUrl! }));
    const all = await client.extensions.bazaar.listResources();
    expect(all.x402Version).toBe(2);
    expect(all.pagination).toEqual({ limit: 20, offset: 0, total: 4 });
    expect(all.items[0]).toMatchObject({ resource: "https://mcp.example.com/mcp", type: "mcp", x402Version: 2, accepts: [{ scheme: "exact", network: "eip155:84532", payTo: otherPayTo }] });

    const page = await client.extensions.bazaar.listResources({ type: "http", payTo, scheme: "exact", network: "eip155:84532", extensions: "bazaar", limit: 2, offset: 1 });
    expect(page.pagination).toEqual({ limit: 2, offset: 1, total: 3 });
    expect(page.items.map((item) => item.resource)).toEqual(["https://api.example.com/two", "https://api.example.com/one"]);

    const found = await client.extensions.bazaar.search({ query: "financial analysis", type: "mcp" });
    expect(found.resources.map((item) => item.resource)).toEqual(["https://mcp.example.com/mcp"]);
    expect(found.pagination).toEqual({ limit: 20, cursor: null });
  });

  it("skips a malformed, invalid or oversized extension, counted; the payment's answer is the same and nothing is catalogued", async () => {
    await clearCatalogue();
    const before = await outcomes();
    const invalidInfo = getExtension();
    invalidInfo.info.input.queryParams = {} as never; // the schema requires city
    const cases: Array<[string, Record<string, unknown>]> = [
      ["invalid", { bazaar: invalidInfo }],
      ["malformed", { bazaar: { info: "not an object", schema: {} } }],
      ["malformed", { bazaar: { ...getExtension(), schema: { ...getExtension().schema, $ref: "https://evil.example/schema.json" } } }],
      ["malformed", { bazaar: { ...getExtension(), schema: { ...getExtension().schema, $schema: "http://json-schema.org/draft-07/schema#" } } }],
      ["malformed", { bazaar: { ...getExtension(), info: { input: { type: "ftp" } } } }],
      ["too_large", { bazaar: getExtension({ city: "x".repeat(20_000) }) }],
      ["invalid", { bazaar: { ...getExtension(), schema: { type: "object", properties: { input: { type: "unknown-type" } } } } }], // does not compile
    ];
    for (const [, extensions] of cases) {
      const settleBody = await body({ extensions });
      const answer = await postJson(fx.facilitator.app, "/settle", settleBody);
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ success: true, transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/), network: "eip155:84532", payer: addressOf(keys.payer), amount: expect.stringMatching(/^[0-9]+$/) });
    }
    await fx.facilitator.services.bazaar.idle();
    expect((await get("/discovery/resources")).body.pagination.total).toBe(0);
    const after = await outcomes();
    const expected: Record<string, number> = {};
    for (const [outcome] of cases) expected[outcome] = (expected[outcome] ?? 0) + 1;
    for (const [outcome, count] of Object.entries(expected)) expect(after[outcome]! - (before[outcome] ?? 0), outcome).toBe(count);
    expect(after.catalogued ?? 0).toBe(before.catalogued ?? 0);
  });

  it("stops a schema whose pattern backtracks without end (timeout, counted) and catalogues the next payment", async () => {
    await clearCatalogue();
    const before = await outcomes();
    const redos = getExtension({ city: `${"a".repeat(40)}!` });
    (redos.schema.properties.input.properties.queryParams.properties.city as Record<string, unknown>).pattern = "^(a+)+$";
    const answer = await settle(fx.facilitator, await body({ extensions: { bazaar: redos } }));
    expect(answer.body.success).toBe(true);
    await settle(fx.facilitator, await body({ extensions: { bazaar: getExtension() } }));
    const after = await outcomes();
    expect(after.timeout! - (before.timeout ?? 0)).toBe(1);
    expect((await get("/discovery/resources")).body.items.map((item: { resource: string }) => item.resource)).toEqual(["https://api.example.com/weather"]);
  });

  it("answers the payment even when Postgres refuses the catalogue write (counted as error)", async () => {
    await clearCatalogue();
    const before = await outcomes();
    await withPgClient(fx.database.url, (client) => client.query("alter table bazaar_resources rename to bazaar_resources_away"));
    try {
      const answer = await settle(fx.facilitator, await body({ extensions: { bazaar: getExtension() } }));
      expect(answer.body).toMatchObject({ success: true });
    } finally {
      await withPgClient(fx.database.url, (client) => client.query("alter table bazaar_resources_away rename to bazaar_resources"));
    }
    expect((await outcomes()).error! - (before.error ?? 0)).toBe(1);
    expect((await get("/discovery/resources")).body.pagination.total).toBe(0);
  });

  it("does not catalogue v1 payments, failed settlements or payloads without the extension", async () => {
    await clearCatalogue();
    const noExtension = await body();
    expect((await settle(fx.facilitator, noExtension)).body.success).toBe(true);
    expect((await get("/discovery/resources")).body.pagination.total).toBe(0);
    // A v1 payment carrying a v2-style extension block: v1 is not catalogued (the spec does not ask it).
    const v1Payment = await signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic });
    const v1 = v1Body(v1Payment, { token: fx.chain.token, payTo, amountAtomic });
    const v1WithExtension = { ...v1, paymentPayload: { ...v1.paymentPayload, extensions: { bazaar: getExtension() } } };
    expect((await settle(fx.facilitator, v1WithExtension)).body.success).toBe(true);
    expect((await get("/discovery/resources")).body.pagination.total).toBe(0);
    const duplicate = await body({ extensions: { bazaar: getExtension() } });
    await settle(fx.facilitator, duplicate);
    await clearCatalogue();
    expect((await settle(fx.facilitator, duplicate)).body).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
    expect((await get("/discovery/resources")).body.pagination.total).toBe(0);
  });
});

describe("Bazaar bounds", () => {
  it("answers at most discoveryConcurrentMax queries at once per instance, the rest 429 (never a 5xx), all with nosniff", async () => {
    const answers = await Promise.all(
      Array.from({ length: 24 }, (_, index) => fx.facilitator.app.inject({ method: "GET", url: index % 2 ? "/discovery/search?query=weather" : "/discovery/resources?limit=100" })),
    );
    const statuses = answers.map((answer) => answer.statusCode);
    expect(statuses.every((status) => status === 200 || status === 429)).toBe(true);
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(discoveryConcurrentMax);
    expect(statuses).toContain(429);
    for (const answer of answers) expect(answer.headers["x-content-type-options"]).toBe("nosniff");
    expect(answers.find((answer) => answer.statusCode === 429)!.json()).toMatchObject({ error: "rate_limited", message: "discovery is busy; retry shortly" });
    expect((await get(`/discovery/resources?offset=${discoveryOffsetMax + 1}`)).status).toBe(400);
  });

  /** Another facilitator on the same chain and database, with its own limits. */
  async function withFacilitator<T>(limits: Partial<Limits>, run: (facilitator: TestFacilitator) => Promise<T>, policy?: Policy): Promise<T> {
    const facilitator = await startTestFacilitator({ databaseUrl: fx.database.url, rpcUrls: [fx.chain.rpcUrl], token: fx.chain.token, limits: { inFlightPerPayerMax: 1_000, ...limits }, policy });
    try {
      return await run(facilitator);
    } finally {
      await facilitator.close();
    }
  }
  const rowsInTable = async () => Number((await withPgClient(fx.database.url, (client) => client.query("select count(*) from bazaar_resources"))).rows[0].count);
  const listed = async (facilitator: TestFacilitator, query = "") => (await get(`/discovery/resources${query}`, facilitator)).body.items.map((item: { resource: string }) => item.resource);

  it("BAZAAR_ENTRIES_PER_PAY_TO_MAX: a new entry evicts that payTo's least recently paid one, never another payTo's", async () => {
    await clearCatalogue();
    await withFacilitator({ bazaarEntriesPerPayToMax: 2 }, async (facilitator) => {
      await settle(facilitator, await body({ url: "https://other.example.com/kept", payTo: otherPayTo, extensions: { bazaar: getExtension() } }));
      for (const path of ["a", "b"]) await settle(facilitator, await body({ url: `https://api.example.com/${path}`, extensions: { bazaar: getExtension() } }));
      await settle(facilitator, await body({ url: "https://api.example.com/a", extensions: { bazaar: getExtension() } })); // a is now the most recently paid
      await settle(facilitator, await body({ url: "https://api.example.com/c", extensions: { bazaar: getExtension() } }));
      expect(await listed(facilitator, `?payTo=${payTo}`)).toEqual(["https://api.example.com/c", "https://api.example.com/a"]);
      expect(await listed(facilitator, `?payTo=${otherPayTo}`)).toEqual(["https://other.example.com/kept"]);
      expect((await outcomes(facilitator)).catalogued).toBe(4);
      expect((await outcomes(facilitator)).refreshed).toBe(1);
    });
  });

  it("BAZAAR_ENTRIES_MAX: when full, new resources are refused (counted as full), known ones still refresh", async () => {
    await clearCatalogue();
    await withFacilitator({ bazaarEntriesMax: 2 }, async (facilitator) => {
      for (const path of ["a", "b", "c"]) {
        const answer = await settle(facilitator, await body({ url: `https://api.example.com/${path}`, extensions: { bazaar: getExtension() } }));
        expect(answer.body.success).toBe(true);
      }
      await settle(facilitator, await body({ url: "https://api.example.com/a", extensions: { bazaar: getExtension() } }));
      expect(await listed(facilitator)).toEqual(["https://api.example.com/a", "https://api.example.com/b"]);
      expect(await outcomes(facilitator)).toMatchObject({ catalogued: 2, full: 1, refreshed: 1 });
    });
  });

  it("BAZAAR_ENTRY_TTL_MS: an entry no payment refreshed within the TTL is not listed, and the next write deletes it", async () => {
    await clearCatalogue();
    await withFacilitator({ bazaarEntryTtlMs: 3_600_000 }, async (facilitator) => {
      await settle(facilitator, await body({ url: "https://api.example.com/old", extensions: { bazaar: getExtension() } }));
      await settle(facilitator, await body({ url: "https://api.example.com/fresh", extensions: { bazaar: getExtension() } }));
      await withPgClient(fx.database.url, (client) => client.query("update bazaar_resources set last_updated = now() - interval '2 hours' where resource like '%/old'"));
      expect(await listed(facilitator)).toEqual(["https://api.example.com/fresh"]);
      expect((await get("/discovery/search?query=old", facilitator)).body.resources).toEqual([]);
      expect(await rowsInTable()).toBe(2);
      await settle(facilitator, await body({ url: "https://api.example.com/new", extensions: { bazaar: getExtension() } }));
      expect(await rowsInTable()).toBe(2);
      expect(await listed(facilitator)).toEqual(["https://api.example.com/new", "https://api.example.com/fresh"]);
    });
  });

  it("BAZAAR_ENTRIES_MAX=0 turns the Bazaar off: not advertised, nothing catalogued", async () => {
    await clearCatalogue();
    await withFacilitator({ bazaarEntriesMax: 0 }, async (facilitator) => {
      expect((await get("/supported", facilitator)).body.extensions).toEqual(["payment-identifier", "eip2612GasSponsoring"]);
      expect((await settle(facilitator, await body({ extensions: { bazaar: getExtension() } }))).body.success).toBe(true);
      expect(await rowsInTable()).toBe(0);
    });
  });

  it("queues at most bazaarQueueMax extensions; more are dropped (counted), the queued ones catalogued", async () => {
    await clearCatalogue();
    const { services } = fx.facilitator;
    const before = await outcomes();
    const jobs = [];
    for (let index = 0; index < bazaarQueueMax + 5; index += 1) {
      const unsettled = await body({ url: `https://api.example.com/queued/${index}`, extensions: { bazaar: getExtension() } });
      const parsed = normalize(unsettled as Envelope, services.networkServed);
      if (!parsed.ok) throw new Error(parsed.rejection.message);
      jobs.push({ unsettled, payment: parsed.request });
    }
    // Offered in one synchronous run, as a burst of settlements would: the queue starts only after it.
    for (const { unsettled, payment } of jobs) services.bazaar.offer(unsettled, payment); // what /settle does after success:true, without the chain
    await services.bazaar.idle();
    const after = await outcomes();
    expect((after.dropped ?? 0) - (before.dropped ?? 0)).toBe(5);
    expect((after.catalogued ?? 0) - (before.catalogued ?? 0)).toBe(bazaarQueueMax);
  });

  it("is public under AUTH=api-keys too, whatever Authorization header the client sends", async () => {
    await withFacilitator(
      {},
      async (facilitator) => {
        expect((await get("/discovery/resources", facilitator)).status).toBe(200);
        const withHeader = await facilitator.app.inject({ method: "GET", url: "/discovery/search?query=weather", headers: { authorization: "Bearer not-a-key" } });
        expect(withHeader.statusCode).toBe(200);
        expect((await postJson(facilitator.app, "/settle", await body())).status).toBe(401);
      },
      { ...openPolicy, auth: "api-keys" },
    );
  });

  it("DISCOVERY_RATE_LIMIT_PER_MINUTE: discovery is public and limited per IP", async () => {
    await withFacilitator({ discoveryRateLimitPerMinute: 2 }, async (facilitator) => {
      const statuses = [];
      for (let index = 0; index < 3; index += 1) statuses.push((await get("/discovery/resources", facilitator)).status);
      expect(statuses).toEqual([200, 200, 429]);
      expect((await get("/discovery/search?query=a", facilitator)).status).toBe(200); // each route has its own counter
    });
  });
});
