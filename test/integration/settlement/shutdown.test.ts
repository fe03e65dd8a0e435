import { waitFor } from "../../helpers/wait.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { startTestFacilitator } from "../../helpers/facilitator.js";
import { facilitatorEnv, startFacilitatorProcess, type FacilitatorProcess } from "../../helpers/facilitator-process.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";

/**
 * Graceful shutdown of a real facilitator process (SIGTERM → src/main.ts closeOnSignals): a
 * /settle waiting for its receipt still gets its answer, the process exits 0, nothing new is
 * started, and the row ends consistent with the chain. Anvil with automine off, so the test
 * decides when the block comes.
 */
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;
const settleBudgetMs = 3_000;
const exitBoundMs = 10_000;

let chain: TestChain;
let database: TestDatabase;
let env: Record<string, string>;
const children: FacilitatorProcess[] = [];
/** Started in beforeAll, in parallel: one per test. */
let forMinedBlock: Promise<FacilitatorProcess>;
let forNoBlock: Promise<FacilitatorProcess>;

beforeAll(async () => {
  chain = await startTestChain({ noMining: true });
  await chain.mint(payer, 1_000_000n);
  database = await createTestDatabase("shutdown");
  env = facilitatorEnv({
    databaseUrl: database.url,
    rpcUrl: chain.rpcUrl,
    token: chain.token,
    signerKeys: [keys.facilitator],
    limits: { SETTLE_BUDGET_MS: settleBudgetMs, DUPLICATE_WAIT_MS: settleBudgetMs, RECONCILE_INTERVAL_MS: 200, RPC_TIMEOUT_MS: 3_000 },
  });
  const start = () =>
    startFacilitatorProcess({ env }).then((child) => {
      children.push(child);
      return child;
    });
  forMinedBlock = start();
  forNoBlock = start();
  // Surface start failures in the test that uses the process, not as unhandled rejections here.
  forMinedBlock.catch(() => undefined);
  forNoBlock.catch(() => undefined);
  await Promise.allSettled([forMinedBlock, forNoBlock]);
});

afterAll(async () => {
  for (const child of children) await child.kill("SIGKILL").catch(() => undefined);
  await database?.drop();
  await chain?.stop();
});

async function rowFor(nonce: Hex) {
  return withPgClient(database.url, async (client) => (await client.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows[0]);
}

async function rowCount(): Promise<number> {
  return withPgClient(database.url, async (client) => (await client.query("select count(*)::int as n from settlements")).rows[0].n);
}


/**
 * Starts a /settle and resolves once its row is `submitted`, i.e. the request is waiting for the
 * receipt. `connectionClose` asks the server to close the connection after the answer; without it
 * the client (undici fetch, like every x402 SDK) keeps the connection alive.
 */
async function settleUntilSubmitted(url: string, options: { connectionClose?: boolean } = {}) {
  const body = v2Body(
    await signPayment({ payerKey: keys.payer, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic }),
    v2Requirements({ token: chain.token, payTo, amountAtomic }),
  );
  const nonce = body.paymentPayload.payload.authorization.nonce;
  const startedMs = Date.now();
  const headers: Record<string, string> = { "content-type": "application/json", ...(options.connectionClose ? { connection: "close" } : {}) };
  const answer = fetch(`${url}/settle`, { method: "POST", headers, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) }).then(async (response) => ({
    status: response.status,
    body: (await response.json()) as Record<string, any>,
    atMs: Date.now() - startedMs,
  }));
  answer.catch(() => undefined); // awaited by the test; a drop is asserted there
  const submitted = await waitFor("row submitted", async () => {
    const row = await rowFor(nonce);
    return row?.status === "submitted" ? row : undefined;
  }, 10_000);
  return { body, nonce, answer, submitted };
}

/** A request sent while shutting down is refused (connection refused or 503) and claims nothing. */
async function newRequestRefused(url: string): Promise<string> {
  const body = v2Body(
    await signPayment({ payerKey: keys.payer, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic }),
    v2Requirements({ token: chain.token, payTo, amountAtomic }),
  );
  try {
    const response = await fetch(`${url}/settle`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(5_000) });
    await response.text();
    expect(response.status).toBe(503);
    return "503";
  } catch (error) {
    return String((error as Error).cause ?? error).slice(0, 60);
  } finally {
    expect(await rowFor(body.paymentPayload.payload.authorization.nonce)).toBeUndefined();
  }
}

async function authorizationUsed(nonce: Hex) {
  return chain.publicClient.getContractEvents({ address: chain.token, abi: eip3009Abi, eventName: "AuthorizationUsed", args: { authorizer: payer, nonce }, fromBlock: 0n });
}

