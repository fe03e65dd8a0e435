/**
 * examples/chutes-proxy end to end: official buyer SDKs (v2 @x402/fetch, v1 x402-fetch) → the proxy →
 * this facilitator (real Postgres, real Anvil, AUTH=api-keys with a key made by `keys create`) and the
 * example's stub OpenAI-compatible upstream (examples/chutes-proxy/src/upstream-stub.ts) on 127.0.0.1.
 */
import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader, decodePaymentResponseHeader, encodePaymentSignatureHeader, HTTPFacilitatorClient } from "@x402/core/http";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import type { FastifyInstance } from "fastify";
import { createWalletClient, http as viemHttp, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeXPaymentResponse, wrapFetchWithPayment as wrapFetchWithPaymentV1 } from "x402-fetch";
import { ConfigError, loadConfig } from "../../examples/chutes-proxy/src/config.js";
import { bearerAuthHeaders } from "../../examples/chutes-proxy/src/facilitator.js";
import { parseUsdPrice, quote } from "../../examples/chutes-proxy/src/pricing.js";
import { createProxy } from "../../examples/chutes-proxy/src/server.js";
import { STREAM_PIECES, STUB_COMPLETION, STUB_MODEL, startStubUpstream, UPSTREAM_500_TRIGGER, type StubUpstream } from "../../examples/chutes-proxy/src/upstream-stub.js";
import { keysCommand } from "../../src/cli/key-commands.js";
import { killOnExit } from "../../src/sandbox/child-reaper.js";
import { addressOf, keys, startTestChain, type TestChain } from "../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../helpers/facilitator.js";
import { waitFor, within } from "../helpers/wait.js";

const API_KEY = "cpk_test_not_a_real_key";
const payTo = addressOf(keys.payTo);
const v2Payer = addressOf(keys.payer);
const v1Payer = addressOf(keys.stranger);

let chain: TestChain;
let db: TestDatabase;
let facilitator: TestFacilitator;
let upstream: StubUpstream;
let proxy: FastifyInstance;
let proxyUrl: string;
let facilitatorUrl: string;
/** The facilitator API key, made the way the README says: `keys create --name chutes-proxy --pay-to <wallet>`. */
let facilitatorKey: string;
/** The proxy's log lines (pino JSON). */
const proxyLog: LogLine[] = [];

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A Fastify logger option that collects the JSON lines into `into`. */
const collectingLogger = (into: LogLine[]) => ({
  level: "info",
  stream: { write: (line: string) => void into.push(JSON.parse(line) as LogLine) },
});

beforeAll(async () => {
  [chain, db] = await Promise.all([startTestChain(), createTestDatabase("chutes_proxy")]);
  facilitator = await startTestFacilitator({
    databaseUrl: db.url,
    rpcUrls: [chain.rpcUrl],
    token: chain.token,
    policy: { auth: "api-keys", allowedPayTo: [], amountMaxAtomic: undefined },
  });
  facilitatorUrl = await facilitator.app.listen({ host: "127.0.0.1", port: 0 });
  const printed: string[] = [];
  await keysCommand(["create", "--name", "chutes-proxy", "--pay-to", payTo], { DATABASE_URL: db.url }, (line) => printed.push(line));
  facilitatorKey = printed.find((line) => line.startsWith("key: "))!.slice("key: ".length);
  await chain.mint(v2Payer, 10_000_000n);
  await chain.mint(v1Payer, 10_000_000n);
  upstream = await startStubUpstream();
  proxy = createProxy(
    loadConfig({
      FACILITATOR_URL: facilitatorUrl,
      FACILITATOR_API_KEY: facilitatorKey,
      WALLET_ADDRESS: payTo,
      CHUTES_API_KEY: API_KEY,
      CHUTES_BASE_URL: upstream.url,
      PRICE_PER_1K_TOKENS: "0.001",
      NETWORK: "eip155:84532",
      UPSTREAM_TIMEOUT_MS: "10000",
      FACILITATOR_TIMEOUT_MS: "15000",
    }),
    { logger: collectingLogger(proxyLog) },
  );
  proxyUrl = await proxy.listen({ host: "127.0.0.1", port: 0 });
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
  await facilitator?.close();
  await chain?.stop();
  await db?.drop();
});

