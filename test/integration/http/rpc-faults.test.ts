/**
 * RPC failover and RPC outages, injected by a proxy in front of a real Anvil (test/helpers/
 * faulty-rpc-proxy.ts), with real Postgres. The facilitator is given two RPC URLs, both proxies of
 * the same node, so each test decides which one fails and how, and counts who served what.
 *
 * What must hold (design.md §3-4): a 429, a dropped connection or a hung RPC moves on to the next
 * URL and is never a payment failure; every RPC down is a bounded 503 with nothing half-done (no
 * live claim, no transaction); an RPC lost after the broadcast gives settlement_pending with the hash,
 * and the watcher or the identical retry finishes it; a lost broadcast answer never becomes a second
 * transaction.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseAbi, type Hex } from "viem";
import type { Limits } from "../../../src/config.js";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { startFaultyRpcProxy, type FaultMode, type FaultRule, type FaultyRpcProxy } from "../../helpers/faulty-rpc-proxy.js";
import { postJson } from "../../helpers/http.js";
import { waitFor, within } from "../../helpers/wait.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { paymentBody } from "../../helpers/payments.js";

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const facilitatorAddress = addressOf(keys.facilitator);
const amountAtomic = 10_000n;
const network = "eip155:84532";

const rpcTimeoutMs = 500;
const rpcRetryCount = 0;
const settleBudgetMs = 3_000;
/** Tries per RPC call before it fails for good: every URL, each (1 + retries) times. */
const rpcTriesMax = 2 * (1 + rpcRetryCount);
/**
 * No test asserts elapsed milliseconds (a loaded machine stretches them): what proves a bound is the
 * outcome (settlement_pending can only come from the budget running out, success (not pending) from a
 * receipt within it) and the RPC calls counted at the proxies (a bound is `tries × timeout`, so
 * counting tries checks it). `within()` only turns a hang into a clear failure, at 10× the bound.
 */
const hangFactor = 10;
const rpcBoundMs = rpcTimeoutMs * rpcTriesMax;
/**
 * For the tests that count which URL served what while a healthy call must not time out: a stalled
 * event loop on a loaded machine can hold a healthy answer past 500 ms, and a timed-out healthy URL
 * cools down too, which moves calls to the other URL and breaks the counts for a reason that is not
 * the behaviour under test.
 */
const roomyRpcTimeoutMs = 2_000;
/** A slow first RPC: held this long, well within either timeout. */
const slowRpcDelayMs = 125;

let chain: TestChain;
let database: TestDatabase;
let rpcA: FaultyRpcProxy;
let rpcB: FaultyRpcProxy;
let facilitator: TestFacilitator | undefined;
const measured: string[] = [];

/**
 * A fresh facilitator per test: what one test taught the RPC transport about an URL's health must
 * not leak into the next.
 */
async function useFacilitator(limits: Partial<Limits> = {}, rpcUrls = [rpcA.url, rpcB.url]): Promise<TestFacilitator> {
  await facilitator?.close();
  facilitator = await startTestFacilitator({
    databaseUrl: database.url,
    rpcUrls,
    token: chain.token,
    limits: { rpcTimeoutMs, rpcRetryCount, settleBudgetMs, duplicateWaitMs: settleBudgetMs, ...limits },
    // Plain sends and receipt polling: the faults below are keyed on eth_sendRawTransaction. The
    // same faults on sync sends (eth_sendRawTransactionSync) are in test/integration/settlement/sync-send.test.ts.
    sendMode: "async",
  });
  return facilitator;
}

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(payer, 100_000_000n);
  database = await createTestDatabase("rpc_faults");
  rpcA = await startFaultyRpcProxy({ upstreamUrl: chain.rpcUrl });
  rpcB = await startFaultyRpcProxy({ upstreamUrl: chain.rpcUrl });
});

afterAll(async () => {
  await facilitator?.close();
  await rpcA?.stop();
  await rpcB?.stop();
  await database?.drop();
  await chain?.stop();
  if (measured.length > 0) console.info(`rpc-faults timings:\n  ${measured.join("\n  ")}`);
});

