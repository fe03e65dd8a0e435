/**
 * Property-based robustness of POST /verify and POST /settle: whatever arrives (random JSON, a valid
 * signed body with fields removed, retyped or replaced, bytes that are not JSON, the wrong content
 * type), the answer is never a 5xx, is JSON, and names a reason code in the route's own shape.
 *
 * Mutations of a valid body that happen to stay valid may be accepted (isValid/success true): the
 * payer is funded generously and each signed authorization can be settled at most once anyway.
 */
import fc from "fast-check";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../helpers/database.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { nowSeconds, signPayment, v1Body, v2Body, v2Requirements } from "../../helpers/payments.js";

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

/** Runs per property; every run sends one body to /verify and to /settle. */
const runs = { randomJson: 250, mutations: 500, notJson: 150, contentTypes: 150 } as const;
const minimumBodies = 1_000;

let chain: TestChain;
let database: TestDatabase;
let facilitator: TestFacilitator;
let validBodies: { v1: Json; v2: Json };
let generatedBodies = 0;

type Json = unknown;
type Route = "/verify" | "/settle";

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(payer, 1_000_000_000_000n);
  database = await createTestDatabase("malformed_bodies");
  // The rate limit is not under test here: thousands of requests from one IP must not turn into 429s.
  facilitator = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [chain.rpcUrl], token: chain.token, limits: { rateLimitPerMinute: 1_000_000 } });
  const sign = () =>
    signPayment({ payerKey: keys.payer, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic, validBeforeSeconds: nowSeconds() + 3_600n });
  const [v1Payment, v2Payment] = await Promise.all([sign(), sign()]);
  validBodies = {
    v1: v1Body(v1Payment, { token: chain.token, payTo, amountAtomic }),
    v2: v2Body(v2Payment, v2Requirements({ token: chain.token, payTo, amountAtomic })),
  };
});

afterAll(async () => {
  await facilitator?.close();
  await database?.drop();
  await chain?.stop();
});

// ------------------------------------------------------------------------------------------------
// Sending and checking
// ------------------------------------------------------------------------------------------------

interface RawRequest {
  /** Exactly the bytes sent; undefined sends no body. */
  payload: string | undefined;
  headers: Record<string, string>;
}

async function send(route: Route, request: RawRequest): Promise<LightMyRequestResponse> {
  const options: InjectOptions = { method: "POST", url: route, headers: request.headers };
  if (request.payload !== undefined) options.payload = request.payload;
  return facilitator.app.inject(options);
}

/** The invariants every answer must hold, whatever was sent. */
function checkAnswer(route: Route, response: LightMyRequestResponse, sent: RawRequest): void {
  const context = `${route} ${response.statusCode}: sent ${describeRequest(sent)} → ${response.body.slice(0, 400)}`;
  expect(response.statusCode, context).toBeLessThan(500);
  expect(response.headers["content-type"], context).toMatch(/^application\/json/);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(response.body) as Record<string, unknown>;
  } catch {
    throw new Error(`answer is not JSON: ${context}`);
  }
  expect(body, context).toBeTypeOf("object");
  expect(body, context).not.toBeNull();
  tally(route, response.statusCode, body);
  if (route === "/verify") {
    expect(typeof body.isValid, context).toBe("boolean");
    if (body.isValid !== true) expectReason(body.invalidReason, context);
    if (response.statusCode !== 200) expect(body.isValid, context).toBe(false);
  } else {
    expect(typeof body.success, context).toBe("boolean");
    if (body.success !== true) expectReason(body.errorReason, context);
    if (response.statusCode !== 200) expect(body.success, context).toBe(false);
    expect(typeof body.transaction, context).toBe("string");
    expect(typeof body.network, context).toBe("string");
  }
}

/** status + reason of every answer, to check the generators reach past the envelope checks. */
const outcomes = new Map<string, number>();
function tally(route: Route, status: number, body: Record<string, unknown>): void {
  const reason = route === "/verify" ? (body.isValid ? "valid" : body.invalidReason) : body.success ? "success" : body.errorReason;
  const key = `${route} ${status} ${String(reason)}`;
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
}