// ---------------------------------------------------------------------------------------------------------

/** 4,000 characters = 1,000 prompt tokens; + max_tokens 1,000 = 2,000 tokens × $0.001/1K = $0.002 = 2,000 units. */
const pricedBody = (extra: Record<string, unknown> = {}, text = "x".repeat(4_000)) => ({
  model: "deepseek-ai/DeepSeek-V3-0324",
  messages: [{ role: "user", content: text }],
  max_tokens: 1_000,
  ...extra,
});
const PRICED_AMOUNT = 2_000n;

const post = (fetcher: typeof fetch, body: unknown, headers: Record<string, string> = {}) =>
  fetcher(`${proxyUrl}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

function v2Buyer(privateKey: Hex) {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: privateKeyToAccount(privateKey) });
  return { client, fetchWithPayment: wrapFetchWithPayment(fetch, client) };
}

const balances = async () => ({ payTo: await chain.balanceOf(payTo), v2Payer: await chain.balanceOf(v2Payer), v1Payer: await chain.balanceOf(v1Payer) });

describe("pricing and configuration", () => {
  it("estimates tokens as chars/4 + max output tokens, rounds up to atomic units, minimum 1", () => {
    const price = parseUsdPrice("0.001");
    expect(quote(pricedBody(), price, 1024)).toEqual({ promptTokens: 1000, maxOutputTokens: 1000, estimatedTokens: 2000, amount: "2000" });
    // no max_tokens → DEFAULT_MAX_TOKENS; text parts count by their text
    expect(quote({ messages: [{ role: "user", content: [{ type: "text", text: "abcde" }] }] }, price, 1024).amount).toBe("1026");
    // n choices may each use max_tokens
    expect(quote({ ...pricedBody(), n: 3 }, price, 1024).amount).toBe("4000");
    expect(quote({ messages: [{ role: "user", content: "hi" }], max_tokens: 1 }, parseUsdPrice("0.000001"), 1024).amount).toBe("1");
    expect(quote({ messages: [{ role: "user", content: "hi" }], max_tokens: 1 }, parseUsdPrice("0"), 1024).amount).toBe("1");
    // Both output limits set: priced at the larger (upstreams differ in which one they obey; review 16 L5)
    const hi = { role: "user", content: "hi" };
    expect(quote({ messages: [hi], max_tokens: 1, max_completion_tokens: 8000 }, price, 1024).maxOutputTokens).toBe(8000);
    expect(quote({ messages: [hi], max_tokens: 8000, max_completion_tokens: 1 }, price, 1024).maxOutputTokens).toBe(8000);
    // Prompt inputs outside `messages` (tools, response_format…) count as their JSON
    const tools = [{ type: "function", function: { name: "f", description: "x".repeat(4000) } }];
    expect(quote({ messages: [hi], max_tokens: 1, tools }, price, 1024).promptTokens).toBe(Math.ceil((2 + JSON.stringify(tools).length) / 4));
  });

  it("rejects a bad environment with every problem named", () => {
    expect(() => loadConfig({ WALLET_ADDRESS: "0x123", NETWORK: "solana", PRICE_PER_1K_TOKENS: "-1" })).toThrowError(ConfigError);
    try {
      loadConfig({ WALLET_ADDRESS: "0x123", NETWORK: "solana", PRICE_PER_1K_TOKENS: "-1" });
    } catch (error) {
      const text = (error as ConfigError).problems.join("\n");
      for (const name of ["FACILITATOR_URL", "WALLET_ADDRESS", "CHUTES_API_KEY", "PRICE_PER_1K_TOKENS", "NETWORK"]) expect(text).toContain(name);
    }
    const withKey = { FACILITATOR_URL: "http://f", WALLET_ADDRESS: payTo, CHUTES_API_KEY: "k" };
    expect(() => loadConfig({ ...withKey, FACILITATOR_API_KEY: "x402_a b" })).toThrowError(/FACILITATOR_API_KEY/);
    expect(loadConfig({ ...withKey, FACILITATOR_API_KEY: " x402_abc " }).facilitatorApiKey).toBe("x402_abc");
    // Credentials in the URL would be quoted by fetch's error, into logs and answers: refused, never echoed.
    expect(() => loadConfig({ ...withKey, FACILITATOR_URL: "https://ops:s3cret@facilitator.example" })).toThrowError(/FACILITATOR_URL must not hold credentials/);
    expect(() => loadConfig({ ...withKey, FACILITATOR_URL: "https://ops:s3cret@facilitator.example" })).not.toThrowError(/s3cret/);
    expect(loadConfig({ ...withKey, FACILITATOR_API_KEY: "" }).facilitatorApiKey).toBeUndefined();
    const base = loadConfig({ FACILITATOR_URL: "http://f", WALLET_ADDRESS: payTo, CHUTES_API_KEY: "k", NETWORK: "base" });
    expect(base.network.caip2).toBe("eip155:8453");
    expect(base.asset).toEqual({ address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", name: "USD Coin", version: "2" });
    expect(base.chutesBaseUrl).toBe("https://llm.chutes.ai");
  });
});

describe("chutes proxy against the real facilitator", () => {
  it("(a) answers 402 with PAYMENT-REQUIRED (v2: upto capped at the quote, then exact) and a v1 body (exact), priced from the request", async () => {
    const response = await post(fetch, pricedBody());
    expect(response.status).toBe(402);
    const required = decodePaymentRequiredHeader(response.headers.get("PAYMENT-REQUIRED")!);
    expect(required.x402Version).toBe(2);
    expect(required.resource.url).toBe(`${proxyUrl}/v1/chat/completions`);
    const exact = { scheme: "exact", network: "eip155:84532", amount: "2000", asset: chain.token, payTo, maxTimeoutSeconds: 300, extra: { name: "USDC", version: "2" } };
    // upto's facilitatorAddress is the key the facilitator's /supported names for this network.
    const uptoKind = (await new HTTPFacilitatorClient({ url: facilitatorUrl }).getSupported()).kinds.find((k) => k.scheme === "upto" && k.network === "eip155:84532");
    expect(uptoKind?.extra?.facilitatorAddress).toBe(addressOf(keys.facilitator));
    expect(required.accepts).toEqual([
      { ...exact, scheme: "upto", extra: { name: "USDC", version: "2", assetTransferMethod: "permit2", facilitatorAddress: addressOf(keys.facilitator) } },
      exact,
    ]);
    // The facilitator takes EIP-2612 permits for Permit2: buyers without an allowance can still pay upto.
    expect(Object.keys(required.extensions ?? {})).toEqual(["eip2612GasSponsoring"]);
    const v1 = (await response.json()) as { x402Version: number; error: string; accepts: Array<Record<string, unknown>> };
    expect(v1.x402Version).toBe(1);
    expect(v1.error).toContain("payment_required");
    expect(v1.accepts).toHaveLength(1);
    expect(v1.accepts[0]).toMatchObject({ scheme: "exact", network: "base-sepolia", maxAmountRequired: "2000", asset: chain.token, payTo, extra: { name: "USDC", version: "2" } });

    // no max_tokens: 1,000 prompt tokens + DEFAULT_MAX_TOKENS 1,024
    const unbounded = await post(fetch, pricedBody({ max_tokens: undefined }));
    expect(decodePaymentRequiredHeader(unbounded.headers.get("PAYMENT-REQUIRED")!).accepts[0]!.amount).toBe("2024");
    expect(upstream.seen.filter((r) => r.method === "POST")).toHaveLength(0); // nothing forwarded unpaid
  });

  it("(b) an @x402/fetch buyer pays, through a facilitator with AUTH=api-keys, and gets the completion with a PAYMENT-RESPONSE receipt", async () => {
    const before = await balances();
    const response = await post(v2Buyer(keys.payer).fetchWithPayment, pricedBody());
    expect(response.status).toBe(200);
    expect(((await response.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe(STUB_COMPLETION);
    const receipt = decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!);
    expect(receipt).toMatchObject({ success: true, network: "eip155:84532", payer: v2Payer });
    expect(receipt.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    const after = await balances();
    expect(after.payTo - before.payTo).toBe(PRICED_AMOUNT);
    expect(before.v2Payer - after.v2Payer).toBe(PRICED_AMOUNT);
    const forwarded = upstream.seen.at(-1)!;
    expect(forwarded).toMatchObject({ method: "POST", url: "/v1/chat/completions", authorization: `Bearer ${API_KEY}` });
    expect(forwarded.body).toEqual(pricedBody());

    // The settlement was made under the proxy's API key.
    const rows = await withPgClient(db.url, (c) =>
      c.query<{ name: string }>("SELECT k.name FROM settlements s JOIN api_keys k ON k.id = s.api_key_id WHERE s.tx_hash = $1 OR s.settled_tx_hash = $1", [receipt.transaction]),
    );
    expect(rows.rows).toEqual([{ name: "chutes-proxy" }]);

    // One log line for the paid request: payer, amount, tx hash, verify and settle durations.
    const paid = proxyLog.filter((line) => line.transaction === receipt.transaction);
    expect(paid).toHaveLength(1);
    expect(paid[0]).toMatchObject({ level: 30, payer: v2Payer, amount: "2000", asset: chain.token, network: "eip155:84532", x402Version: 2, stream: false });
    expect(paid[0]!.msg).toMatch(/^paid: 2000 from 0x[0-9a-fA-F]{40} tx 0x[0-9a-f]{64} \(verify \d+ ms, settle \d+ ms\)$/);
    expect(paid[0]!.verifyMs).toEqual(expect.any(Number));
    expect(paid[0]!.settleMs).toEqual(expect.any(Number));
  });

  it("(c) stream:true settles before streaming: receipt on the headers, settlement confirmed, then SSE chunks", async () => {
    const before = await balances();
    const response = await post(v2Buyer(keys.payer).fetchWithPayment, pricedBody({ stream: true }));
    // Headers are here, no body byte read yet: the payment must already be final.
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const receipt = decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!);
    expect(receipt.success).toBe(true);
    const mined = await chain.publicClient.getTransactionReceipt({ hash: receipt.transaction as Hex });
    expect(mined.status).toBe("success");
    const rows = await withPgClient(db.url, (c) =>
      c.query<{ status: string }>("SELECT status FROM settlements WHERE tx_hash = $1 OR settled_tx_hash = $1", [receipt.transaction]),
    );
    expect(rows.rows.map((r) => r.status)).toEqual(["confirmed"]);
    expect((await balances()).payTo - before.payTo).toBe(PRICED_AMOUNT);

    const text = await response.text();
    const events = text.split("\n\n").filter((e) => e.startsWith("data: "));
    expect(events.at(-1)).toBe("data: [DONE]");
    const content = events
      .slice(0, -1)
      .map((e) => (JSON.parse(e.slice(6)) as { choices: Array<{ delta: { content: string } }> }).choices[0]!.delta.content)
      .join("");
    expect(content).toBe(STREAM_PIECES.join(""));
    expect(upstream.seen.at(-1)!.authorization).toBe(`Bearer ${API_KEY}`);
  });

  it("(d) an upstream 500 is passed through and nothing is settled", async () => {
    const before = await balances();
    const calls = upstream.seen.length;
    const response = await post(v2Buyer(keys.payer).fetchWithPayment, pricedBody({}, `${UPSTREAM_500_TRIGGER} please`));
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: { message: "the model is overloaded", type: "server_error" } });
    expect(response.headers.get("PAYMENT-RESPONSE")).toBeNull();
    expect(upstream.seen.length).toBe(calls + 1); // the paid request did reach the upstream
    expect(await balances()).toEqual(before);
  });

  it("(e) GET /v1/models passes through, free", async () => {
    const response = await fetch(`${proxyUrl}/v1/models`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { data: Array<{ id: string }> }).data[0]!.id).toBe(STUB_MODEL);
    expect(upstream.seen.at(-1)).toMatchObject({ method: "GET", url: "/v1/models", authorization: `Bearer ${API_KEY}` });
  });

  it("(f) a v1 x402-fetch buyer (viem wallet client on Anvil, base-sepolia) pays through X-PAYMENT", async () => {
    const before = await balances();
    const wallet = createWalletClient({ account: privateKeyToAccount(keys.stranger), chain: baseSepolia, transport: viemHttp(chain.rpcUrl) });
    // Runtime-compatible, but viem's Base chain formatters make the client's getBlock type differ from
    // x402 1.x's generic SignerWallet type: a type-only cast.
    const fetchWithPayment = wrapFetchWithPaymentV1(fetch, wallet as unknown as Parameters<typeof wrapFetchWithPaymentV1>[1]);
    // x402-fetch spreads init.headers into a new object: they must be a plain object, not a Headers.
    const response = await fetchWithPayment(`${proxyUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(pricedBody()),
    });
    expect(response.status).toBe(200);
    const receipt = decodeXPaymentResponse(response.headers.get("X-PAYMENT-RESPONSE")!);
    expect(receipt).toMatchObject({ success: true, network: "base-sepolia", payer: v1Payer });
    const after = await balances();
    expect(after.payTo - before.payTo).toBe(PRICED_AMOUNT);
    expect(before.v1Payer - after.v1Payer).toBe(PRICED_AMOUNT);
  });

  it("refuses a payment signed for another body (another price) before verifying it, and a replayed one", async () => {
    const { client } = v2Buyer(keys.payer);
    const unpaid = await post(fetch, pricedBody());
    const payload = await client.createPaymentPayload(decodePaymentRequiredHeader(unpaid.headers.get("PAYMENT-REQUIRED")!));
    const signature = encodePaymentSignatureHeader(payload);
    const calls = upstream.seen.length;

    const otherBody = await post(fetch, pricedBody({ max_tokens: 5_000 }), { "PAYMENT-SIGNATURE": signature });
    expect(otherBody.status).toBe(402);
    expect(decodePaymentRequiredHeader(otherBody.headers.get("PAYMENT-REQUIRED")!).error).toMatch(/^payment_requirements_mismatch/);
    expect(upstream.seen.length).toBe(calls);

    expect((await post(fetch, pricedBody(), { "PAYMENT-SIGNATURE": signature })).status).toBe(200);
    const replay = await post(fetch, pricedBody(), { "PAYMENT-SIGNATURE": signature });
    expect(replay.status).toBe(402);
    expect(decodePaymentRequiredHeader(replay.headers.get("PAYMENT-REQUIRED")!).error).toMatch(/nonce_already_used/);
    expect(upstream.seen.length).toBe(calls + 1);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Facilitator answers the real one gives only under load or failure, scripted: settlement_pending, a
// failed settle during a stream, a facilitator that does not answer.

interface ScriptedFacilitator {
  url: string;
  calls: Array<{ path: string; body: string; authorization: string | undefined }>;
  settleAnswers: Array<Record<string, unknown> | "hang">;
  verifyAnswer: Record<string, unknown> | "hang";
  close(): Promise<void>;
}

async function startScriptedFacilitator(): Promise<ScriptedFacilitator> {
  const state: Omit<ScriptedFacilitator, "url" | "close"> = { calls: [], settleAnswers: [], verifyAnswer: { isValid: true, payer: v2Payer } };
  const server = http.createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    state.calls.push({ path: req.url ?? "", body, authorization: req.headers.authorization });
    if (req.url === "/supported") {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ kinds: [{ x402Version: 2, scheme: "exact", network: "eip155:84532" }], extensions: [], signers: {} }));
    }
    const answer = req.url === "/verify" ? state.verifyAnswer : state.settleAnswers.shift();
    if (answer === "hang") return; // never answers: the proxy's timeout must fire
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(answer ?? { success: false, errorReason: "unexpected_settle", transaction: "", network: "eip155:84532" }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

describe("chutes proxy against a scripted facilitator", () => {
  let scripted: ScriptedFacilitator;
  let scriptedProxy: FastifyInstance;
  let scriptedUrl: string;
  const tx = `0x${"ab".repeat(32)}`;

  beforeAll(async () => {
    scripted = await startScriptedFacilitator();
    scriptedProxy = createProxy(
      loadConfig({ FACILITATOR_URL: scripted.url, WALLET_ADDRESS: payTo, CHUTES_API_KEY: API_KEY, CHUTES_BASE_URL: upstream.url, FACILITATOR_TIMEOUT_MS: "300" }),
    );
    scriptedUrl = await scriptedProxy.listen({ host: "127.0.0.1", port: 0 });
  });

  afterAll(async () => {
    await scriptedProxy?.close();
    await scripted?.close();
  });

  const paidPost = (body: unknown) =>
    v2Buyer(keys.payer).fetchWithPayment(`${scriptedUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it("retries settle once, with the identical body, on settlement_pending (like the official SDK)", async () => {
    scripted.calls.length = 0;
    scripted.verifyAnswer = { isValid: true, payer: v2Payer };
    scripted.settleAnswers = [
      { success: false, errorReason: "settlement_pending", transaction: tx, network: "eip155:84532", payer: v2Payer },
      { success: true, transaction: tx, network: "eip155:84532", payer: v2Payer },
    ];
    const response = await paidPost(pricedBody());
    expect(response.status).toBe(200);
    expect(decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!)).toMatchObject({ success: true, transaction: tx });
    const settles = scripted.calls.filter((c) => c.path === "/settle");
    expect(settles).toHaveLength(2);
    expect(settles[1]!.body).toBe(settles[0]!.body);
    const verifyBody = JSON.parse(scripted.calls.find((c) => c.path === "/verify")!.body) as Record<string, unknown>;
    expect(verifyBody).toMatchObject({ x402Version: 2, paymentRequirements: { amount: "2000", payTo } });
    // No FACILITATOR_API_KEY: no Authorization header, as before the variable existed.
    expect(scripted.calls.map((c) => c.authorization)).toEqual([undefined, undefined, undefined]);
  });

  it("a failed settle on a stream answers 402 with the failed receipt, and streams nothing", async () => {
    scripted.settleAnswers = [{ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "", network: "eip155:84532" }];
    const response = await paidPost(pricedBody({ stream: true }));
    expect(response.status).toBe(402);
    expect(decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!)).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance" });
    expect(decodePaymentRequiredHeader(response.headers.get("PAYMENT-REQUIRED")!).error).toMatch(/^invalid_exact_evm_insufficient_balance/);
    expect(await response.text()).not.toContain("data:");
  });

  it("a refused verify is a 402 with the reason, and the upstream is not called", async () => {
    const calls = upstream.seen.length;
    scripted.verifyAnswer = { isValid: false, invalidReason: "invalid_exact_evm_signature", invalidMessage: "not signed by from", payer: v2Payer };
    const response = await paidPost(pricedBody());
    expect(response.status).toBe(402);
    expect(decodePaymentRequiredHeader(response.headers.get("PAYMENT-REQUIRED")!).error).toBe("invalid_exact_evm_signature: not signed by from");
    expect(upstream.seen.length).toBe(calls);
  });

  it("a facilitator that does not answer gives 502 within FACILITATOR_TIMEOUT_MS", async () => {
    scripted.verifyAnswer = "hang";
    // The facilitator never answers, so a 502 facilitator_unavailable can only come from the
    // proxy's own timeout: that outcome is the proof. within() turns a hang (timeout ignored) into a
    // clear failure, at ~30x FACILITATOR_TIMEOUT_MS so a loaded machine never trips it.
    const response = await within("the proxy's answer while the facilitator hangs", paidPost(pricedBody()), 10_000);
    expect(response.status).toBe(502);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("facilitator_unavailable");
  });
});

// ---------------------------------------------------------------------------------------------------------
// FACILITATOR_API_KEY against the real facilitator with AUTH=api-keys: a key that is wrong or missing
// fails at once with an answer that says so; the key reaches every path the SDK client calls.

describe("FACILITATOR_API_KEY", () => {
  const paidRequestThrough = async (env: Record<string, string>) => {
    const log: LogLine[] = [];
    const app = createProxy(
      loadConfig({ FACILITATOR_URL: facilitatorUrl, WALLET_ADDRESS: payTo, CHUTES_API_KEY: API_KEY, CHUTES_BASE_URL: upstream.url, ...env }),
      { logger: collectingLogger(log) },
    );
    const url = await app.listen({ host: "127.0.0.1", port: 0 });
    try {
      const before = await balances();
      const calls = upstream.seen.length;
      // The outcome is the point: a clear 502 rather than a hang (bound far above the answer's real time).
      const response = await within(
        "the proxy's answer with a refused key",
        v2Buyer(keys.payer).fetchWithPayment(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(pricedBody()),
        }),
        30_000,
      );
      const body = (await response.json()) as { error: { code: string; message: string; type: string } };
      expect(upstream.seen.length).toBe(calls); // refused at verify: nothing forwarded
      expect(await balances()).toEqual(before); // and nothing paid
      return { status: response.status, error: body.error, log };
    } finally {
      await app.close();
    }
  };

  it("a wrong key: 502 facilitator_unauthorized naming FACILITATOR_API_KEY, logged at error level, nothing forwarded or paid", async () => {
    const wrongKey = "x402_this-key-was-never-created";
    const { status, error, log } = await paidRequestThrough({ FACILITATOR_API_KEY: wrongKey });
    expect(status).toBe(502);
    expect(error.code).toBe("facilitator_unauthorized");
    expect(error.message).toBe("the payment service is unavailable; your payment was not used, retry later"); // the details are the operator's
    const logged = log.filter((line) => line.reason === "facilitator_unauthorized");
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 50, amount: "2000" });
    expect(logged[0]!.msg).toMatch(/refused this proxy's API key \(FACILITATOR_API_KEY\) on verify: the API key is unknown or revoked/);
    expect(JSON.stringify(log)).not.toContain(wrongKey); // the key itself is never logged
  });

  it("no key against AUTH=api-keys: 502 facilitator_unauthorized telling the operator to set FACILITATOR_API_KEY", async () => {
    const { status, error, log } = await paidRequestThrough({});
    expect(status).toBe(502);
    expect(error.code).toBe("facilitator_unauthorized");
    expect(error.message).not.toContain("FACILITATOR_API_KEY");
    expect(log.filter((line) => line.reason === "facilitator_unauthorized" && line.level === 50 && /needs an API key: set FACILITATOR_API_KEY on verify/.test(String(line.msg)))).toHaveLength(1);
  });

  it("the key never reaches the logs of a paid request", () => {
    expect(proxyLog.length).toBeGreaterThan(0);
    expect(JSON.stringify(proxyLog)).not.toContain(facilitatorKey);
  });

  it("createAuthHeaders has the SDK's per-path shape: the Bearer key goes on verify, settle and supported", async () => {
    const scripted = await startScriptedFacilitator();
    try {
      scripted.settleAnswers = [{ success: true, transaction: `0x${"cd".repeat(32)}`, network: "eip155:84532", payer: v2Payer }];
      const client = new HTTPFacilitatorClient({ url: scripted.url, createAuthHeaders: bearerAuthHeaders("x402_k") });
      const payload = { x402Version: 2, accepted: {}, payload: {} } as never;
      await client.getSupported();
      await client.verify(payload, {} as never);
      await client.settle(payload, {} as never);
      expect(scripted.calls.map((c) => [c.path, c.authorization])).toEqual([
        ["/supported", "Bearer x402_k"],
        ["/verify", "Bearer x402_k"],
        ["/settle", "Bearer x402_k"],
      ]);
    } finally {
      await scripted.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// The README's commands as real processes: `npm run example:upstream-stub` (the stub's entry point) and
// the proxy's main.ts, against the facilitator above with its API key.

const repoRoot = path.resolve(import.meta.dirname, "../..");
/** tsx start-up on a busy 2-CPU machine: a bound, not an expectation. */
const COMMAND_START_BOUND_MS = 45_000;

interface Command {
  lines: string[];
  /** The first output line matching `pattern` (bounded wait); fails at once if the command exits. */
  line(pattern: RegExp): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

function startCommand(file: string, env: Record<string, string>): Command {
  const child = spawn(process.execPath, ["--import", "tsx", file], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  killOnExit(child);
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (const stream of [child.stdout!, child.stderr!]) {
    let partial = "";
    stream.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts);
    });
  }
  return {
    lines,
    line: (pattern) =>
      waitFor(
        `${path.basename(file)}: a line matching ${pattern}`,
        async () => {
          for (const text of lines) {
            const match = pattern.exec(text);
            if (match) return match;
          }
          if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${file} exited (${child.exitCode ?? child.signalCode}):\n${lines.join("\n")}`);
          return undefined;
        },
        COMMAND_START_BOUND_MS,
      ),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await within(`${file} stopping on SIGTERM`, exited, 15_000).catch(async (error: unknown) => {
        child.kill("SIGKILL");
        await exited;
        throw error;
      });
    },
  };
}

