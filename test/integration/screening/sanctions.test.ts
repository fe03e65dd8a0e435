/**
 * Sanctions screening (src/screening/): the operator's denylist file and a per-network
 * `isSanctioned` oracle, at /verify and at /settle before anything is claimed or signed. Real
 * Postgres, real Anvil, real contracts (contracts/test/SanctionsOracles.sol); the facilitators' RPC
 * goes through a pass-through proxy that counts the oracle's eth_calls and, in one test, drops them.
 */
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { createWalletClient, encodeAbiParameters, encodeFunctionData, getAddress, http, keccak256, pad, parseAbi, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createChainRegistry } from "../../../src/chain/registry.js";
import { checkAtStart } from "../../../src/startup-checks.js";
import { systemClock } from "../../../src/clock.js";
import { defaultLimits, type NetworkConfig } from "../../../src/config.js";
import type { ResolvedPayment } from "../../../src/exact-evm/resolve.js";
import { createMetrics } from "../../../src/metrics.js";
import { freePort } from "../../../src/sandbox/free-port.js";
import { ConfigError } from "../../../src/errors.js";
import { sanctionsOracleGasMax } from "../../../src/limits.js";
import { anvilDevPrivateKeys } from "../../../src/sandbox/anvil.js";
import { loadScreeningConfig } from "../../../src/screening/config.js";
import { createScreening, type ScreeningConfig } from "../../../src/screening/screening.js";
import { deployContract } from "../../helpers/attackers.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { startFaultyRpcProxy, type FaultyRpcProxy } from "../../helpers/faulty-rpc-proxy.js";
import { postJson } from "../../helpers/http.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { randomAddress } from "../../helpers/settlement-rows.js";
import { waitFor } from "../../helpers/wait.js";

const amountAtomic = 10_000n;
const payTo = addressOf(keys.payTo);
/** On the denylist file from the start. */
const listedPayerKey: Hex = anvilDevPrivateKeys[6]!;
const listedPayTo: Address = getAddress(randomAddress());
/** Flagged (and cleared) at the oracle by the tests. */
const flaggedPayerKey: Hex = anvilDevPrivateKeys[7]!;
/** Never listed anywhere (until the cache and reload tests list it). */
const clearPayerKey: Hex = anvilDevPrivateKeys[8]!;
const honestPayerKey: Hex = keys.payer;

const oracleAbi = parseAbi(["function setSanctioned(address account, bool value)", "function setMode(uint256 value)"]);

let chain: TestChain;
let database: TestDatabase;
let proxy: FaultyRpcProxy;
let oracle: Address;
let broken: Address;
let denylistDir: string;
let denylistPath: string;
/** Denylist + the working oracle, SANCTIONS_ORACLE_FAILURE=closed. */
let screened: TestFacilitator;
/** The broken oracle, closed and open. */
let closed: TestFacilitator;
let open: TestFacilitator;
const logLines: Array<{ level: number; msg: string; [field: string]: unknown }> = [];

function memoryLogger() {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) logLines.push(JSON.parse(line) as (typeof logLines)[number]);
      done();
    },
  });
  return pino({ level: "info" }, stream);
}

function writeDenylist(lines: string[]): void {
  // Atomically, as the README asks operators to: a temporary file, then a rename.
  const temporary = path.join(denylistDir, `denylist.${Math.random().toString(36).slice(2)}.tmp`);
  writeFileSync(temporary, `${lines.join("\n")}\n`);
  renameSync(temporary, denylistPath);
}

/** Sends one transaction from the deployer and waits for it (automine: a new block). */
async function send(to: Address, data: Hex): Promise<void> {
  const wallet = createWalletClient({ account: privateKeyToAccount(keys.facilitator3), transport: http(chain.rpcUrl) });
  const hash = await wallet.sendTransaction({ chain: null, to, data });
  expect((await chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 })).status).toBe("success");
}
const setSanctioned = (account: Address, value: boolean) => send(oracle, encodeFunctionData({ abi: oracleAbi, functionName: "setSanctioned", args: [account, value] }));
const setBrokenMode = (mode: bigint) => send(broken, encodeFunctionData({ abi: oracleAbi, functionName: "setMode", args: [mode] }));