function expectReason(reason: unknown, context: string): void {
  expect(typeof reason, context).toBe("string");
  expect((reason as string).length, context).toBeGreaterThan(0);
}

async function sendToBoth(request: RawRequest): Promise<void> {
  generatedBodies += 1;
  for (const route of ["/verify", "/settle"] as const) {
    const response = await send(route, request);
    checkAnswer(route, response, request);
  }
}

function describeRequest(request: RawRequest): string {
  const payload = request.payload === undefined ? "(no body)" : request.payload.length > 300 ? `${request.payload.slice(0, 300)}… (${request.payload.length} chars)` : request.payload;
  return `${JSON.stringify(request.headers)} ${payload}`;
}

const json = { "content-type": "application/json" };

/**
 * Stands for an array nested 20,000 deep: too deep for a recursive JSON.stringify (ours, fast-check's
 * reporter, or the app's), so it is spliced into the text after serialization.
 */
const deepMarker = "\u0001deep-array-20000\u0001";
const deepArrayText = "[".repeat(20_000) + "]".repeat(20_000);

/** JSON.stringify, with `undefined` (a possible fc.anything value) sent as an empty body. */
function serialize(value: unknown): string {
  return (JSON.stringify(value) ?? "").replaceAll(JSON.stringify(deepMarker), deepArrayText);
}

// ------------------------------------------------------------------------------------------------
// Generators
// ------------------------------------------------------------------------------------------------

const deeplyNested = (depth: number, open: string, close: string) => `${open.repeat(depth)}${close.repeat(depth)}`;
/** Parsed from text so building it does not recurse. */
const deepArray = (depth: number): unknown => JSON.parse(deeplyNested(depth, "[", "]"));
const deepObject = (depth: number): unknown => JSON.parse(`${'{"a":'.repeat(depth)}null${"}".repeat(depth)}`);

const hugeDecimal = `1${"0".repeat(80)}`; // 10^80: 81 digits
const twoTo256 = (2n ** 256n).toString(); // 78 digits, one above uint256
const maxUint256 = (2n ** 256n - 1n).toString();

/** Values that are wrong for almost any field of an x402 body. */
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    0,
    -1,
    -10_000,
    1.5,
    -0.5,
    1e80,
    1e308,
    Number.MAX_SAFE_INTEGER + 2,
    "",
    " ",
    "0",
    "-1",
    "-10000",
    "+10000",
    "1e6",
    "10000.0",
    " 10000",
    "10000 ",
    "0x2710",
    "00010000",
    "１００００", // full-width digits
    hugeDecimal,
    `-${hugeDecimal}`,
    twoTo256,
    maxUint256,
    "NaN",
    "Infinity",
    "0x",
    "0x0",
    "0x123",
    "0xZZ",
    `0x${"zz".repeat(65)}`,
    `0x${"00".repeat(65)}`,
    `0x${"ff".repeat(65)}`,
    `0x${"ab".repeat(64)}`,
    `0x${"ab".repeat(66)}`,
    `0X${"ab".repeat(65)}`,
    "ab".repeat(65),
    `0x${"0".repeat(40)}`,
    `0x${"f".repeat(41)}`,
    "0x036CbD53842c5426634e7929541eC2318f3dCF7е", // Cyrillic е at the end
    `0x${"ab".repeat(16_385)}`, // over the signature's maxLength
    "a".repeat(10_000),
    "💸".repeat(500),
    "\u0000",
    "\ud800",
    "\u202e0x1234",
    "eip155:84532\u0000",
    "eip155:0",
    "eip155:-1",
    `eip155:${"9".repeat(40)}`,
    "base-sepolia ",
    "BASE-SEPOLIA",
    "exact\n",
    "__proto__",
    [],
    [null],
    {},
    JSON.parse('{"__proto__":{"polluted":true}}'),
    deepArray(200),
    deepObject(200),
    deepMarker,
  ),
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.bigInt({ min: -(2n ** 300n), max: 2n ** 300n }).map((n) => n.toString()),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  fc.double(),
);

