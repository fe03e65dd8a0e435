/**
 * examples/chutes-proxy charging the tokens actually used (x402 `upto` over Permit2): official
 * @x402/fetch buyers registered for upto (and for exact only) → the proxy → this facilitator (real
 * Postgres, real Anvil with Permit2 and x402's upto proxy at their canonical addresses) and the
 * example's stub upstream, which reports `usage` (prompt = ceil(chars / 5), 4 completion tokens), in
 * the last SSE chunk when asked with `stream_options.include_usage`.
 *
 * The priced body: 4,000 characters (1,000 estimated prompt tokens) + max_tokens 1,000 = 2,000 tokens
 * at $0.001 per 1K = a cap of 2,000 atomic units. The stub reports 800 + 4 = 804 tokens = 804 units:
 * what an upto buyer pays, read from the chain.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader, decodePaymentResponseHeader, encodePaymentSignatureHeader } from "@x402/core/http";
import type { PaymentPayload } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme as ExactEvmClientScheme, registerExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme as UptoEvmClientScheme } from "@x402/evm/upto/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import type { FastifyInstance } from "fastify";
import { createWalletClient, defineChain, erc20Abi, http as viemHttp, maxUint256, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../examples/chutes-proxy/src/config.js";
import { chargeForUsage, parseUsdPrice, parseUsage } from "../../examples/chutes-proxy/src/pricing.js";
import { createProxy } from "../../examples/chutes-proxy/src/server.js";
import { MAX_EVENT_CHARS, StreamUsage } from "../../examples/chutes-proxy/src/stream-usage.js";
import { FacilitatorTerms, TERMS_RETRY_MS, termsFromSupported } from "../../examples/chutes-proxy/src/terms.js";
import {
  COMPLETION_TOKENS,
  NO_USAGE_TRIGGER,
  STREAM_BREAK_TRIGGER,
  STREAM_HOLD_TRIGGER,
  STREAM_PIECES,
  STUB_COMPLETION,
  startStubUpstream,
  type StubUpstream,
} from "../../examples/chutes-proxy/src/upstream-stub.js";
import { authorizationKey, type Payment } from "../../examples/chutes-proxy/src/x402.js";
import { permit2Address, x402UptoPermit2ProxyAddress } from "../../src/contracts/permit2.js";
import { addressOf, keys, startTestChain, type TestChain } from "../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../helpers/facilitator.js";
import { settlementRows, transfersInTx } from "../helpers/sdk.js";
import { waitFor } from "../helpers/wait.js";

const network = "eip155:84532" as const;
const payTo = addressOf(keys.payTo);
const CAP_ATOMIC = 2_000n;
/** The stub's usage for the priced body: ceil(4,000 / 5) prompt + 4 completion tokens, at $0.001 per 1K. */
const USED_ATOMIC = 804n;
const SETTLE_AFTER_STREAM_BOUND_MS = 30_000;

let chain: TestChain;
let db: TestDatabase;
let facilitator: TestFacilitator;
let facilitatorUrl: string;
let upstream: StubUpstream;
let proxy: FastifyInstance;
let proxyUrl: string;
const proxyLog: LogLine[] = [];

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

const collectingLogger = (into: LogLine[]) => ({ level: "info", stream: { write: (line: string) => void into.push(JSON.parse(line) as LogLine) } });

const proxyEnv = (extra: Record<string, string> = {}) => ({
  FACILITATOR_URL: facilitatorUrl,
  WALLET_ADDRESS: payTo,
  CHUTES_API_KEY: "cpk_test",
  CHUTES_BASE_URL: upstream.url,
  PRICE_PER_1K_TOKENS: "0.001",
  NETWORK: network,
  UPSTREAM_TIMEOUT_MS: "10000",
  FACILITATOR_TIMEOUT_MS: "15000",
  ...extra,
});