async function body(payerKey: Hex, to: Address = payTo) {
  const payment = await signPayment({ payerKey, token: chain.token, chainId: chain.chainId, payTo: to, valueAtomic: amountAtomic });
  return v2Body(payment, v2Requirements({ token: chain.token, payTo: to, amountAtomic }));
}
type Body = Awaited<ReturnType<typeof body>>;

const verify = async (facilitator: TestFacilitator, payload: Body) => postJson(facilitator.app, "/verify", payload);
const settle = async (facilitator: TestFacilitator, payload: Body) => postJson(facilitator.app, "/settle", payload);

async function rowsFor(payload: Body): Promise<number> {
  const nonce = payload.paymentPayload.payload.authorization.nonce.toLowerCase();
  return withPgClient(database.url, async (client) => (await client.query("select count(*)::int as n from settlements where nonce = $1", [nonce])).rows[0].n as number);
}

/** The oracle's eth_calls the proxy saw since the last reset: [callee, gas, block] each. */
function oracleCalls(address: Address = oracle): Array<{ gas: string; block: string }> {
  return proxy
    .lastParams("eth_call")
    .filter((params) => (params[0] as { to?: string }).to?.toLowerCase() === address.toLowerCase())
    .map((params) => ({ gas: (params[0] as { gas: string }).gas, block: params[1] as string }));
}

async function screenings(facilitator: TestFacilitator, labels: { source: string; outcome: string }): Promise<number> {
  const metric = await facilitator.services.metrics.registry.getSingleMetric("x402_sanctions_screenings_total")!.get();
  return metric.values.filter((value) => value.labels.source === labels.source && value.labels.outcome === labels.outcome).reduce((sum, value) => sum + value.value, 0);
}

/** A refusal: 200, nothing claimed, nothing sent, the payer's balance untouched. */
async function expectRefusedAtVerifyAndSettle(facilitator: TestFacilitator, payload: Body, reason: string, message: RegExp) {
  const payer = payload.paymentPayload.payload.authorization.from;
  const balanceBefore = await chain.balanceOf(payer);
  const sendsBefore = proxy.transactionsReceived();
  const verified = await verify(facilitator, payload);
  expect(verified).toEqual({ status: 200, body: { isValid: false, invalidReason: reason, invalidMessage: expect.stringMatching(message), payer } });
  const settled = await settle(facilitator, payload);
  expect(settled).toEqual({
    status: 200,
    body: { success: false, errorReason: reason, errorMessage: expect.stringMatching(message), payer, transaction: "", network: "eip155:84532" },
  });
  expect(await rowsFor(payload)).toBe(0);
  expect(proxy.transactionsReceived()).toBe(sendsBefore);
  expect(await chain.balanceOf(payer)).toBe(balanceBefore);
}

beforeAll(async () => {
  chain = await startTestChain();
  for (const key of [honestPayerKey, listedPayerKey, flaggedPayerKey, clearPayerKey]) await chain.mint(addressOf(key), 1_000_000n);
  oracle = await deployContract(chain, "TestSanctionsOracle");
  broken = await deployContract(chain, "BrokenSanctionsOracle");
  proxy = await startFaultyRpcProxy({ upstreamUrl: chain.rpcUrl });
  database = await createTestDatabase("sanctions");
  denylistDir = mkdtempSync(path.join(os.tmpdir(), "x402-denylist-"));
  denylistPath = path.join(denylistDir, "denylist.txt");
  writeDenylist(["# sanctioned addresses, one a line", `${addressOf(listedPayerKey)}   # a payer`, "", listedPayTo.toLowerCase()]);
  const screening: ScreeningConfig = loadScreeningConfig({ SANCTIONS_DENYLIST_FILE: denylistPath });
  const common = { databaseUrl: database.url, rpcUrls: [proxy.url], token: chain.token };
  screened = await startTestFacilitator({ ...common, screening, sanctionsOracle: oracle, limits: { sanctionsDenylistReloadMs: 100 }, log: memoryLogger() });
  closed = await startTestFacilitator({ ...common, screening: { oracleFailure: "closed" }, sanctionsOracle: broken });
  open = await startTestFacilitator({ ...common, screening: { oracleFailure: "open" }, sanctionsOracle: broken });
});

afterAll(async () => {
  await screened?.close();
  await closed?.close();
  await open?.close();
  await proxy?.stop();
  await database?.drop();
  await chain?.stop();
});

beforeEach(() => {
  proxy.set("pass");
  proxy.resetCounts();
});

