/**
 * An RPC URL's API key never leaves the process (issue 11 item 10). Providers put the key in the
 * URL (Alchemy /v2/KEY, QuickNode /KEY/, ?apikey=KEY, user:KEY@host) and viem copies the URL into
 * its errors (`URL: …` in message and metaMessages, `.url`), which reach logs, HTTP answers and
 * stored settlement rows wherever an error is passed on as is.
 *
 * A real facilitator (real Postgres, real Anvil, the production pino logger writing into a stream
 * the test reads) is given two secret-bearing URLs: a fault proxy in front of Anvil, then a closed
 * port. The proxy fails every way it can (timeouts, dropped connections, 503, 429, one JSON-RPC
 * method at a time) while /verify, /settle, /ready and the operator routes are called and the
 * watcher runs. Then the secret must appear in no log line, no answer and no settlement row.
 */
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../../src/logger.js";
import { freePort } from "../../../src/sandbox/free-port.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { startFaultyRpcProxy, type FaultMode, type FaultRule, type FaultyRpcProxy } from "../../helpers/faulty-rpc-proxy.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { paymentBody } from "../../helpers/payments.js";

const secret = "SECRETKEY123";
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

/** Every JSON-RPC method a verify or a settle sends, failed one at a time. */
const methodsFaulted = ["eth_call", "eth_estimateGas", "eth_getTransactionCount", "eth_sendRawTransactionSync", "eth_sendRawTransaction", "eth_getTransactionReceipt", "eth_getBalance"];
const faultsOfEveryCall: FaultMode[] = ["blackhole", "drop", "status503", "status429"];

let chain: TestChain;
let database: TestDatabase;
let proxy: FaultyRpcProxy;
let facilitator: TestFacilitator;
let closing: Promise<void> | undefined;
const closeFacilitator = () => (closing ??= facilitator?.close());
let closedPort: number;
const logLines: string[] = [];
const answers: Array<{ route: string; fault: string; status: number; body: string }> = [];

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(payer, 100_000_000n);
  database = await createTestDatabase("rpc_secret_redaction");
  proxy = await startFaultyRpcProxy({ upstreamUrl: chain.rpcUrl });
  closedPort = await freePort();
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  facilitator = await startTestFacilitator({
    databaseUrl: database.url,
    // The proxy serves whatever path it is asked for, so the secret path reaches Anvil.
    rpcUrls: [`${proxy.url}/v2/${secret}?apikey=${secret}`, `http://user:${secret}@127.0.0.1:${closedPort}/${secret}/`],
    token: chain.token,
    limits: { rpcTimeoutMs: 500, rpcRetryCount: 0, settleBudgetMs: 3_000, duplicateWaitMs: 3_000, reconcileIntervalMs: 200 },
    startWatcher: true,
    log: createLogger("trace", destination),
  });
});

afterAll(async () => {
  await closeFacilitator();
  await proxy?.stop();
  await database?.drop();
  await chain?.stop();
});

const newBody = async () =>
  paymentBody(chain, { payerKey: keys.payer, payTo, amountAtomic });

/** Where the secret sits in a long text, for a readable failure. */
const around = (text: string) => text.slice(Math.max(0, text.indexOf(secret) - 200), text.indexOf(secret) + 100);

async function call(method: "GET" | "POST", url: string, fault: string, body?: object) {
  const response = await facilitator.app.inject({ method, url, ...(body ? { payload: body } : {}) });
  answers.push({ route: `${method} ${url}`, fault, status: response.statusCode, body: response.body });
  return response;
}

async function payAndCheck(fault: string) {
  const body = await newBody();
  await call("POST", "/verify", fault, body);
  await call("POST", "/settle", fault, body);
  await call("GET", "/ready", fault);
}

describe("an RPC URL carrying an API key, while its RPC fails", () => {
  it("serves with the secret URL while the RPC is healthy", async () => {
    proxy.set("pass");
    const response = await call("POST", "/verify", "pass", await newBody());
    expect(response.json()).toMatchObject({ isValid: true });
  });

  it.each(faultsOfEveryCall)("answers /verify with a 503 that carries no URL when every call meets %s", async (mode) => {
    proxy.set(mode);
    await payAndCheck(mode);
    const verify = answers.filter((answer) => answer.fault === mode && answer.route === "POST /verify");
    expect(verify[0]!.status).toBe(503);
    expect(verify[0]!.body).not.toMatch(/https?:\/\//);
  });

  it.each(methodsFaulted)("answers /verify and /settle without the secret when only %s fails", async (method) => {
    const rule: FaultRule = { mode: "drop", methods: [method] };
    proxy.set(rule);
    await payAndCheck(`drop ${method}`);
  });

  it("lets the watcher run over the unfinished rows with the RPC back, then serves the operator routes", async () => {
    proxy.set("pass");
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    for (const url of ["/settlements?limit=100", "/metrics", "/ready", "/supported"]) await call("GET", url, "pass");
  });

  it("wrote the secret nowhere: not in a log line, an HTTP answer or a settlement row", async () => {
    // Closing flushes what the app and the watcher still had to log.
    await closeFacilitator();
    const rows = await withPgClient(database.url, async (client) => (await client.query("select * from settlements")).rows);
    expect(rows.length).toBeGreaterThan(0);
    expect(answers.filter((answer) => answer.status === 503).length).toBeGreaterThanOrEqual(faultsOfEveryCall.length);

    const leaks = [
      ...logLines.filter((line) => line.includes(secret)).map((line) => `log: ${around(line)}`),
      ...answers.filter((answer) => answer.body.includes(secret)).map((answer) => `${answer.route} (${answer.fault}) ${answer.status}: ${around(answer.body)}`),
      ...rows.map((row) => JSON.stringify(row)).filter((row) => row.includes(secret)).map((row) => `row: ${around(row)}`),
    ];
    expect(leaks).toEqual([]);

    // Not silence: the RPC failures were logged at error level, with the host an operator needs
    // to tell URLs apart (a fallback transport reports its last URL: the closed port).
    const rpcFailures = logLines.filter((line) => JSON.parse(line).level >= 50 && line.includes(`URL: http://127.0.0.1:${closedPort}/…`));
    expect(rpcFailures.length).toBeGreaterThan(0);
  });
});