type Path = (string | number)[];
const deleteField = Symbol("delete");

/** Every path into a JSON value, the root excluded. */
function pathsOf(value: unknown, prefix: Path = []): Path[] {
  if (value === null || typeof value !== "object") return [];
  const entries = Array.isArray(value) ? value.map((item, index) => [index, item] as const) : Object.entries(value);
  return entries.flatMap(([key, child]) => [[...prefix, key], ...pathsOf(child, [...prefix, key])]);
}

function getAt(value: unknown, path: Path): unknown {
  return path.reduce<unknown>((node, key) => (node !== null && typeof node === "object" ? (node as Record<string | number, unknown>)[key] : undefined), value);
}

/** A structural copy of `value` with the node at `path` replaced (or removed); missing parents are left alone. */
function setAt(value: unknown, path: Path, replacement: unknown): unknown {
  if (path.length === 0) return replacement === deleteField ? undefined : replacement;
  if (value === null || typeof value !== "object") return value;
  const [head, ...rest] = path;
  const copy = (Array.isArray(value) ? [...value] : { ...value }) as Record<string | number, unknown>;
  if (rest.length === 0 && replacement === deleteField) {
    delete copy[head!];
    return copy;
  }
  if (!(head! in copy)) return copy;
  copy[head!] = setAt(copy[head!], rest, replacement);
  return copy;
}

/** A change relative to the original value at the path. */
const fieldMutation: fc.Arbitrary<(original: unknown) => unknown> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(() => deleteField) },
  { weight: 4, arbitrary: wrongValue.map((value) => () => value) },
  { weight: 4, arbitrary: fc.constant(null).chain(() => plausibleMutation) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      // Wrong type, right content: numbers as strings and back.
      (original: unknown) => (typeof original === "number" ? String(original) : typeof original === "string" && /^\d+$/.test(original) ? Number(original) : original),
      (original: unknown) => [original], // an array where an object or scalar belongs
      (original: unknown) => ({ value: original }),
      (original: unknown) => serialize(original), // the value JSON-encoded a second time
      (original: unknown) => (typeof original === "string" ? original.toUpperCase() : original),
      (original: unknown) => (typeof original === "string" ? original.toLowerCase() : original),
      (original: unknown) => (typeof original === "string" ? `${original}0` : original),
      (original: unknown) => (typeof original === "string" ? original.slice(0, -1) : original),
      (original: unknown) => (typeof original === "string" ? `-${original}` : typeof original === "number" ? -original : original),
      (original: unknown) => (typeof original === "string" ? original.repeat(50) : original),
      (original: unknown) => (typeof original === "string" ? `${original}\u00e9` : original),
      (original: unknown) => (typeof original === "string" && /^\d+$/.test(original) ? (BigInt(original) + 1n).toString() : original),
      (original: unknown) => (original !== null && typeof original === "object" ? { ...original, junk: deepArray(50), "": null } : original),
    ),
  },
);

/**
 * Changes that keep the field's format, so the body passes the schemas and reaches the signature,
 * binding, window and chain checks (and, for a changed signature length, the smart-wallet path).
 */