describe("the example's commands", () => {
  let stub: Command | undefined;
  let proxyProcess: Command | undefined;

  afterAll(async () => {
    await proxyProcess?.stop();
    await stub?.stop();
  });

  it("npm run example:upstream-stub + main.ts with FACILITATOR_API_KEY: a paid request succeeds and is logged in one line", async () => {
    const scripts = (await import("../../package.json", { with: { type: "json" } })).default.scripts as Record<string, string>;
    expect(scripts["example:upstream-stub"]).toBe("tsx examples/chutes-proxy/src/upstream-stub.ts");

    stub = startCommand("examples/chutes-proxy/src/upstream-stub.ts", { UPSTREAM_STUB_PORT: "0" });
    const stubUrl = (await stub.line(/^upstream stub listening on (http:\/\/127\.0\.0\.1:\d+):/))[1]!;
    proxyProcess = startCommand("examples/chutes-proxy/src/main.ts", {
      FACILITATOR_URL: facilitatorUrl,
      FACILITATOR_API_KEY: facilitatorKey,
      WALLET_ADDRESS: payTo,
      CHUTES_API_KEY: "stub",
      CHUTES_BASE_URL: stubUrl,
      PORT: "0",
      LOG_LEVEL: "info",
    });
    const url = (await proxyProcess.line(/chutes-proxy listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;

    const models = await fetch(`${url}/v1/models`);
    expect(models.status).toBe(200);
    expect(((await models.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)).toEqual([STUB_MODEL]);

    const before = await balances();
    const response = await v2Buyer(keys.payer).fetchWithPayment(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(pricedBody()),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe(STUB_COMPLETION);
    const receipt = decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!);
    expect(receipt).toMatchObject({ success: true, payer: v2Payer });
    expect((await balances()).payTo - before.payTo).toBe(PRICED_AMOUNT);

    const paidLine = await proxyProcess.line(new RegExp(`"msg":"paid: 2000 from ${v2Payer} tx ${receipt.transaction} \\(verify \\d+ ms, settle \\d+ ms\\)"`));
    const paid = JSON.parse(paidLine.input) as LogLine;
    expect(paid).toMatchObject({ level: 30, payer: v2Payer, amount: "2000", transaction: receipt.transaction });
    expect(paid.verifyMs).toEqual(expect.any(Number));
    expect(paid.settleMs).toEqual(expect.any(Number));
    expect(proxyProcess.lines.filter((text) => text.includes(receipt.transaction))).toHaveLength(1);
    expect(proxyProcess.lines.join("\n")).not.toContain(facilitatorKey);
    await stub.line(/^POST \/v1\/chat\/completions → 200$/);
    await stub.line(/^GET \/v1\/models → 200$/);
  });
});