describe("the denylist file (SANCTIONS_DENYLIST_FILE)", () => {
  it("refuses a listed payer at verify and at settle: 200 payer_sanctioned, nothing claimed, no transaction", async () => {
    await expectRefusedAtVerifyAndSettle(screened, await body(listedPayerKey), "payer_sanctioned", /^payer 0x[0-9a-fA-F]{40} is on the operator's sanctions denylist/);
    expect(await screenings(screened, { source: "denylist", outcome: "payer_sanctioned" })).toBe(2);
    // The denylist answered: the oracle was not asked.
    expect(oracleCalls()).toEqual([]);
  });

  it("refuses a listed payTo (listed lowercase, paid to in checksum case): pay_to_sanctioned", async () => {
    await expectRefusedAtVerifyAndSettle(screened, await body(honestPayerKey, listedPayTo), "pay_to_sanctioned", /^payTo 0x[0-9a-fA-F]{40} is on the operator's sanctions denylist/);
  });

  it("lets everyone else through: verify valid, settle confirmed", async () => {
    const payload = await body(honestPayerKey);
    expect((await verify(screened, payload)).body).toEqual({ isValid: true, payer: addressOf(honestPayerKey) });
    expect((await settle(screened, payload)).body).toMatchObject({ success: true });
  });
});

describe("the sanctions oracle (isSanctioned)", () => {
  it("refuses a payer the oracle flags, and settles the same authorization once the oracle clears it", async () => {
    const flagged = addressOf(flaggedPayerKey);
    await setSanctioned(flagged, true);
    const payload = await body(flaggedPayerKey);
    await expectRefusedAtVerifyAndSettle(screened, payload, "payer_sanctioned", new RegExp(`^payer ${flagged} is flagged by the sanctions oracle ${oracle} on eip155:84532`));
    expect(await screenings(screened, { source: "oracle", outcome: "payer_sanctioned" })).toBe(2);

    await setSanctioned(flagged, false);
    expect((await verify(screened, payload)).body).toEqual({ isValid: true, payer: flagged });
    expect((await settle(screened, payload)).body).toMatchObject({ success: true });
  });

  it("refuses a payTo the oracle flags", async () => {
    const flaggedPayTo = getAddress(randomAddress());
    await setSanctioned(flaggedPayTo, true);
    await expectRefusedAtVerifyAndSettle(screened, await body(honestPayerKey, flaggedPayTo), "pay_to_sanctioned", /is flagged by the sanctions oracle/);
  });

  it("asks once per address per head block: the answer is reused while the head is the same block, asked again after a new one", async () => {
    // No block may come but the one this test mines (a transaction of an earlier test could otherwise
    // be mined in between under load): automine off for the test, restored after.
    await chain.testClient.setAutomine(false);
    try {
      await headBlockTest();
    } finally {
      await chain.testClient.setAutomine(true);
      await chain.testClient.mine({ blocks: 1 });
    }
  });

  async function headBlockTest() {
    const payer = addressOf(clearPayerKey);
    const head = await chain.publicClient.getBlockNumber();
    expect((await verify(screened, await body(clearPayerKey))).body).toMatchObject({ isValid: true });
    const first = oracleCalls();
    expect(first).toHaveLength(2); // payer and payTo
    // Each call is at the head block by number (the answer is a fact about that block), gas-capped.
    for (const call of first) expect(call).toEqual({ gas: `0x${sanctionsOracleGasMax.toString(16)}`, block: `0x${head.toString(16)}` });

    expect((await verify(screened, await body(clearPayerKey))).body).toMatchObject({ isValid: true });
    expect(oracleCalls()).toHaveLength(2);

    // Flip the payer's entry in the oracle's storage (slot 0 mapping) without mining: same head block.
    const slot = keccak256(encodeAbiParameters([{ type: "address" }, { type: "uint256" }], [payer, 0n]));
    await chain.testClient.setStorageAt({ address: oracle, index: slot, value: pad("0x01") });
    expect(await chain.publicClient.getBlockNumber()).toBe(head);
    expect((await verify(screened, await body(clearPayerKey))).body).toMatchObject({ isValid: true });
    expect(oracleCalls()).toHaveLength(2);

    await chain.testClient.mine({ blocks: 1 });
    expect((await verify(screened, await body(clearPayerKey))).body).toMatchObject({ isValid: false, invalidReason: "payer_sanctioned" });
    const afterNewBlock = oracleCalls();
    expect(afterNewBlock).toHaveLength(4);
    expect(afterNewBlock.slice(2).map((call) => call.block)).toEqual([`0x${(head + 1n).toString(16)}`, `0x${(head + 1n).toString(16)}`]);

    const lookups = (await screened.services.metrics.registry.getSingleMetric("x402_sanctions_oracle_lookups_total")!.get()).values;
    expect(lookups.find((value) => value.labels.result === "cached")?.value).toBeGreaterThanOrEqual(4);
    await chain.testClient.setStorageAt({ address: oracle, index: slot, value: pad("0x00") });
  }
});

describe("an oracle that cannot answer: never a 5xx", () => {
  it.each([
    ["reverts", 0n],
    ["burns all the gas it is given (the eth_call carries the gas cap)", 1n],
    ["answers something that is not a bool", 2n],
  ])("%s: closed refuses with sanctions_screening_unavailable (nothing claimed or sent), open allows", async (_what, mode) => {
    await setBrokenMode(mode);
    proxy.resetCounts();
    await expectRefusedAtVerifyAndSettle(closed, await body(honestPayerKey), "sanctions_screening_unavailable", new RegExp(`^the sanctions oracle ${broken} on eip155:84532 could not be asked`));
    for (const call of oracleCalls(broken)) expect(BigInt(call.gas)).toBeLessThanOrEqual(sanctionsOracleGasMax);
    expect(oracleCalls(broken).length).toBeGreaterThan(0);

    const payload = await body(honestPayerKey);
    expect((await verify(open, payload)).body).toEqual({ isValid: true, payer: addressOf(honestPayerKey) });
    expect((await settle(open, payload)).body).toMatchObject({ success: true });
  });

  it("counts both answers in the metric: unavailable_refused (closed), unavailable_allowed (open)", async () => {
    expect(await screenings(closed, { source: "oracle", outcome: "unavailable_refused" })).toBeGreaterThanOrEqual(6);
    expect(await screenings(open, { source: "oracle", outcome: "unavailable_allowed" })).toBeGreaterThanOrEqual(6);
  });

  it("the RPC drops the screening's requests: /settle answers 200 sanctions_screening_unavailable (closed), nothing claimed or sent", async () => {
    // A working oracle behind an RPC that drops the head-block probes (eth_blockNumber: at /settle the
    // screening's requests travel alone, before any other chain work).
    const closedWorking = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [proxy.url], token: chain.token, screening: { oracleFailure: "closed" }, sanctionsOracle: oracle });
    try {
      proxy.set({ mode: "drop", methods: ["eth_blockNumber"] });
      const payload = await body(honestPayerKey);
      expect(await settle(closedWorking, payload)).toEqual({
        status: 200,
        body: {
          success: false,
          errorReason: "sanctions_screening_unavailable",
          errorMessage: expect.stringContaining("the head block could not be read: the RPC did not answer"),
          payer: addressOf(honestPayerKey),
          transaction: "",
          network: "eip155:84532",
        },
      });
      expect(proxy.faulted("eth_blockNumber")).toBeGreaterThan(0);
      expect(proxy.transactionsReceived()).toBe(0);
      expect(await rowsFor(payload)).toBe(0);
    } finally {
      proxy.set("pass");
      await closedWorking.close();
    }
  });

  it("an RPC nobody answers on: closed refuses, open allows (the screening itself, on a real transport)", async () => {
    const dead: NetworkConfig = { network: "eip155:84532", chainId: 84532, v1Name: null, rpcUrls: [`http://127.0.0.1:${await freePort()}`], assets: [], sanctionsOracle: oracle };
    const chains = createChainRegistry([dead], { rpcTimeoutMs: 2_000, rpcRetryCount: 0 }, { clock: systemClock });
    const payment = { network: dead, request: { authorization: { from: addressOf(honestPayerKey) }, requirements: { payTo } } } as unknown as ResolvedPayment;
    const deps = { chains, clock: systemClock, limits: defaultLimits, log: { info() {}, warn() {}, error() {} }, metrics: createMetrics() };
    const closedScreening = createScreening({ ...deps, config: { oracleFailure: "closed" } })!;
    const openScreening = createScreening({ ...deps, config: { oracleFailure: "open" } })!;
    expect(await closedScreening.screen(payment)).toEqual({ reason: "sanctions_screening_unavailable", message: expect.stringContaining("the RPC did not answer") });
    expect(await openScreening.screen(payment)).toBeUndefined();
  });
});