const plausibleMutation: fc.Arbitrary<(original: unknown) => unknown> = fc.oneof(
  fc.tuple(fc.nat(), fc.constantFrom(..."0123456789abcdef")).map(([index, nibble]) => (original: unknown) => {
    if (typeof original !== "string" || !/^0x[0-9a-fA-F]+$/.test(original)) return original;
    const at = 2 + (index % (original.length - 2));
    return `${original.slice(0, at)}${nibble}${original.slice(at + 1)}`;
  }),
  fc.bigInt({ min: -5n, max: 5n }).map((delta) => (original: unknown) => {
    if (typeof original !== "string" || !/^\d+$/.test(original)) return original;
    const changed = BigInt(original) + delta;
    return (changed < 0n ? 0n : changed).toString();
  }),
  fc.integer({ min: 1, max: 200 }).map((bytes) => (original: unknown) => (typeof original === "string" && /^0x([0-9a-fA-F]{2})+$/.test(original) ? `${original}${"00".repeat(bytes)}` : original)),
  fc.integer({ min: 1, max: 64 }).map((bytes) => (original: unknown) => (typeof original === "string" && /^0x([0-9a-fA-F]{2}){2,}$/.test(original) ? original.slice(0, Math.max(4, original.length - 2 * bytes)) : original)),
  fc.stringMatching(/^0x[0-9a-f]{40}$/).map((address) => () => address),
  fc.constantFrom<unknown>(
    1,
    2,
    "exact",
    "Exact",
    "base",
    "base-sepolia",
    "eip155:84532",
    "eip155:8453",
    "USDC",
    "USD Coin",
    "1",
    "2",
    null,
    {},
    addressOf(keys.stranger),
    addressOf(keys.payer),
    addressOf(keys.payTo),
    "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    "0",
    String(Math.floor(Date.now() / 1000)),
    maxUint256,
  ).map((value) => () => value),
);

interface Mutation {
  path: Path;
  change: (original: unknown) => unknown;
}

function mutationsFor(base: unknown): fc.Arbitrary<Mutation> {
  const paths = pathsOf(base);
  return fc.record({ path: fc.constantFrom(...paths), change: fieldMutation });
}

function applyMutations(base: unknown, mutations: Mutation[]): unknown {
  return mutations.reduce((body, { path, change }) => setAt(body, path, change(getAt(body, path))), base);
}

/** Sometimes the whole body is replaced by something of the wrong shape built from it. */
const wholeBodyChange = fc.constantFrom<(body: unknown) => unknown>(
  (body) => body,
  (body) => body,
  (body) => body,
  (body) => body,
  (body) => body,
  (body) => body,
  (body) => body,
  (body) => body,
  (body) => [body],
  (body) => ({ paymentPayload: body }),
  (body) => ({ ...(body as object), paymentPayload: [(body as Record<string, unknown>).paymentPayload] }),
  (body) => ({ ...(body as object), paymentRequirements: [(body as Record<string, unknown>).paymentRequirements] }),
  (body) => ({ ...(body as object), x402Version: 3, paymentPayload: { ...((body as Record<string, unknown>).paymentPayload as object), x402Version: 3 } }),
  (body) => JSON.stringify(body),
);

/** Optional headers on top of application/json (an Idempotency-Key on /settle makes the route hash the body). */
const extraHeaders = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Record<string, string>>({}) },
  { weight: 1, arbitrary: fc.stringMatching(/^[\x21-\x7e]{1,40}$/).map((key) => ({ "idempotency-key": `fc-${key}` })) },
  { weight: 1, arbitrary: fc.constantFrom<Record<string, string>>({ "idempotency-key": "has space" }, { "idempotency-key": "k".repeat(300) }, { "idempotency-key": "" }) },
);

// ------------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------------