beforeAll(async () => {
  [chain, db] = await Promise.all([startTestChain(), createTestDatabase("chutes_proxy_upto")]);
  facilitator = await startTestFacilitator({ databaseUrl: db.url, rpcUrls: [chain.rpcUrl], token: chain.token });
  facilitatorUrl = await facilitator.app.listen({ host: "127.0.0.1", port: 0 });
  upstream = await startStubUpstream();
  proxy = createProxy(loadConfig(proxyEnv()), { logger: collectingLogger(proxyLog) });
  proxyUrl = await proxy.listen({ host: "127.0.0.1", port: 0 }); // reads /supported first (onReady)
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
  await facilitator?.close();
  await chain?.stop();
  await db?.drop();
});

const pricedBody = (extra: Record<string, unknown> = {}, text = "x".repeat(4_000)) => ({
  model: "deepseek-ai/DeepSeek-V3-0324",
  messages: [{ role: "user", content: text }],
  max_tokens: 1_000,
  ...extra,
});

const viemChain = defineChain({ id: 84532, name: "anvil", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: ["http://127.0.0.1"] } } });

/** A fresh buyer with 10 USDC and ETH; `approve`: an allowance to Permit2 (else only an EIP-2612 permit lets it pay upto). */
async function fundedBuyer(approve: boolean): Promise<PrivateKeyAccount> {
  const account = privateKeyToAccount(generatePrivateKey());
  await chain.mint(account.address, 10_000_000n);
  await chain.testClient.setBalance({ address: account.address, value: 10n ** 18n });
  if (approve) {
    const wallet = createWalletClient({ account, chain: viemChain, transport: viemHttp(chain.rpcUrl) });
    const hash = await wallet.writeContract({ address: chain.token, abi: erc20Abi, functionName: "approve", args: [permit2Address, maxUint256] });
    await chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 });
  }
  return account;
}

/** The official client registered for upto and exact (upto first in the proxy's accepts, so it pays upto). */
function uptoBuyer(account: PrivateKeyAccount) {
  const signer = toClientEvmSigner(account, chain.publicClient);
  const client = new x402Client().register(network, new UptoEvmClientScheme(signer)).register(network, new ExactEvmClientScheme(signer));
  return { client, fetchWithPayment: wrapFetchWithPayment(fetch, client) };
}

function exactOnlyBuyer(account: PrivateKeyAccount) {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: account });
  return wrapFetchWithPayment(fetch, client);
}

const post = (fetcher: typeof fetch, body: unknown, init: RequestInit = {}) =>
  fetcher(`${proxyUrl}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...init });

/** A signed payment for `body`, made by the official client from the proxy's 402 (to send by hand). */
async function signedPayment(client: x402Client, body: unknown): Promise<{ payload: PaymentPayload; header: string }> {
  const unpaid = await post(fetch, body);
  expect(unpaid.status).toBe(402);
  const payload = await client.createPaymentPayload(decodePaymentRequiredHeader(unpaid.headers.get("PAYMENT-REQUIRED")!));
  return { payload, header: encodePaymentSignatureHeader(payload) };
}

const nonceHex = (nonce: string) => `0x${BigInt(nonce).toString(16).padStart(64, "0")}`;
const permitOf = (payload: PaymentPayload) => (payload.payload as { permit2Authorization: { from: string; nonce: string } }).permit2Authorization;

/** The proxy's one `paid` log line for `payer`, waited for: a streamed upto answer is settled after its last byte. */
const paidLine = (payer: string) =>
  waitFor(
    `the proxy's paid line for ${payer}`,
    async () => proxyLog.find((line) => line.payer === payer && line.msg.startsWith("paid: ")),
    SETTLE_AFTER_STREAM_BOUND_MS,
  );

const sseData = (text: string) =>
  text
    .split("\n\n")
    .filter((event) => event.startsWith("data: "))
    .map((event) => event.slice(6));

// ---------------------------------------------------------------------------------------------------------