beforeEach(async () => {
  for (const proxy of [rpcA, rpcB]) {
    proxy.set("pass");
    proxy.resetCounts();
  }
  await useFacilitator();
});

afterEach(async () => {
  await facilitator?.close();
  facilitator = undefined;
});

const everyRpc = (rule: FaultMode | FaultRule) => {
  rpcA.set(rule);
  rpcB.set(rule);
};

const newBody = async () =>
  paymentBody(chain, { payerKey: keys.payer, payTo, amountAtomic });
const nonceOf = (body: Awaited<ReturnType<typeof newBody>>) => body.paymentPayload.payload.authorization.nonce;

/** POSTs, failing clearly on a hang (`boundMs` × hangFactor); the elapsed time is only reported. */
async function post(url: "/verify" | "/settle", body: unknown, label?: string, boundMs = url === "/settle" ? settleBudgetMs : rpcBoundMs) {
  const startedMs = Date.now();
  const answer = await within(`${label ?? "POST"} ${url}`, postJson(facilitator!.app, url, body), boundMs * hangFactor);
  const elapsedMs = Date.now() - startedMs;
  if (label) measured.push(`${label}: ${url} → ${answer.status} ${answer.body.errorReason ?? answer.body.invalidReason ?? (answer.body.success ?? answer.body.isValid)} in ${elapsedMs} ms`);
  return answer;
}

async function get(url: string) {
  const response = await facilitator!.app.inject({ method: "GET", url });
  return { status: response.statusCode, body: response.json() as Record<string, any> };
}