describe("malformed bodies on POST /verify and POST /settle", () => {
  it(`random JSON values (${runs.randomJson} bodies) never get a 5xx`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue(), fc.anything(), fc.record({ paymentPayload: fc.anything(), paymentRequirements: fc.anything() }, { requiredKeys: [] })), extraHeaders, async (value, headers) => {
        await sendToBoth({ payload: serialize(value), headers: { ...json, ...headers } });
      }),
      { numRuns: runs.randomJson },
    );
  });

  it(`a valid v1/v2 body with fields removed, retyped or replaced (${runs.mutations} bodies) never gets a 5xx`, async () => {
    const mutated = fc.constantFrom("v1", "v2").chain((version) => {
      const base = validBodies[version as "v1" | "v2"];
      const leaves = pathsOf(base).filter((path) => typeof getAt(base, path) !== "object" || getAt(base, path) === null);
      return fc.oneof(
        // Garbage: one to three fields broken in any way, sometimes the whole body reshaped.
        fc.tuple(fc.array(mutationsFor(base), { minLength: 1, maxLength: 3 }), wholeBodyChange).map(([mutations, wrap]) => wrap(applyMutations(base, mutations))),
        // One leaf changed within its format: goes past the schemas to the payment checks and the chain.
        fc.record({ path: fc.constantFrom(...leaves), change: plausibleMutation }).map((mutation) => applyMutations(base, [mutation])),
      );
    });
    await fc.assert(
      fc.asyncProperty(mutated, extraHeaders, async (body, headers) => {
        await sendToBoth({ payload: serialize(body), headers: { ...json, ...headers } });
      }),
      { numRuns: runs.mutations },
    );
  });

  it(`bytes that are not JSON, sent as application/json (${runs.notJson} bodies), get a 4xx`, async () => {
    const notJson = fc.oneof(
      fc.constantFrom(
        "",
        "{not json",
        "{",
        "}",
        "[",
        "undefined",
        "NaN",
        "'single quotes'",
        '{"a":1,}',
        '{"paymentPayload":{},"paymentRequirements":{}',
        '{"__proto__":{"x":1},"paymentPayload":{},"paymentRequirements":{}}',
        '{"constructor":{"prototype":{"x":1}},"paymentPayload":{},"paymentRequirements":{}}',
        "\u0000",
        "\ufeff{}",
        deeplyNested(30_000, "[", "]"),
        deeplyNested(10_000, '{"a":', "}").replace(/\}+$/, (tail) => `1${tail}`),
      ),
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.string({ unit: "grapheme", maxLength: 200 }),
      // A valid body cut short.
      fc.tuple(fc.constantFrom("v1", "v2"), fc.double({ min: 0, max: 1, noNaN: true })).map(([version, fraction]) => {
        const text = JSON.stringify(validBodies[version as "v1" | "v2"]);
        return text.slice(0, Math.max(1, Math.floor(text.length * fraction)));
      }),
    );
    await fc.assert(
      fc.asyncProperty(notJson, async (payload) => {
        for (const route of ["/verify", "/settle"] as const) {
          const request = { payload, headers: json };
          const response = await send(route, request);
          checkAnswer(route, response, request);
          // Whatever the text, it is not a valid payment: only an accidental JSON object could reach a 200.
          if (response.statusCode === 200) expect(() => JSON.parse(payload), describeRequest(request)).not.toThrow();
        }
        generatedBodies += 1;
      }),
      { numRuns: runs.notJson },
    );
  });

  it(`wrong or odd content types (${runs.contentTypes} bodies) get a 4xx or a normal answer, never a 5xx`, async () => {
    const contentType = fc.oneof(
      fc.constantFrom(
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/octet-stream",
        "application/vnd.api+json",
        "application/jsonx",
        "application/json; charset=utf-16",
        "application/json; charset=latin1",
        "APPLICATION/JSON",
        "application/json;;;",
        'application/json; charset="',
        "application/json, text/plain",
        "json",
        "*/*",
        "",
        " ",
        ";",
      ),
      fc.stringMatching(/^[\x20-\x7e]{0,60}$/),
    );
    const payload = fc.oneof(
      fc.constantFrom("v1", "v2").map((version) => JSON.stringify(validBodies[version as "v1" | "v2"])),
      fc.jsonValue().map(serialize),
      fc.constantFrom("a=1&b=2", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n", "<xml/>", ""),
      fc.constant(undefined),
    );
    await fc.assert(
      fc.asyncProperty(fc.option(contentType, { nil: undefined }), payload, async (type, body) => {
        await sendToBoth({ payload: body, headers: type === undefined ? {} : { "content-type": type } });
      }),
      { numRuns: runs.contentTypes },
    );
  });

  it("answers uint256 overflows (10^80, 2^256) in value/amount with 400, not 500", async () => {
    const cases: { version: "v1" | "v2"; path: Path; value: unknown }[] = [];
    // accepted.amount is only compared with the requirements: 2^256 there is a 200 mismatch (below), 10^80 a 400.
    cases.push({ version: "v2", path: ["paymentPayload", "accepted", "amount"], value: hugeDecimal });
    for (const value of [hugeDecimal, twoTo256, 1e80]) {
      cases.push({ version: "v2", path: ["paymentRequirements", "amount"], value });
      cases.push({ version: "v2", path: ["paymentPayload", "payload", "authorization", "value"], value });
      cases.push({ version: "v2", path: ["paymentPayload", "payload", "authorization", "validBefore"], value });
      cases.push({ version: "v1", path: ["paymentRequirements", "maxAmountRequired"], value });
      cases.push({ version: "v1", path: ["paymentPayload", "payload", "authorization", "value"], value });
    }
    for (const { version, path, value } of cases) {
      const request = { payload: serialize(setAt(validBodies[version], path, value)), headers: json };
      for (const route of ["/verify", "/settle"] as const) {
        const response = await send(route, request);
        checkAnswer(route, response, request);
        expect(response.statusCode, `${route} ${path.join(".")}=${String(value).slice(0, 20)}`).toBe(400);
      }
    }
    const acceptedOverflow = serialize(setAt(validBodies.v2, ["paymentPayload", "accepted", "amount"], twoTo256));
    const answer = await send("/verify", { payload: acceptedOverflow, headers: json });
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toMatchObject({ isValid: false, invalidReason: "invalid_payment_requirements" });
  });

  it("answers a body nested 20,000 deep with a 4xx or a rejection, with and without an Idempotency-Key", async () => {
    const bodies = [
      { ...(validBodies.v2 as object), junk: deepMarker },
      setAt(validBodies.v2, ["paymentPayload", "x402Version"], deepMarker),
      setAt(validBodies.v1, ["paymentRequirements", "extra"], deepMarker),
    ];
    for (const body of bodies) {
      for (const headers of [json, { ...json, "idempotency-key": `deep-${Math.random()}` }]) {
        await sendToBoth({ payload: serialize(body), headers });
      }
    }
  });

  it("answers a body over the 64 KiB limit with a 4xx and a reason code", async () => {
    const base = validBodies.v2 as Record<string, unknown>;
    const oversized = serialize({ ...base, padding: "x".repeat(64 * 1024) });
    expect(Buffer.byteLength(oversized)).toBeGreaterThan(64 * 1024);
    for (const route of ["/verify", "/settle"] as const) {
      const request = { payload: oversized, headers: json };
      const response = await send(route, request);
      checkAnswer(route, response, request);
      expect(response.statusCode).toBe(413);
    }
  });

  it("still verifies the untouched valid bodies afterwards (the properties did not break the app)", async () => {
    // The v1 authorization may have been settled by a mutation that stayed valid; either answer is sound.
    for (const version of ["v1", "v2"] as const) {
      const response = await send("/verify", { payload: serialize(validBodies[version]), headers: json });
      expect(response.statusCode).toBe(200);
      const body = response.json() as { isValid: boolean; invalidReason?: string };
      if (!body.isValid) expect(body.invalidReason).toBe("invalid_exact_evm_nonce_already_used");
    }
    const health = await facilitator.app.inject({ method: "GET", url: "/ready" });
    expect(health.statusCode).toBe(200);
    expect(generatedBodies).toBeGreaterThanOrEqual(minimumBodies);
    // The generators must not stop at the envelope: a fair share reached the payment checks (a 200 rejection).
    const pastEnvelope = [...outcomes].filter(([key]) => key.startsWith("/verify 200 ") && !key.endsWith(" invalid_x402_version"));
    expect(pastEnvelope.reduce((sum, [, count]) => sum + count, 0), JSON.stringify(Object.fromEntries(outcomes))).toBeGreaterThanOrEqual(25);
  });
});