describe("graceful shutdown (SIGTERM) of a facilitator process", () => {
  /** The process of the first test; the second checks how it exits. */
  let keptAlive: { child: FacilitatorProcess; sigtermMs: number } | undefined;

  it("answers the /settle waiting for its receipt when the block comes after SIGTERM; refuses new requests; the row is confirmed", async () => {
    const child = await forMinedBlock;
    const rowsBefore = await rowCount();
    const { nonce, answer, submitted } = await settleUntilSubmitted(child.url);
    const sigtermMs = Date.now();
    child.child.kill("SIGTERM");
    keptAlive = { child, sigtermMs };
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refused = await newRequestRefused(child.url);
    await chain.testClient.mine({ blocks: 1 });

    const answered = await answer; // a dropped connection would reject here
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ success: true, transaction: submitted.tx_hash });
    expect(await rowFor(nonce)).toMatchObject({ status: "confirmed", tx_hash: submitted.tx_hash, settled_tx_hash: submitted.tx_hash, success_answered: true });
    const used = await authorizationUsed(nonce);
    expect(used.map((log) => log.transactionHash)).toEqual([submitted.tx_hash]);
    expect(await rowCount()).toBe(rowsBefore + 1); // the request refused during shutdown claimed nothing
    console.log(`[shutdown] block mined 300 ms after SIGTERM: in-flight /settle answered success after ${answered.atMs} ms; a new request during shutdown: ${refused}`);
  });

  /**
   * Regression: the in-flight answer above goes out on a keep-alive connection (Fastify advertises
   * Keep-Alive: timeout=72; undici keeps the socket), which only becomes idle after close() began.
   * app.close() used to wait for it until the 25 s grace timer (exit 1); startServer's close() now
   * keeps closing idle connections while in-flight requests finish.
   */
  it("then exits 0 within 5 s of SIGTERM although the client keeps its connection alive", async () => {
    expect(keptAlive).toBeDefined();
    const exit = await keptAlive!.child.waitForExit(5_000);
    expect(exit, keptAlive!.child.output()).toEqual({ code: 0, signal: null });
  });

  it("answers settlement_pending with the hash when no block comes within the budget, exits 0, and a new instance's watcher confirms the row", async () => {
    const child = await forNoBlock;
    const { body, nonce, answer, submitted } = await settleUntilSubmitted(child.url, { connectionClose: true });
    const sigtermMs = Date.now();
    child.child.kill("SIGTERM");

    const answered = await answer;
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ success: false, errorReason: "settlement_pending", transaction: submitted.tx_hash });
    expect(answered.atMs).toBeLessThan(settleBudgetMs + 2_000);
    const exit = await child.waitForExit(exitBoundMs);
    const exitedAfterMs = Date.now() - sigtermMs;
    expect(exit, child.output()).toEqual({ code: 0, signal: null });
    expect(exitedAfterMs).toBeLessThan(settleBudgetMs + 3_000);
    expect(await rowFor(nonce)).toMatchObject({ status: "submitted", pending_answered: true, tx_hash: submitted.tx_hash });

    // The transaction is still in Anvil's pool; the block comes after the process is gone.
    await chain.testClient.mine({ blocks: 1 });
    const next = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [chain.rpcUrl], token: chain.token, startWatcher: true, limits: { settleBudgetMs } });
    try {
      const final = await waitFor("the new instance's watcher confirms the row", async () => {
        const row = await rowFor(nonce);
        return row?.status === "confirmed" || row?.status === "failed" ? row : undefined;
      }, 10_000);
      expect(final).toMatchObject({ status: "confirmed", tx_hash: submitted.tx_hash, settled_tx_hash: submitted.tx_hash, success_answered: false });
      expect((await authorizationUsed(nonce)).map((log) => log.transactionHash)).toEqual([submitted.tx_hash]);
      // The SDK's retry after settlement_pending gets the one success; a third call is a duplicate.
      const retry = await next.app.inject({ method: "POST", url: "/settle", payload: body });
      expect(retry.json()).toMatchObject({ success: true, transaction: submitted.tx_hash });
      const third = await next.app.inject({ method: "POST", url: "/settle", payload: body });
      expect(third.json()).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: submitted.tx_hash });
    } finally {
      await next.close();
    }
    console.log(`[shutdown] no block (Connection: close): in-flight /settle answered settlement_pending + hash after ${answered.atMs} ms; exit 0 ${exitedAfterMs} ms after SIGTERM; the next instance's watcher confirmed the row`);
  });
});