async function rowsFor(nonce: string) {
  return withPgClient(database.url, async (client) => (await client.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows);
}

/** AuthorizationUsed(payer, nonce) logs: how many times this authorization moved money on chain. */
async function usesOnChain(nonce: string): Promise<number> {
  const logs = await chain.publicClient.getContractEvents({
    address: chain.token,
    abi: parseAbi(["event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)"]),
    eventName: "AuthorizationUsed",
    args: { authorizer: payer, nonce: nonce as Hex },
    fromBlock: 0n,
  });
  return logs.length;
}

const facilitatorTxCount = () => chain.publicClient.getTransactionCount({ address: facilitatorAddress });
const sentRawTransactions = () => rpcA.received("eth_sendRawTransaction") + rpcB.received("eth_sendRawTransaction");

describe("failover: the first RPC misbehaves, the second serves", () => {
  it.each<FaultMode>(["status429", "status503", "drop", "blackhole"])("verifies and settles through the second RPC when the first answers %s", async (mode) => {
    rpcA.set(mode);
    const body = await newBody();
    const verify = await post("/verify", body, `first RPC ${mode}`);
    expect(verify.status).toBe(200);
    expect(verify.body).toEqual({ isValid: true, payer });

    const settle = await post("/settle", body, `first RPC ${mode}`);
    expect(settle.status).toBe(200);
    expect(settle.body).toMatchObject({ success: true, payer, network });
    expect(settle.body.transaction).toMatch(/^0x[0-9a-f]{64}$/); // success, not settlement_pending: within the budget

    // The first RPC was asked (and refused) every time; the second served everything, once.
    expect(rpcA.total()).toBeGreaterThan(0);
    expect(Object.keys(rpcA.counts().forwarded)).toEqual([]);
    expect(rpcB.forwarded("eth_sendRawTransaction")).toBe(1);
    expect(rpcB.forwarded("eth_getTransactionReceipt")).toBeGreaterThan(0);
    expect(await usesOnChain(nonceOf(body))).toBe(1);
    expect(await rowsFor(nonceOf(body))).toMatchObject([{ status: "confirmed", tx_hash: settle.body.transaction }]);
  });

  it("pays a hung first RPC's timeout once, not on every call, with retries per URL (the default rpcRetryCount 1)", async () => {
    // A healthy second URL that timed out would cool down and send calls back to the hung first one.
    await useFacilitator({ rpcRetryCount: 1, rpcTimeoutMs: roomyRpcTimeoutMs });
    rpcA.set("blackhole");
    const body = await newBody();
    // The hung URL's tries (1 + rpcRetryCount, each roomyRpcTimeoutMs), then the second's answer.
    const verify = await post("/verify", body, "first RPC blackhole, rpcRetryCount 1", roomyRpcTimeoutMs * 2 * (1 + 1));
    expect(verify.body).toEqual({ isValid: true, payer });
    const settle = await post("/settle", body, "first RPC blackhole, rpcRetryCount 1");
    expect(settle.body).toMatchObject({ success: true, payer, network }); // not settlement_pending: within the budget
    expect(rpcB.forwarded("eth_sendRawTransaction")).toBe(1);
    // Once, not on every call: the hung URL met at most its 1 + rpcRetryCount tries, all the rest went to the second.
    expect(rpcA.total(), JSON.stringify(rpcA.counts())).toBeLessThanOrEqual(1 + 1);
    expect(rpcB.total()).toBeGreaterThan(rpcA.total());
  });

  it("waits for a slow first RPC that answers within the timeout instead of failing over", async () => {
    // The delay is a fraction of the timeout with room for a stalled event loop on top, so the slow
    // answer is never timed out (which would fail over for a reason that is not the slowness).
    await useFacilitator({ rpcTimeoutMs: roomyRpcTimeoutMs });
    rpcA.set({ mode: "delay", delayMs: slowRpcDelayMs });
    const verify = await post("/verify", await newBody(), `first RPC delayed ${slowRpcDelayMs} ms`, roomyRpcTimeoutMs * rpcTriesMax);
    expect(verify.body).toEqual({ isValid: true, payer });
    expect(rpcA.forwarded("eth_call")).toBeGreaterThan(0);
    expect(rpcB.total()).toBe(0);
  });
});

describe("every RPC of the network down", () => {
  it.each<FaultMode>(["drop", "blackhole", "status429", "status503"])("/verify answers 503 service_unavailable within the RPC bound when every RPC answers %s", async (mode) => {
    everyRpc(mode);
    const verify = await post("/verify", await newBody(), `every RPC ${mode}`);
    expect(verify.status).toBe(503);
    expect(verify.body).toMatchObject({ isValid: false, invalidReason: "service_unavailable", error: "service_unavailable" });
    expect(verify.body.invalidMessage).toMatch(/RPC unavailable/);
    // Within the RPC bound: one call's tries (every URL, 1 + rpcRetryCount each), then the 503.
    expect(rpcA.total()).toBeGreaterThan(0);
    expect(rpcB.total()).toBeGreaterThan(0);
    expect(rpcA.total() + rpcB.total(), JSON.stringify([rpcA.counts(), rpcB.counts()])).toBeLessThanOrEqual(rpcTriesMax);
  });

  it("/verify of a payment it verified before (its chain reads cached) also answers 503 within the RPC bound", async () => {
    everyRpc("pass");
    const body = await newBody();
    expect((await post("/verify", body, "all RPCs pass")).body).toMatchObject({ isValid: true });
    await new Promise((resolve) => setTimeout(resolve, 600)); // past the cache's 500 ms head-age bound: the head must be read again
    everyRpc("blackhole");
    rpcA.resetCounts();
    rpcB.resetCounts();
    const verify = await post("/verify", body, "every RPC blackhole, repeated payment");
    expect(verify.status).toBe(503);
    expect(verify.body).toMatchObject({ isValid: false, invalidReason: "service_unavailable" });
    // One bound, not two: the failed head read answers at once instead of handing over to a fresh
    // read that waits again — so the tries are one call's (at most rpcTriesMax), not two calls'.
    expect(rpcA.total() + rpcB.total(), JSON.stringify([rpcA.counts(), rpcB.counts()])).toBeLessThanOrEqual(rpcTriesMax);
    expect(rpcA.total() + rpcB.total()).toBeGreaterThan(0);
  });

  it("/settle answers 503, leaves no live claim and sends nothing; the same /settle succeeds once the RPCs are back", async () => {
    const body = await newBody();
    const nonce = nonceOf(body);
    const txCountBefore = await facilitatorTxCount();
    everyRpc("blackhole");

    const refused = await post("/settle", body, "every RPC blackhole", rpcBoundMs);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ success: false, errorReason: "service_unavailable", transaction: "" });

    // The claim was given back: failed before any broadcast, so a later attempt may take it again.
    const rows = await rowsFor(nonce);
    expect(rows.length).toBeLessThanOrEqual(1);
    if (rows.length === 1) expect(rows[0]).toMatchObject({ status: "failed", broadcast_at: null, tx_hash: null });
    expect(sentRawTransactions()).toBe(0);

    everyRpc("pass");
    expect(await facilitatorTxCount()).toBe(txCountBefore);
    const used = await chain.publicClient.readContract({ address: chain.token, abi: eip3009Abi, functionName: "authorizationState", args: [payer, nonce as Hex] });
    expect(used).toBe(false);
    // Not reported as "already being settled": the refused attempt holds nothing.
    expect((await post("/verify", body)).body).toEqual({ isValid: true, payer });

    const settled = await post("/settle", body, "RPCs back");
    expect(settled.body).toMatchObject({ success: true, payer, network });
    expect(await rowsFor(nonce)).toMatchObject([{ status: "confirmed", tx_hash: settled.body.transaction }]);
    expect(await usesOnChain(nonce)).toBe(1);
  });

  it("serves from whichever RPC comes back first, even the one that failed first", async () => {
    everyRpc("drop");
    expect((await post("/verify", await newBody())).status).toBe(503);
    rpcA.set("pass"); // the second stays down
    const verify = await post("/verify", await newBody(), "first RPC back, second still down");
    expect(verify.body).toEqual({ isValid: true, payer });
    expect(rpcA.forwarded("eth_call")).toBeGreaterThan(0);
  });

  it("/ready reports the network down while every RPC is down, and 200 again after", async () => {
    expect((await get("/ready")).status).toBe(200);
    everyRpc("blackhole");
    const startedMs = Date.now();
    const down = await get("/ready");
    measured.push(`every RPC blackhole: /ready → ${down.status} in ${Date.now() - startedMs} ms`);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ status: "unavailable", postgres: "ok" });
    expect(down.body.networks[network]).toMatch(/^down: /);

    everyRpc("drop");
    expect((await get("/ready")).body.networks[network]).toMatch(/^down: /);

    everyRpc("pass");
    expect(await get("/ready")).toEqual({ status: 200, body: { status: "ready", postgres: "ok", networks: { [network]: "ok" } } });
  });
});