describe("denylist reloads", () => {
  it("picks up a changed file; a bad file is logged and the last good list stays; a fixed file is loaded again", async () => {
    const payer = addressOf(clearPayerKey);
    const denylist = screened.services.screening!.denylist!;
    expect(denylist.has(payer)).toBe(false);

    writeDenylist([addressOf(listedPayerKey), listedPayTo, payer.toLowerCase()]);
    await waitFor("the reloaded denylist", async () => denylist.has(payer), 10_000);
    await expectRefusedAtVerifyAndSettle(screened, await body(clearPayerKey), "payer_sanctioned", /denylist/);

    writeDenylist([addressOf(honestPayerKey), "0x1234 # not an address"]);
    await waitFor("the reload error", async () => logLines.some((line) => line.msg.startsWith("SANCTIONS_DENYLIST_FILE could not be reloaded")), 10_000);
    const error = logLines.find((line) => line.msg.startsWith("SANCTIONS_DENYLIST_FILE could not be reloaded"))!;
    expect(error).toMatchObject({ level: 50, path: denylistPath, error: 'line 2: "0x1234" is not an address', entriesKept: 3 });
    // The last good list is in force: the payer stays refused, the honest payer (only on the bad file) is not.
    expect((await verify(screened, await body(clearPayerKey))).body).toMatchObject({ invalidReason: "payer_sanctioned" });
    expect((await verify(screened, await body(honestPayerKey))).body).toEqual({ isValid: true, payer: addressOf(honestPayerKey) });
    // Logged once, not on every check.
    await denylist.check();
    expect(logLines.filter((line) => line.msg.startsWith("SANCTIONS_DENYLIST_FILE could not be reloaded"))).toHaveLength(1);

    writeDenylist([addressOf(listedPayerKey), listedPayTo]);
    await waitFor("the fixed denylist", async () => !denylist.has(payer), 10_000);
    expect((await verify(screened, await body(clearPayerKey))).body).toEqual({ isValid: true, payer });
    expect(logLines.filter((line) => line.msg === "sanctions denylist reloaded").map((line) => line.entries)).toEqual([3, 2]);
  });

  it("a bad file at start is a configuration error naming the variable", () => {
    const bad = path.join(denylistDir, "bad.txt");
    writeFileSync(bad, `${addressOf(listedPayerKey)}\nnope\n`);
    expect(() => loadScreeningConfig({ SANCTIONS_DENYLIST_FILE: bad })).toThrow(new ConfigError(`SANCTIONS_DENYLIST_FILE (${bad}): line 2: "nope" is not an address`));
    expect(() => loadScreeningConfig({ SANCTIONS_DENYLIST_FILE: path.join(denylistDir, "missing.txt") })).toThrow(/^SANCTIONS_DENYLIST_FILE \(.*missing\.txt\): cannot be read: no such file$/);
  });
});

describe("start-up check of a configured oracle", () => {
  const network = (sanctionsOracle: Address): NetworkConfig => ({
    network: "eip155:84532",
    chainId: 84532,
    v1Name: "base-sepolia",
    rpcUrls: [chain.rpcUrl],
    assets: [{ address: chain.token, name: "USDC", version: "2", decimals: 6 }],
    sanctionsOracle,
    sanctionsOracleFrom: "SANCTIONS_ORACLE_84532",
  });

  it("passes an oracle that answers isSanctioned", async () => {
    await expect(checkAtStart([network(oracle)], 5_000)).resolves.toMatchObject({ warnings: [] });
  });

  it("stops the start for an address without code, or a contract that does not answer with a bool", async () => {
    const nobody = getAddress(randomAddress());
    await expect(checkAtStart([network(nobody)], 5_000)).rejects.toThrow(new ConfigError(`SANCTIONS_ORACLE_84532 ${nobody}: no contract at this address on chain 84532`));
    await setBrokenMode(0n);
    await expect(checkAtStart([network(broken)], 5_000)).rejects.toThrow(/^SANCTIONS_ORACLE_84532 0x[0-9a-fA-F]{40}: does not answer isSanctioned\(address\) with a bool on chain 84532/);
  });
});