describe("upto pieces: usage, charge, stream scanner, authorization key, terms", () => {
  const price = parseUsdPrice("0.001");

  it("charges prompt + completion tokens at the quote's price, rounded up, at least 1, never above the cap", () => {
    expect(chargeForUsage({ promptTokens: 800, completionTokens: 4 }, price, 2_000n)).toBe(804n);
    expect(chargeForUsage({ promptTokens: 1, completionTokens: 0 }, parseUsdPrice("0.0015"), 2_000n)).toBe(2n); // 1.5 units, rounded up
    expect(chargeForUsage({ promptTokens: 1, completionTokens: 0 }, parseUsdPrice("0.0005"), 2_000n)).toBe(1n);
    expect(chargeForUsage({ promptTokens: 0, completionTokens: 0 }, price, 2_000n)).toBe(1n); // never 0: a 0 charge leaves the signature unspent
    expect(chargeForUsage({ promptTokens: 5_000, completionTokens: 1_000 }, price, 2_000n)).toBe(2_000n); // the upstream counted more than the estimate
    expect(parseUsage({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 })).toEqual({ promptTokens: 3, completionTokens: 2 });
    for (const bad of [undefined, null, {}, { prompt_tokens: -1, completion_tokens: 2 }, { prompt_tokens: 1.5, completion_tokens: 2 }, { prompt_tokens: "3", completion_tokens: 2 }]) {
      expect(parseUsage(bad)).toBeUndefined();
    }
  });

  it("reads the last usage of an SSE stream cut anywhere, CRLF or LF, and skips an oversized event", () => {
    const stream =
      'data: {"choices":[{"delta":{"content":"hi"}}]}\r\n\r\n' +
      'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":1}}\n\n' +
      ": comment\n\n" +
      'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n' +
      "data: [DONE]\n\n";
    for (const size of [1, 3, 17, stream.length]) {
      const meter = new StreamUsage();
      for (let i = 0; i < stream.length; i += size) meter.push(stream.slice(i, i + size));
      expect(meter.complete).toBe(false);
      meter.end();
      expect([size, meter.complete, meter.usage]).toEqual([size, true, { promptTokens: 7, completionTokens: 3 }]);
    }
    const meter = new StreamUsage();
    meter.push(`data: {"pad":"${"x".repeat(MAX_EVENT_CHARS)}","usage":{"prompt_tokens":9,"completion_tokens":9}}\n\n`);
    meter.push('data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}'); // the last event may lack its blank line
    meter.end();
    expect(meter.usage).toEqual({ promptTokens: 1, completionTokens: 2 });
  });

  it("keys a payment by its Permit2 owner and nonce (v2), or its EIP-3009 authorization; none: no key", () => {
    const v2 = (payload: unknown) => ({ version: 2, payload: { x402Version: 2, payload }, requirements: {}, receiptHeader: "" }) as unknown as Payment;
    const owner = "0xAbC0000000000000000000000000000000000001";
    expect(authorizationKey(v2({ permit2Authorization: { from: owner, nonce: "0042" } }))).toBe(`permit2:${owner.toLowerCase()}:42`);
    expect(authorizationKey(v2({ permit2Authorization: { from: owner, nonce: "42" }, authorization: { from: owner, nonce: "0x01" } }))).toBe(`permit2:${owner.toLowerCase()}:42`);
    expect(authorizationKey(v2({ authorization: { from: owner, nonce: "0xAB" } }))).toBe(`eip3009:${owner.toLowerCase()}:0xab`);
    expect(authorizationKey(v2({ permit2Authorization: { from: owner, nonce: "0x2a" } }))).toBe(`permit2:${owner.toLowerCase()}:42`);
    expect(authorizationKey(v2({ permit2Authorization: { from: owner, nonce: "0x" } }))).toBeUndefined();
    expect(authorizationKey(v2({ permit2Authorization: { from: owner, nonce: "4e2" } }))).toBeUndefined();
    expect(authorizationKey(v2({ signature: "0x" }))).toBeUndefined();
    // v1 is EIP-3009 only (the facilitator ignores a permit2Authorization there): keyed by `authorization`.
    const v1 = { version: 1, payload: { x402Version: 1, payload: { permit2Authorization: { from: owner, nonce: "1" }, authorization: { from: owner, nonce: "0x01" } } } } as unknown as Payment;
    expect(authorizationKey(v1)).toBe(`eip3009:${owner.toLowerCase()}:0x01`);
  });

  it("offers upto only where /supported lists an upto kind with a facilitatorAddress for the network", () => {
    const address = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
    const kinds = [{ x402Version: 2, scheme: "upto", network, extra: { facilitatorAddress: address } }];
    expect(termsFromSupported({ kinds, extensions: ["eip2612GasSponsoring"], signers: {} }, network, true).terms).toEqual({
      upto: { facilitatorAddress: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" },
      eip2612GasSponsoring: true,
    });
    expect(termsFromSupported({ kinds, extensions: [], signers: {} }, "eip155:8453", true)).toMatchObject({ terms: { eip2612GasSponsoring: false }, note: expect.stringMatching(/no upto kind for eip155:8453: offering exact/) });
    expect(termsFromSupported({ kinds: [{ ...kinds[0]!, extra: {} }], extensions: [], signers: {} }, network, true).terms.upto).toBeUndefined();
    expect(termsFromSupported({ kinds, extensions: [], signers: {} }, network, false).terms.upto).toBeUndefined();
  });

  it("a facilitator unreachable at start: exact meanwhile, asked again once TERMS_RETRY_MS has passed, then the terms stay", async () => {
    let nowMs = 1_000_000;
    let calls = 0;
    let up = false;
    const notes: string[] = [];
    const supported = async () => {
      calls += 1;
      if (!up) throw new Error("connect ECONNREFUSED");
      return { kinds: [{ x402Version: 2, scheme: "upto", network, extra: { facilitatorAddress: addressOf(keys.facilitator) } }], extensions: [], signers: {} };
    };
    const terms = new FacilitatorTerms({ supported }, network, true, { info: (m) => notes.push(m), warn: (m) => notes.push(m) }, () => nowMs);
    await terms.load();
    expect(terms.current.upto).toBeUndefined();
    expect(notes.at(-1)).toMatch(/^facilitator \/supported failed \(connect ECONNREFUSED\): offering exact \(EIP-3009\) only, asking again in 60 s$/);
    up = true;
    terms.refreshIfDue(); // not due yet
    expect(calls).toBe(1);
    nowMs += TERMS_RETRY_MS;
    terms.refreshIfDue();
    terms.refreshIfDue(); // one call in flight at a time
    await waitFor("the terms", async () => terms.current.upto, 5_000);
    expect(calls).toBe(2);
    nowMs += 10 * TERMS_RETRY_MS;
    terms.refreshIfDue(); // loaded: never asked again
    expect(calls).toBe(2);
  });
});

describe("an @x402/fetch buyer registered for upto is charged the tokens used, not the cap", () => {
  it("non-streamed: signs the cap (2,000), pays 804 (the upstream's usage): payTo +804 and the buyer -804 on chain, PAYMENT-RESPONSE amount 804", async () => {
    const account = await fundedBuyer(true);
    const { fetchWithPayment } = uptoBuyer(account);
    const [payerBefore, payToBefore] = await Promise.all([chain.balanceOf(account.address), chain.balanceOf(payTo)]);

    const response = await post(fetchWithPayment, pricedBody());

    expect(response.status).toBe(200);
    const completion = (await response.json()) as { choices: Array<{ message: { content: string } }>; usage: Record<string, number> };
    expect(completion.choices[0]!.message.content).toBe(STUB_COMPLETION);
    expect(completion.usage).toEqual({ prompt_tokens: 800, completion_tokens: COMPLETION_TOKENS, total_tokens: 804 });
    const receipt = decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!);
    expect(receipt).toMatchObject({ success: true, network, payer: account.address, amount: USED_ATOMIC.toString() });

    expect(await chain.balanceOf(payTo)).toBe(payToBefore + USED_ATOMIC);
    expect(await chain.balanceOf(account.address)).toBe(payerBefore - USED_ATOMIC);
    expect((await transfersInTx(chain, receipt.transaction as Hex, account.address, payTo)).map((log) => log.args.value)).toEqual([USED_ATOMIC]);
    const mined = await chain.publicClient.getTransactionReceipt({ hash: receipt.transaction as Hex });
    expect(mined.to?.toLowerCase()).toBe(x402UptoPermit2ProxyAddress.toLowerCase());

    const line = await paidLine(account.address);
    expect(line).toMatchObject({ level: 30, scheme: "upto", amount: "804", maxAmount: "2000", chargedFor: "usage", promptTokens: 800, completionTokens: 4, stream: false, transaction: receipt.transaction });
    expect(line.msg).toMatch(/^paid: 804 of cap 2000 \(800 prompt \+ 4 completion tokens\) from 0x[0-9a-fA-F]{40} tx 0x[0-9a-f]{64} \(verify \d+ ms, settle \d+ ms\)$/);
    // The signed authorization was for the cap; the facilitator's row records both.
    const rows = await withPgClient(db.url, async (c) => (await c.query("SELECT * FROM settlements WHERE tx_hash = $1 OR settled_tx_hash = $1", [receipt.transaction])).rows);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ scheme: "upto", status: "confirmed", value_atomic: "804", permitted_atomic: "2000" });
  });

  it("streamed: include_usage is asked upstream, the SSE is piped (usage chunk included, no PAYMENT-RESPONSE), and 804 is settled after the last byte", async () => {
    const account = await fundedBuyer(true);
    const { fetchWithPayment } = uptoBuyer(account);
    const [payerBefore, payToBefore] = await Promise.all([chain.balanceOf(account.address), chain.balanceOf(payTo)]);

    const response = await post(fetchWithPayment, pricedBody({ stream: true }));

    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    expect(response.headers.get("PAYMENT-RESPONSE")).toBeNull(); // the charge is not known when the headers go
    const events = sseData(await response.text());
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((data) => JSON.parse(data) as { choices: Array<{ delta: { content: string } }>; usage?: unknown });
    expect(chunks.flatMap((c) => c.choices.map((choice) => choice.delta.content)).join("")).toBe(STREAM_PIECES.join(""));
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 800, completion_tokens: 4, total_tokens: 804 });
    expect(upstream.seen.at(-1)!.body).toEqual({ ...pricedBody({ stream: true }), stream_options: { include_usage: true } });

    const line = await paidLine(account.address);
    expect(line).toMatchObject({ scheme: "upto", stream: true, amount: "804", maxAmount: "2000", chargedFor: "usage" });
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + USED_ATOMIC);
    expect(await chain.balanceOf(account.address)).toBe(payerBefore - USED_ATOMIC);
  });

  it("a buyer without a Permit2 allowance pays upto through the 402's eip2612GasSponsoring (its permit, then the charge)", async () => {
    const account = await fundedBuyer(false);
    const { fetchWithPayment } = uptoBuyer(account);
    const payToBefore = await chain.balanceOf(payTo);
    const response = await post(fetchWithPayment, pricedBody());
    expect(response.status).toBe(200);
    expect(decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!)).toMatchObject({ success: true, amount: "804" });
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + USED_ATOMIC);
    // The permit approved Permit2 for the cap; the rest of it is still there.
    const allowance = await chain.publicClient.readContract({ address: chain.token, abi: erc20Abi, functionName: "allowance", args: [account.address, permit2Address] });
    expect(allowance).toBe(CAP_ATOMIC - USED_ATOMIC);
  });

  it("an answer without usage is charged the cap, and the log says why", async () => {
    const account = await fundedBuyer(true);
    const payToBefore = await chain.balanceOf(payTo);
    const response = await post(uptoBuyer(account).fetchWithPayment, pricedBody({}, `${NO_USAGE_TRIGGER} ${"x".repeat(4_000 - NO_USAGE_TRIGGER.length - 1)}`));
    expect(response.status).toBe(200);
    expect(decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!)).toMatchObject({ success: true, amount: "2000" });
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + CAP_ATOMIC);
    const line = await paidLine(account.address);
    expect(line).toMatchObject({ amount: "2000", chargedFor: "cap", capReason: "the upstream's answer has no usage" });
    expect(line.msg).toMatch(/^paid: 2000 of cap 2000 \(charged the cap: the upstream's answer has no usage\)/);
  });

  it("a client that leaves mid-stream is charged the cap; meanwhile the same signature is refused as a duplicate, and after settlement as spent", async () => {
    const account = await fundedBuyer(true);
    const { client } = uptoBuyer(account);
    const body = pricedBody({ stream: true }, `${STREAM_HOLD_TRIGGER} ${"x".repeat(4_000 - STREAM_HOLD_TRIGGER.length - 1)}`);
    const { payload, header } = await signedPayment(client, body);
    expect(payload.accepted.scheme).toBe("upto");
    const payToBefore = await chain.balanceOf(payTo);

    const leaving = new AbortController();
    const first = await post(fetch, body, { headers: { "content-type": "application/json", "PAYMENT-SIGNATURE": header }, signal: leaving.signal });
    expect(first.status).toBe(200);
    const reader = first.body!.getReader();
    const firstChunk = new TextDecoder().decode((await reader.read()).value);
    expect(firstChunk).toContain(STREAM_PIECES[0]);

    // The stream is open and unsettled: the nonce is not spent yet, so the proxy must refuse the copy itself.
    const calls = upstream.seen.length;
    const copy = await post(fetch, body, { headers: { "content-type": "application/json", "PAYMENT-SIGNATURE": header } });
    expect(copy.status).toBe(402);
    expect(decodePaymentRequiredHeader(copy.headers.get("PAYMENT-REQUIRED")!).error).toMatch(/^duplicate_payment/);
    expect(upstream.seen.length).toBe(calls);

    leaving.abort();
    await reader.cancel().catch(() => undefined);
    const line = await paidLine(account.address);
    expect(line).toMatchObject({ amount: "2000", chargedFor: "cap", capReason: "the client disconnected mid-stream", stream: true });
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + CAP_ATOMIC);

    const rows = await settlementRows(db.url, nonceHex(permitOf(payload).nonce));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ scheme: "upto", value_atomic: "2000" });
    const replay = await post(fetch, body, { headers: { "content-type": "application/json", "PAYMENT-SIGNATURE": header } });
    expect(replay.status).toBe(402);
    expect(upstream.seen.length).toBe(calls);
  });

  it("an upstream that breaks off mid-stream: the buyer's stream ends early and the cap is charged, logged as the upstream's doing", async () => {
    const account = await fundedBuyer(true);
    const payToBefore = await chain.balanceOf(payTo);
    const response = await post(uptoBuyer(account).fetchWithPayment, pricedBody({ stream: true }, `${STREAM_BREAK_TRIGGER} ${"z".repeat(4_000 - STREAM_BREAK_TRIGGER.length - 1)}`));
    expect(response.status).toBe(200);
    const received = await response.text().catch(() => "(the proxy's answer was cut off)");
    expect(received).not.toContain("[DONE]");
    const line = await paidLine(account.address);
    expect(line).toMatchObject({ amount: "2000", chargedFor: "cap", capReason: "the upstream's stream broke off or timed out", stream: true });
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + CAP_ATOMIC);
  });

  it("a settlement that fails after the stream was delivered is the seller's loss: logged at warn as unpaid after delivery, with the reason", async () => {
    const account = await fundedBuyer(true);
    const { client } = uptoBuyer(account);
    const body = pricedBody({ stream: true }, `${STREAM_HOLD_TRIGGER} ${"y".repeat(4_000 - STREAM_HOLD_TRIGGER.length - 1)}`);
    const { header } = await signedPayment(client, body);
    const payToBefore = await chain.balanceOf(payTo);

    const leaving = new AbortController();
    const response = await post(fetch, body, { headers: { "content-type": "application/json", "PAYMENT-SIGNATURE": header }, signal: leaving.signal });
    expect(response.status).toBe(200); // verified, streaming
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain(STREAM_PIECES[0]);
    // While the answer streams, the buyer takes back its allowance to Permit2: the settlement must fail.
    const wallet = createWalletClient({ account, chain: viemChain, transport: viemHttp(chain.rpcUrl) });
    const revoke = await wallet.writeContract({ address: chain.token, abi: erc20Abi, functionName: "approve", args: [permit2Address, 0n] });
    await chain.publicClient.waitForTransactionReceipt({ hash: revoke, timeout: 10_000 });
    leaving.abort();
    await reader.cancel().catch(() => undefined);

    const line = await waitFor(
      "the proxy's unpaid line",
      async () => proxyLog.find((l) => l.payer === account.address && l.msg.startsWith("unpaid after delivery: ")),
      SETTLE_AFTER_STREAM_BOUND_MS,
    );
    expect(line).toMatchObject({ level: 40, scheme: "upto", stream: true, amount: "2000", chargedFor: "cap" });
    expect(line.reason).toBe("permit2_allowance_required");
    expect(line.msg).toMatch(/^unpaid after delivery: settling 2000 of cap 2000 \(charged the cap: the client disconnected mid-stream\) failed: /);
    expect(proxyLog.filter((l) => l.payer === account.address && l.msg.startsWith("paid: "))).toEqual([]);
    expect(await chain.balanceOf(payTo)).toBe(payToBefore);
  });

  it("a buyer whose client has only exact pays the quote with EIP-3009, as before", async () => {
    const account = await fundedBuyer(false);
    const payToBefore = await chain.balanceOf(payTo);
    const response = await post(exactOnlyBuyer(account), pricedBody());
    expect(response.status).toBe(200);
    expect(decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!)).toMatchObject({ success: true, payer: account.address });
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + CAP_ATOMIC);
    const line = await paidLine(account.address);
    expect(line).toMatchObject({ scheme: "exact", amount: "2000" });
    expect(line.msg).toMatch(/^paid: 2000 from /);
  });
});

