/**
 * /health and /ready against real dependencies going away and coming back: Postgres (this file's own
 * embedded server, stopped and restarted on the same data dir and port, so the app's pool reconnects)
 * and the chain's RPC (Anvil stopped). While Postgres is down, /verify and /settle answer 503
 * service_unavailable, and the payment refused then settles normally once Postgres is back.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../../../src/sandbox/postgres.js";
import { createDatabase } from "../../../src/store/database-admin.js";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { postJson } from "../../helpers/http.js";
import { within } from "../../helpers/wait.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { nowSeconds, signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;
const network = "eip155:84532";
/** How long the app may take to notice a dependency is back (pool reconnect, probe timeouts are 2-5 s). */
const recoveryTimeoutMs = 20_000;

let rootDir: string;
let postgres: EmbeddedPostgresHandle;
let databaseUrl: string;
let chain: TestChain;
let facilitator: TestFacilitator;

beforeAll(async () => {
  // As root the server runs as the `postgres` user: the temp dir must be enterable by it.
  rootDir = await mkdtemp(path.join(os.tmpdir(), "x402-ready-pg-"));
  await chmod(rootDir, 0o755);
  postgres = await startEmbeddedPostgres({ dataDir: path.join(rootDir, "data") });
  databaseUrl = await createDatabase(postgres.adminUrl, "x402_ready");
  chain = await startTestChain();
  await chain.mint(payer, 1_000_000n);
  facilitator = await startTestFacilitator({ databaseUrl, rpcUrls: [chain.rpcUrl], token: chain.token });
});

afterAll(async () => {
  await facilitator?.close();
  await chain?.stop();
  await postgres?.stop();
  if (rootDir) await rm(rootDir, { recursive: true, force: true });
});

async function get(url: string) {
  const response = await facilitator.app.inject({ method: "GET", url });
  return { status: response.statusCode, body: response.json() as Record<string, unknown> };
}

const post = (url: "/verify" | "/settle", body: unknown) => postJson(facilitator.app, url, body);

/** Polls /ready until `done` holds, within a bound; returns the last answer either way. */
async function pollReady(done: (answer: Awaited<ReturnType<typeof get>>) => boolean, timeoutMs = recoveryTimeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let answer = await get("/ready");
  while (!done(answer) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    answer = await get("/ready");
  }
  return answer;
}

const readyBody = { status: "ready", postgres: "ok", networks: { [network]: "ok" } };

async function settlementRows(nonce: string) {
  return withPgClient(databaseUrl, async (client) => (await client.query("select status, tx_hash from settlements where nonce = $1", [nonce.toLowerCase()])).rows);
}

describe("GET /health and GET /ready", () => {
  it("/health is 200 and /ready is 200 with every dependency ok", async () => {
    expect(await get("/health")).toEqual({ status: 200, body: { status: "ok" } });
    expect(await get("/ready")).toEqual({ status: 200, body: readyBody });
  });

  it("while Postgres is down: /ready 503, /verify and /settle 503 service_unavailable; after restart the same payment settles", async () => {
    const payment = await signPayment({ payerKey: keys.payer, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic, validBeforeSeconds: nowSeconds() + 600n });
    const body = v2Body(payment, v2Requirements({ token: chain.token, payTo, amountAtomic }));
    const payerBefore = await chain.balanceOf(payer);

    await postgres.stop();

    expect(await get("/health")).toEqual({ status: 200, body: { status: "ok" } });
    const down = await get("/ready");
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ status: "unavailable", networks: { [network]: "ok" } });
    expect(down.body.postgres).toMatch(/^down: /);

    // Bounded: a refused connection is not waited on for the pool's whole connection timeout (5 s).
    // That bound is the point, so it is kept as a bounded wait, at 3x the pool's timeout per call so
    // a loaded machine never trips it, while a call that waited out the pool and hung on would.
    const verify = await within("/verify while Postgres is down", post("/verify", body), 15_000);
    expect(verify.status).toBe(503);
    expect(verify.body).toMatchObject({ isValid: false, invalidReason: "service_unavailable", error: "service_unavailable", payer });
    expect(verify.body.invalidMessage).toMatch(/Postgres/i);

    const settle = await within("/settle while Postgres is down", post("/settle", body), 15_000);
    expect(settle.status).toBe(503);
    expect(settle.body).toMatchObject({ success: false, errorReason: "service_unavailable", transaction: "", network, payer });
    expect(settle.body.errorMessage).toMatch(/Postgres/i);

    // The dashboard login answers its form with 503, never a 500; a session cookie gets 503 too.
    const login = await within(
      "POST /dashboard/login while Postgres is down",
      facilitator.app.inject({ method: "POST", url: "/dashboard/login", headers: { "content-type": "application/x-www-form-urlencoded" }, payload: "key=x402_some-key" }),
      15_000,
    );
    expect(login.statusCode).toBe(503);
    expect(login.body).toMatch(/data-testid="login-error">[^<]*Postgres/);
    const withCookie = await within("GET /dashboard with a session cookie while Postgres is down", facilitator.app.inject({ method: "GET", url: "/dashboard", headers: { cookie: `x402_dashboard=${"A".repeat(43)}` } }), 15_000);
    expect(withCookie.statusCode).toBe(503);

    // Nothing reached the chain.
    const used = await chain.publicClient.readContract({ address: chain.token, abi: eip3009Abi, functionName: "authorizationState", args: [payer, payment.authorization.nonce] });
    expect(used).toBe(false);
    expect(await chain.balanceOf(payer)).toBe(payerBefore);

    // Same data dir, same port: the URL the app's pool holds is valid again.
    const stoppedPort = postgres.port;
    postgres = await startEmbeddedPostgres({ dataDir: postgres.dataDir, port: stoppedPort });
    expect(postgres.port).toBe(stoppedPort);

    const back = await pollReady((answer) => answer.status === 200);
    expect(back).toEqual({ status: 200, body: readyBody });

    // Nothing was recorded for the refused payment: no claim left half-way.
    expect(await settlementRows(payment.authorization.nonce)).toEqual([]);
    expect(await post("/verify", body)).toEqual({ status: 200, body: { isValid: true, payer } });

    const settled = await post("/settle", body);
    expect(settled.status).toBe(200);
    expect(settled.body).toMatchObject({ success: true, payer, network });
    expect(settled.body.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await chain.balanceOf(payer)).toBe(payerBefore - amountAtomic);
    expect(await settlementRows(payment.authorization.nonce)).toEqual([{ status: "confirmed", tx_hash: settled.body.transaction }]);
  });

  it("while the chain's RPC is down: /ready 503 with the network down, /health still 200", async () => {
    expect((await get("/ready")).status).toBe(200);
    await chain.stop();

    // The probe has its own 2 s bound: an answer at all (503, the network down) is the proof; within()
    // fails clearly on a hang, at 10x that bound.
    const down = await within("/ready with the chain stopped", get("/ready"), 20_000);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ status: "unavailable", postgres: "ok" });
    expect((down.body.networks as Record<string, string>)[network]).toMatch(/^down: /);
    expect(await get("/health")).toEqual({ status: 200, body: { status: "ok" } });
  });
});