describe("the RPC dies after the broadcast", () => {
  /** The payment was broadcast and answered pending; once the RPC is back the watcher and the retry finish it. */
  async function expectFinishedAfterPending(body: Awaited<ReturnType<typeof newBody>>, pendingHash: string) {
    everyRpc("pass");
    expect(await facilitator!.services.watcher.runOnce()).toBeGreaterThanOrEqual(1);
    expect(await rowsFor(nonceOf(body))).toMatchObject([{ status: "confirmed", tx_hash: pendingHash, settled_tx_hash: pendingHash }]);
    const retry = await post("/settle", body);
    expect(retry.body).toMatchObject({ success: true, transaction: pendingHash, payer, network });
    expect((await post("/settle", body)).body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: pendingHash });
    expect(await usesOnChain(nonceOf(body))).toBe(1);
  }

  it("answers settlement_pending with the hash when every receipt lookup fails", async () => {
    everyRpc({ mode: "drop", methods: ["eth_getTransactionReceipt"] });
    const body = await newBody();
    const first = await post("/settle", body, "receipts dropped on every RPC");
    expect(first.body).toMatchObject({ success: false, errorReason: "settlement_pending", payer, network });
    expect(first.body.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(rpcA.faulted("eth_getTransactionReceipt") + rpcB.faulted("eth_getTransactionReceipt")).toBeGreaterThan(0);
    expect(await rowsFor(nonceOf(body))).toMatchObject([{ status: "submitted", pending_answered: true, tx_hash: first.body.transaction }]);
    await expectFinishedAfterPending(body, first.body.transaction);
  });

  it("answers settlement_pending with the hash when every RPC goes dark right after the broadcast", async () => {
    rpcA.after("eth_sendRawTransaction", () => everyRpc("blackhole"));
    const body = await newBody();
    const txCountBefore = await facilitatorTxCount();
    const first = await post("/settle", body, "every RPC blackhole after the broadcast");
    expect(first.body).toMatchObject({ success: false, errorReason: "settlement_pending", payer, network });
    expect(first.body.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(rpcA.forwarded("eth_sendRawTransaction")).toBe(1);
    expect(await facilitatorTxCount()).toBe(txCountBefore + 1);
    await expectFinishedAfterPending(body, first.body.transaction);
  });
});

describe("the broadcast reached the node but its answer was lost", () => {
  /** The lost broadcast was answered pending (or success) with its hash, and ends confirmed: one transaction, one transfer. */
  async function expectLostAnswerFinishedAsPaid(body: Awaited<ReturnType<typeof newBody>>, first: Awaited<ReturnType<typeof post>>, txCountBefore: number) {
    // The node took the bytes (its answer was lost); automine includes them when it gets to them:
    // a settlement_pending answer can come first on a loaded machine, and the watcher below only
    // confirms a mined transaction.
    await waitFor("the lost broadcast mined", async () => (await facilitatorTxCount()) >= txCountBefore + 1, 10_000, 25);
    expect(await facilitatorTxCount()).toBe(txCountBefore + 1);
    expect(await usesOnChain(nonceOf(body))).toBe(1);
    expect(first.body.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(first.body.success === true || first.body.errorReason === "settlement_pending").toBe(true);
    everyRpc("pass");
    await facilitator!.services.watcher.runOnce();
    expect(await rowsFor(nonceOf(body))).toMatchObject([{ status: "confirmed", settled_tx_hash: first.body.transaction }]);
    const retry = await post("/settle", body);
    if (first.body.success === true) expect(retry.body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: first.body.transaction });
    else expect(retry.body).toMatchObject({ success: true, transaction: first.body.transaction });
    // The retry sent nothing either: still one transaction, one transfer.
    expect(await facilitatorTxCount()).toBe(txCountBefore + 1);
    expect(await usesOnChain(nonceOf(body))).toBe(1);
  }

  it("never sends a second transaction: pending (or success) with the hash, then confirmed, one transfer", async () => {
    everyRpc({ mode: "forwardThenDrop", methods: ["eth_sendRawTransaction"] });
    const body = await newBody();
    const txCountBefore = await facilitatorTxCount();
    const first = await post("/settle", body, "broadcast answer lost on every RPC");
    expect(first.status).toBe(200);
    expect(rpcA.forwarded("eth_sendRawTransaction")).toBe(1);
    await expectLostAnswerFinishedAsPaid(body, first, txCountBefore);
  });

  /**
   * The first RPC forwards our raw tx (Anvil mines it) and the answer is lost, so viem's fallback
   * sends the same bytes to the second RPC, which answers "nonce too low". That is our own
   * transaction: broadcastRawTransaction() looks the hash up and treats it as sent.
   */
  it("reports a paid payment as paid when the first RPC lost the broadcast answer and the second answers the resend with nonce too low", async () => {
    rpcA.set({ mode: "forwardThenDrop", methods: ["eth_sendRawTransaction"] });
    const body = await newBody();
    const txCountBefore = await facilitatorTxCount();
    const first = await post("/settle", body, "broadcast answer lost on the first RPC only");
    expect(rpcA.forwarded("eth_sendRawTransaction")).toBe(1);
    expect(rpcB.forwarded("eth_sendRawTransaction")).toBe(1);
    await expectLostAnswerFinishedAsPaid(body, first, txCountBefore);
  });

  it("does not resend a broadcast whose answer was lost on the only RPC, even with rpcRetryCount 1 (viem sends raw transactions once)", async () => {
    await useFacilitator({ rpcRetryCount: 1 }, [rpcA.url]);
    rpcA.set({ mode: "forwardThenDrop", methods: ["eth_sendRawTransaction"] });
    rpcA.after("eth_sendRawTransaction", () => rpcA.set("pass"));
    const body = await newBody();
    const txCountBefore = await facilitatorTxCount();
    const first = await post("/settle", body, "broadcast answer lost on the only RPC, rpcRetryCount 1");
    expect(rpcA.forwarded("eth_sendRawTransaction")).toBe(1);
    await expectLostAnswerFinishedAsPaid(body, first, txCountBefore);
  });
});