describe("offering exact only", () => {
  const startProxy = async (env: Record<string, string>) => {
    const log: LogLine[] = [];
    const app = createProxy(loadConfig(proxyEnv(env)), { logger: collectingLogger(log) });
    const url = await app.listen({ host: "127.0.0.1", port: 0 });
    const unpaid = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(pricedBody()) });
    const required = decodePaymentRequiredHeader(unpaid.headers.get("PAYMENT-REQUIRED")!);
    await app.close();
    return { log, required };
  };

  it("a facilitator whose /supported lists no upto kind: exact only, no extension, and the start says so", async () => {
    const supported = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ kinds: [{ x402Version: 2, scheme: "exact", network }], extensions: ["eip2612GasSponsoring"], signers: {} }));
    });
    await new Promise<void>((resolve) => supported.listen(0, "127.0.0.1", resolve));
    try {
      const { log, required } = await startProxy({ FACILITATOR_URL: `http://127.0.0.1:${(supported.address() as AddressInfo).port}` });
      expect(required.accepts.map((accept) => accept.scheme)).toEqual(["exact"]);
      expect(required.extensions).toBeUndefined();
      expect(log.map((line) => line.msg)).toContain(`the facilitator lists no upto kind for ${network}: offering exact (EIP-3009) only`);
    } finally {
      supported.closeAllConnections();
      await new Promise<void>((resolve) => supported.close(() => resolve()));
    }
  });

  it("UPTO=off: exact only", async () => {
    const { log, required } = await startProxy({ UPTO: "off" });
    expect(required.accepts.map((accept) => accept.scheme)).toEqual(["exact"]);
    expect(log.map((line) => line.msg)).toContain("UPTO=off: offering exact (EIP-3009) only");
  });

  it("the proxy under test offers upto, and said so at start", () => {
    expect(proxyLog.map((line) => line.msg)).toContainEqual(expect.stringMatching(/^offering upto \(Permit2, charged for the tokens used, facilitatorAddress 0x[0-9a-fA-F]{40}\) then exact \(EIP-3009\)/));
  });
});
