/**
 * `npm run bench`: this facilitator side by side with the reference one (the official x402 v2 SDK,
 * bench/reference-facilitator.ts), on the same Anvil, with the same kind of pre-signed payments,
 * each facilitator in its own process and the load generator in a third. See bench/README.md.
 *
 *   npm run bench                 full run (~7 min on 2 cores), writes bench/results.json
 *   npm run bench -- --quick      short smoke run (~4 min), writes bench/results.quick.json
 *   npm run bench -- --profile    ours only, under --cpu-prof: where verify and settle spend CPU
 *
 * Bounds: the whole run is cut at RUN_LIMIT_MS; every start, job and stop has its own limit.
 * Everything started is stopped at the end, on error and on SIGINT/SIGTERM.
 */
import { spawnSync } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Address, Hash, Hex } from "viem";
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../src/sandbox/postgres.js";
import { buildDist } from "../scripts/build-dist.js";
import { createDatabase } from "../src/store/database-admin.js";
import { limitSpecs } from "../src/limits.js";
import { startBlockClock, type BlockClock } from "./block-clock.js";
import { accountOf, addressFor, approvePermit2ForAll, fundEth, keyFor, mintToAll, signPayments, signPermit2Payments, startBenchChain, type BenchChain } from "./chain.js";
import { formatProfileSummary, summariseCpuProfile } from "./cpu-profile.js";
import { startLoadGenerator, type LoadGenerator } from "./load-client.js";
import type { SettleRun } from "./load-protocol.js";
import { startOurFacilitator, startReferenceFacilitator, type ChildService } from "./processes.js";
import { cpuMs, cpuMsSpent, peakRssMb, resetPeakRss, rssMb, treeCpuSnapshot } from "./proc-stats.js";
import { countsSince, startRpcProxyProcess, type ProxyCounts, type RpcProxy, type RpcProxyProcess } from "./rpc-proxy.js";
import {
  computeRatios,
  formatResults,
  machineInfo,
  percentile,
  round2,
  type BenchResults,
  type BurstBlocks,
  type Facilitator,
  type RecoveryOptions,
  type PacedSettleResult,
  type Resources,
  type RpcUsage,
  type SettleResult,
  type VerifyResult,
} from "./report.js";

// ------------------------------------------------------------------------------------ settings

const argv = new Set(process.argv.slice(2));
const quick = argv.has("--quick");
const profileMode = argv.has("--profile");
for (const arg of argv) if (!["--quick", "--profile"].includes(arg)) throw new Error(`unknown argument ${arg} (use --quick or --profile)`);

const settings = {
  verifyConcurrency: quick ? [1, 16] : [1, 16, 64],
  verifyDurationSeconds: quick ? 3 : 6,
  verifyWarmupSeconds: 2,
  verifyPayments: 64,
  /** Cold verify: every request a payment never sent before, at this concurrency; this many requests per facilitator. */
  coldVerifyConcurrency: 64,
  coldVerifyRequests: quick ? 1_000 : 3_000,
  /** The variant "ours-single" is ours started with this SETTLE_BATCH_MAX: no batching (settle phases only). */
  settleBatchMax: 1,
  /** Automine bursts (ours, ours-single, reference, reference-nm): what a settle costs with no block to wait for. */
  settleBursts: quick ? [50] : [100],
  blockTimeBurst: quick ? 20 : 100,
  warmupSettlements: 3,
  /**
   * Payers the payments are spread over, round-robin. Every set must give each payer fewer than
   * IN_FLIGHT_PER_PAYER_MAX (32 by default) payments: 1,000 over 64 payers is 16 each, half of it,
   * so a payer's previous burst still finishing cannot push it over (checked in signAll).
   */
  payers: 64,
  /**
   * The headline settle rows (issue 15): a fresh Anvil with 2 s blocks (Base's), bursts of distinct
   * payments sent at once to one facilitator with one signer key. Target: every payment confirmed
   * within `targetBlocks` blocks of the last arrival, and for 300 a wall time (first send → last
   * confirmation) of at most 6 s.
   */
  baseLike: {
    blockTimeSeconds: 2,
    runs: (quick
      ? [
          { who: "ours", payments: 300 },
          { who: "reference", payments: 300 },
        ]
      : [
          { who: "ours", payments: 300 },
          { who: "reference", payments: 300 },
          { who: "reference-nm", payments: 300 },
          { who: "ours", payments: 1_000 },
        ]) satisfies { who: Facilitator; payments: number }[] as { who: Facilitator; payments: number }[],
    targetBlocks: 3,
    targetWallMsByPayments: { 300: 6_000 } as Record<number, number>,
  },
  amountAtomic: 1_000n,
  /**
   * A settle request is given up (counted "timeout") after this. Above ours's own bound (it answers
   * by SETTLE_BUDGET_MS, 20 s, pending if need be, and REQUEST_TIMEOUT_MS, 30 s, cuts any request),
   * so ours always answers itself; the reference has no bound of its own (viem's
   * waitForTransactionReceipt on a transaction whose nonce another one took can wait for minutes),
   * and each such wait would otherwise hold a burst, and the run's time limit, for longer.
   */
  settleRequestTimeoutMs: 35_000,
  /**
   * One payment at a time on Base-like blocks (2 s; 0.2 s standing in for Base's flashblocks): ours
   * (sync sends: Anvil serves eth_sendRawTransactionSync), ours with SEND_MODE=async, and the
   * reference, side by side, each on its own key.
   */
  paced: quick
    ? [
        { blockTimeSeconds: 2, payments: 6 },
        { blockTimeSeconds: 0.2, payments: 15 },
      ]
    : [
        { blockTimeSeconds: 2, payments: 20 },
        { blockTimeSeconds: 0.2, payments: 30 },
      ],
  pacedWarmupSettlements: 2,
  /** The same, one at a time on automine (ours and the reference, in the automine phase): the facilitator's own latency, no block to wait for. */
  pacedAutominePayments: quick ? 10 : 20,
  /**
   * The same again for the Permit2 payment kinds (issue 16), ours and the reference side by side:
   * `exact` over Permit2, and `upto` signed for `uptoCapAtomic` and charged `amountAtomic` (what
   * a metered proxy does: the cap is the estimate's maximum, the charge what was used).
   */
  permit2Payments: quick ? 10 : 20,
  uptoCapAtomic: 2_500n,
  profileVerifySeconds: 10,
  profileColdVerifyRequests: 1_500,
  profileSettleBurst: 100,
};

const RUN_LIMIT_MS = 9.5 * 60_000;
const SERVICE_START_TIMEOUT_MS = 60_000;
const CLEANUP_STEP_TIMEOUT_MS = 20_000;
/** After a settle burst, how long payTo's balance may keep changing before it is read as final. */
const ONCHAIN_SETTLE_WAIT_MS = 20_000;
const repoRoot = path.resolve(import.meta.dirname, "..");
const outputFile = path.join(repoRoot, "bench", quick ? "results.quick.json" : "results.json");

const runStartedMs = Date.now();
function log(message: string): void {
  process.stderr.write(`[bench +${((Date.now() - runStartedMs) / 1000).toFixed(1).padStart(5)}s] ${message}\n`);
}

// ------------------------------------------------------------------------------------ cleanup

const cleanupSteps: { name: string; run: () => Promise<void> }[] = [];
let cleaningUp: Promise<void> | undefined;

function onCleanup(name: string, run: () => Promise<void>): void {
  cleanupSteps.push({ name, run });
}

/** Runs the registered stops in reverse order, each bounded; runs once. */
function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    while (cleanupSteps.length > 0) {
      const step = cleanupSteps.pop()!;
      const outcome = await Promise.race([
        step.run().then(
          () => "ok",
          (error: unknown) => `failed: ${(error as Error).message}`,
        ),
        sleep(CLEANUP_STEP_TIMEOUT_MS, "timed out"),
      ]);
      if (outcome !== "ok") log(`cleanup of ${step.name} ${outcome}`);
    }
  })();
  return cleaningUp;
}

function exitAfterCleanup(code: number): void {
  const force = setTimeout(() => process.exit(code), CLEANUP_STEP_TIMEOUT_MS * 2);
  force.unref();
  void cleanup().finally(() => process.exit(code));
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping everything`);
    exitAfterCleanup(130);
  });
}

// ------------------------------------------------------------------------------------ environment

interface Keys {
  payerKeys: Hex[];
  payers: Address[];
  oursSigner: Hex;
  oursSingleSigner: Hex;
  oursAsyncSigner: Hex;
  referenceSigner: Hex;
  referenceNmSigner: Hex;
}

interface Environment {
  phase: string;
  chain: BenchChain;
  /** Interval mining only: the block time, and when each block appeared. */
  blockTimeSeconds?: number;
  blockClock?: BlockClock;
  /** Each facilitator's counting RPC proxy, by service name. */
  proxies: Map<string, RpcProxy>;
  ours: ChildService;
  oursSingle?: ChildService;
  oursAsync?: ChildService;
  reference?: ChildService;
  referenceNm?: ChildService;
  stop(): Promise<void>;
}

interface EnvironmentOptions {
  phase: string;
  blockTimeSeconds?: number;
  /** The reference (and, unless told otherwise, ours-single and reference-nm). */
  reference: boolean;
  oursSingle?: boolean;
  referenceNm?: boolean;
  /** Ours with SEND_MODE=async (plain sends and receipt polling). */
  oursAsync?: boolean;
  cpuProfileDir?: string;
}

/** A fresh Anvil (funded payers and signers), a fresh database, and both facilitators on them. */
async function startEnvironment(
  options: EnvironmentOptions,
  context: { postgres: EmbeddedPostgresHandle; workDir: string; keys: Keys; rpcProxy: RpcProxyProcess },
): Promise<Environment> {
  const { keys } = context;
  const started: { stop(): Promise<void> }[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const item of started.reverse()) await item.stop();
    })());
  onCleanup(`environment ${options.phase}`, stop);

  const chain = await startBenchChain({ blockTimeSeconds: options.blockTimeSeconds });
  started.push(chain);
  log(`${options.phase}: anvil ${chain.rpcUrl} (pid ${chain.anvil.pid})${options.blockTimeSeconds ? `, --block-time ${options.blockTimeSeconds}` : ", automine"}`);
  const blockClock = options.blockTimeSeconds ? await startBlockClock(chain.rpcUrl) : undefined;
  if (blockClock) started.push(blockClock);
  await mintToAll(chain, keys.payers, 1_000_000_000n);
  await fundEth(chain.rpcUrl, [keys.oursSigner, keys.oursSingleSigner, keys.oursAsyncSigner, keys.referenceSigner, keys.referenceNmSigner].map(accountOf), "1000");
  log(`${options.phase}: ${keys.payers.length} payers funded`);

  const databaseName = `bench_${options.phase.replace(/[^a-z0-9]/g, "_")}`;
  const databaseUrl = await createDatabase(context.postgres.adminUrl, databaseName, { dropIfExists: true });
  const withOursSingle = options.oursSingle ?? options.reference;
  const withReferenceNm = options.referenceNm ?? options.reference;
  // Their own databases: each instance's watcher finishes only what its own signers sent.
  const singleDatabaseUrl = withOursSingle ? await createDatabase(context.postgres.adminUrl, `${databaseName}_single`, { dropIfExists: true }) : undefined;
  const asyncDatabaseUrl = options.oursAsync ? await createDatabase(context.postgres.adminUrl, `${databaseName}_async`, { dropIfExists: true }) : undefined;
  // Every facilitator talks to Anvil through its own counting proxy.
  const proxies = new Map<string, RpcProxy>();
  const proxyUrl = async (name: string): Promise<string> => {
    const proxy = await context.rpcProxy.open(chain.rpcUrl);
    started.push({ stop: proxy.close });
    proxies.set(name, proxy);
    return proxy.url;
  };
  const rpcUrls = {
    ours: await proxyUrl("ours"),
    oursSingle: singleDatabaseUrl ? await proxyUrl("ours-single") : "",
    oursAsync: asyncDatabaseUrl ? await proxyUrl("ours-async") : "",
    reference: options.reference ? await proxyUrl("reference") : "",
    referenceNm: withReferenceNm ? await proxyUrl("reference-nm") : "",
  };
  const [ours, oursSingle, oursAsync, reference, referenceNm] = await Promise.all([
    startOurFacilitator({
      databaseUrl,
      rpcUrl: rpcUrls.ours,
      token: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
      signerKey: keys.oursSigner,
      configPath: path.join(context.workDir, `facilitator-${options.phase}.json`),
      startTimeoutMs: SERVICE_START_TIMEOUT_MS,
      cpuProfileDir: options.cpuProfileDir,
    }),
    singleDatabaseUrl
      ? startOurFacilitator({
          name: "ours-single",
          databaseUrl: singleDatabaseUrl,
          rpcUrl: rpcUrls.oursSingle,
          token: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
          signerKey: keys.oursSingleSigner,
          configPath: path.join(context.workDir, `facilitator-${options.phase}-single.json`),
          startTimeoutMs: SERVICE_START_TIMEOUT_MS,
          extraEnv: { SETTLE_BATCH_MAX: String(settings.settleBatchMax) },
        })
      : Promise.resolve(undefined),
    asyncDatabaseUrl
      ? startOurFacilitator({
          name: "ours-async",
          databaseUrl: asyncDatabaseUrl,
          rpcUrl: rpcUrls.oursAsync,
          token: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
          signerKey: keys.oursAsyncSigner,
          configPath: path.join(context.workDir, `facilitator-${options.phase}-async.json`),
          startTimeoutMs: SERVICE_START_TIMEOUT_MS,
          extraEnv: { SEND_MODE: "async" },
        })
      : Promise.resolve(undefined),
    options.reference
      ? startReferenceFacilitator({ rpcUrl: rpcUrls.reference, signerKey: keys.referenceSigner, startTimeoutMs: SERVICE_START_TIMEOUT_MS })
      : Promise.resolve(undefined),
    withReferenceNm
      ? startReferenceFacilitator({ rpcUrl: rpcUrls.referenceNm, signerKey: keys.referenceNmSigner, startTimeoutMs: SERVICE_START_TIMEOUT_MS, nonceManager: true })
      : Promise.resolve(undefined),
  ]);
  for (const service of [ours, oursSingle, oursAsync, reference, referenceNm]) if (service) started.push(service);
  log(
    `${options.phase}: ` +
      [ours, oursSingle, oursAsync, reference, referenceNm]
        .filter((service) => service !== undefined)
        .map((service) => `${service.name} ${service.url} (pid ${service.pid})`)
        .join(", "),
  );
  for (const service of [ours, oursSingle, oursAsync, reference, referenceNm]) if (service) await expectSupported(service);
  return { phase: options.phase, chain, blockTimeSeconds: options.blockTimeSeconds, blockClock, proxies, ours, oursSingle, oursAsync, reference, referenceNm, stop };
}

async function expectSupported(service: ChildService): Promise<void> {
  const response = await fetch(`${service.url}/supported`, { signal: AbortSignal.timeout(5_000) });
  const body = (await response.json()) as { kinds?: { x402Version: number; network: string; scheme: string }[] };
  const listed = body.kinds?.some((kind) => kind.x402Version === 2 && kind.network === "eip155:84532" && kind.scheme === "exact");
  if (!listed) throw new Error(`${service.name} /supported does not list exact on eip155:84532: ${JSON.stringify(body).slice(0, 500)}`);
}

async function postJson(url: string, body: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body, signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  try {
    return { httpStatus: response.status, ...(JSON.parse(text) as Record<string, unknown>) };
  } catch {
    return { httpStatus: response.status, text: text.slice(0, 500) };
  }
}

/** One verify and a few sequential settles: the code paths are loaded and JIT-warm, and they work. */
async function warmUp(service: ChildService, verifyBody: string, settleBodies: string[]): Promise<void> {
  const verdict = await postJson(`${service.url}/verify`, verifyBody, 10_000);
  if (verdict.isValid !== true) throw new Error(`${service.name}: a valid payment did not verify: ${JSON.stringify(verdict)}\n${service.output()}`);
  for (const body of settleBodies) {
    const answer = await postJson(`${service.url}/settle`, body, settings.settleRequestTimeoutMs);
    if (answer.success !== true) throw new Error(`${service.name}: a warm-up settlement failed: ${JSON.stringify(answer)}\n${service.output()}`);
  }
}

// ------------------------------------------------------------------------------------ measurements

function postmasterPid(postgres: EmbeddedPostgresHandle): Promise<number> {
  return readFile(path.join(postgres.dataDir, "postmaster.pid"), "utf8").then((text) => Number.parseInt(text.split("\n")[0] ?? "", 10));
}

function proxyOf(environment: Environment, service: ChildService): RpcProxy {
  const proxy = environment.proxies.get(service.name);
  if (!proxy) throw new Error(`no RPC proxy for ${service.name}`);
  return proxy;
}

/** What a facilitator asked of the node since `before` (a reading of its proxy), per unit of work. */
async function rpcUsageSince(proxy: RpcProxy, before: ProxyCounts, unit: RpcUsage["unit"], units: number): Promise<RpcUsage> {
  const spent = countsSince(before, await proxy.counts());
  const per = (count: number) => (units > 0 ? Math.round((count / units) * 1000) / 1000 : Number.NaN);
  return {
    unit,
    units,
    calls: spent.calls,
    httpRequests: spent.httpRequests,
    callsPerUnit: per(spent.calls),
    httpRequestsPerUnit: per(spent.httpRequests),
    byMethodPerUnit: Object.entries(spent.byMethod)
      .sort((a, b) => b[1] - a[1])
      .map(([method, calls]) => ({ method, calls, perUnit: per(calls) })),
    upstreamErrors: spent.upstreamErrors,
  };
}

/**
 * Peak RSS per measurement: VmHWM is started again before each one (resetPeakRss) and read after
 * it; the highest reading of a process is kept for its phase's PROCESSES row.
 */
const phasePeakRssMb = new Map<number, number>();
let rssResetRefused = false;
function notePeakRss(pid: number): number {
  const peak = peakRssMb(pid);
  if (Number.isFinite(peak)) phasePeakRssMb.set(pid, Math.max(phasePeakRssMb.get(pid) ?? 0, peak));
  return peak;
}
function startRssWindow(pid: number): void {
  notePeakRss(pid);
  if (!resetPeakRss(pid) && !rssResetRefused) {
    rssResetRefused = true;
    log("cannot reset VmHWM (/proc/<pid>/clear_refs refused): per-measurement peak RSS is the process's peak so far");
  }
}
const endRssWindow = (pid: number): number => round2(notePeakRss(pid));

/** rotated: `bodies` sent in turn for `durationSeconds`; cold: `requestCount` requests, each body at most once. */
type VerifyLoad = { payloads: "rotated"; durationSeconds: number } | { payloads: "cold"; requestCount: number };

/** A cold run is cut at this many seconds per thousand requests (ample: the reference does ~150 req/s). */
const COLD_VERIFY_TIMEOUT_S_PER_1000 = 30;

async function measureVerify(
  load: LoadGenerator,
  service: ChildService,
  facilitator: Facilitator,
  environment: Environment,
  postgresPid: number,
  bodies: string[],
  concurrency: number,
  verifyLoad: VerifyLoad,
): Promise<VerifyResult> {
  const proxy = proxyOf(environment, service);
  const rpcBefore = await proxy.counts();
  startRssWindow(service.pid);
  const before = { service: cpuMs(service.pid), postgres: treeCpuSnapshot(postgresPid), anvil: cpuMs(environment.chain.anvil.pid) };
  const jobTimeoutMs =
    verifyLoad.payloads === "rotated" ? (verifyLoad.durationSeconds + 30) * 1000 : (30 + (verifyLoad.requestCount / 1000) * COLD_VERIFY_TIMEOUT_S_PER_1000) * 1000;
  const run = await load.verify(
    {
      url: service.url,
      bodies,
      connections: concurrency,
      durationSeconds: verifyLoad.payloads === "rotated" ? verifyLoad.durationSeconds : 0,
      requestCount: verifyLoad.payloads === "cold" ? verifyLoad.requestCount : undefined,
      timeoutSeconds: 10,
    },
    jobTimeoutMs,
  );
  const after = { service: cpuMs(service.pid), postgres: treeCpuSnapshot(postgresPid), anvil: cpuMs(environment.chain.anvil.pid) };
  const rss = endRssWindow(service.pid);
  const rpc = await rpcUsageSince(proxy, rpcBefore, "verify", run.requests);
  const perRequest = (ms: number) => round2((ms / Math.max(1, run.requests)) * 100) / 100;
  const result: VerifyResult = {
    facilitator,
    payloads: verifyLoad.payloads,
    distinctPayments: verifyLoad.payloads === "rotated" ? bodies.length : run.requests,
    concurrency,
    durationSeconds: run.durationSeconds,
    requests: run.requests,
    requestsPerSecond: round2(run.requestsPerSecond),
    latencyMs: run.latencyMs,
    validAnswers: run.validAnswers,
    otherAnswers: run.otherAnswers,
    errors: run.errors,
    timeouts: run.timeouts,
    cpuMsPerVerify: perRequest(after.service - before.service),
    postgresCpuMsPerVerify: perRequest(cpuMsSpent(before.postgres, after.postgres)),
    anvilCpuMsPerVerify: perRequest(after.anvil - before.anvil),
    ...(verifyLoad.payloads === "cold" ? { bodiesReused: run.bodiesReused } : {}),
    rpc,
    peakRssMb: rss,
  };
  log(
    `verify ${facilitator} ${verifyLoad.payloads} c=${concurrency}: ${result.requestsPerSecond} req/s, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, ` +
      `${result.validAnswers} valid / ${result.otherAnswers} other / ${result.errors} errors, ${result.cpuMsPerVerify} CPU ms/req, ` +
      `${rpc.callsPerUnit} RPC calls/req, peak RSS ${rss} MiB`,
  );
  return result;
}

/**
 * Polls payTo's balance until it reaches `expected` or has not changed for `quietMs` (bounded by
 * ONCHAIN_SETTLE_WAIT_MS), and returns it: payments answered pending, or sent late, land meanwhile.
 */
async function settledBalance(chain: BenchChain, payTo: Address, expected: bigint, quietMs: number): Promise<bigint> {
  const deadline = Date.now() + ONCHAIN_SETTLE_WAIT_MS;
  let last = await chain.balanceOf(payTo);
  let lastChangeMs = Date.now();
  while (last < expected && Date.now() < deadline && Date.now() - lastChangeMs < quietMs) {
    await sleep(250);
    const now = await chain.balanceOf(payTo);
    if (now !== last) {
      last = now;
      lastChangeMs = Date.now();
    }
  }
  return last;
}

function summariseSettle(run: SettleRun) {
  const failures: Record<string, number> = {};
  for (const answer of run.answers) if (!answer.success) failures[answer.reason] = (failures[answer.reason] ?? 0) + 1;
  const successHashes = run.answers.filter((answer) => answer.success).map((answer) => answer.transaction as Hash);
  const latencies = run.answers.map((answer) => answer.ms).sort((a, b) => a - b);
  const successLatencies = run.answers.filter((answer) => answer.success).map((answer) => answer.ms).sort((a, b) => a - b);
  return { failures, successHashes, latencies, successLatencies };
}

/**
 * Interval-mined bursts: where the payments landed. The block of each payment is its Transfer to
 * payTo (read from the chain); the head at the first send and at the last arrival (the last request
 * written out), and when the last payment's block appeared, come from the block clock.
 */
async function burstBlocks(environment: Environment, run: SettleRun, payTo: Address, blockBefore: bigint, blockAfter: bigint, successes: number): Promise<BurstBlocks | undefined> {
  const { blockClock, blockTimeSeconds, chain } = environment;
  if (!blockClock || !blockTimeSeconds) return undefined;
  const landed = await chain.transferBlocks(payTo, blockBefore, blockAfter);
  const sent = run.answers.map((answer) => answer.sentMs).filter(Number.isFinite);
  const lastArrivalMs = sent.length > 0 ? Math.max(...sent) : 0;
  const blockAtFirstSend = blockClock.headAt(run.startedAtEpochMs) ?? blockBefore;
  const blockAtLastArrival = blockClock.headAt(run.startedAtEpochMs + lastArrivalMs) ?? blockAtFirstSend;
  const lastConfirmBlock = landed.reduce((max, block) => (block > max ? block : max), 0n);
  const seenMs = landed.length > 0 ? blockClock.seenAt(lastConfirmBlock) : undefined;
  const confirmedByBlockOffset: Record<string, number> = {};
  for (const block of landed) {
    const offset = Number(block - blockAtLastArrival);
    const key = offset > 0 ? `+${offset}` : String(offset);
    confirmedByBlockOffset[key] = (confirmedByBlockOffset[key] ?? 0) + 1;
  }
  const payments = run.answers.length;
  const blocksAfterLastArrival = landed.length > 0 ? Number(lastConfirmBlock - blockAtLastArrival) : Number.NaN;
  const wallToLastConfirmMs = seenMs === undefined ? Number.NaN : Math.round(seenMs - run.startedAtEpochMs);
  const targetWallMs = blockTimeSeconds === settings.baseLike.blockTimeSeconds ? settings.baseLike.targetWallMsByPayments[payments] : undefined;
  return {
    blockTimeMs: blockTimeSeconds * 1000,
    blockAtFirstSend: Number(blockAtFirstSend),
    blockAtLastArrival: Number(blockAtLastArrival),
    lastArrivalMs: Math.round(lastArrivalMs),
    confirmed: landed.length,
    lastConfirmBlock: Number(lastConfirmBlock),
    blocksAfterLastArrival,
    confirmedByBlockOffset,
    wallToLastConfirmMs,
    targetBlocks: settings.baseLike.targetBlocks,
    ...(targetWallMs === undefined ? {} : { targetWallMs }),
    targetMet:
      successes === payments &&
      landed.length === payments &&
      blocksAfterLastArrival <= settings.baseLike.targetBlocks &&
      (targetWallMs === undefined || wallToLastConfirmMs <= targetWallMs),
  };
}

async function measureSettle(context: Context, environment: Environment, participant: Participant, set: SettleSet, mining: SettleResult["mining"]): Promise<SettleResult> {
  const { chain } = environment;
  const { who: facilitator, service, signer } = participant;
  const { payTo, bodies } = set;
  const proxy = proxyOf(environment, service);
  const [balanceBefore, txCountBefore, blockBefore] = await Promise.all([chain.balanceOf(payTo), chain.transactionCount(signer), chain.blockNumber()]);
  const isReference = facilitator === "reference" || facilitator === "reference-nm";
  const sendErrorsBefore = isReference ? await referenceSendErrors(service) : {};
  const rpcBefore = await proxy.counts();
  startRssWindow(service.pid);
  const cpuBefore = { service: cpuMs(service.pid), postgres: treeCpuSnapshot(context.postgresPid), anvil: cpuMs(chain.anvil.pid) };
  const run = await context.load.settle({ url: service.url, bodies, timeoutMs: settings.settleRequestTimeoutMs, preconnect: true }, settings.settleRequestTimeoutMs + 60_000);
  const cpuAfter = { service: cpuMs(service.pid), postgres: treeCpuSnapshot(context.postgresPid), anvil: cpuMs(chain.anvil.pid) };
  const { failures, successHashes, latencies, successLatencies } = summariseSettle(run);
  const quietMs = environment.blockTimeSeconds ? Math.max(2_500, 2.5 * environment.blockTimeSeconds * 1000) : 1_000;
  const balanceAfter = await settledBalance(chain, payTo, balanceBefore + BigInt(bodies.length) * settings.amountAtomic, quietMs);
  // RPC calls and peak RSS up to here: a payment answered pending still costs calls until it lands.
  const rss = endRssWindow(service.pid);
  const onChainTransfers = Number((balanceAfter - balanceBefore) / settings.amountAtomic);
  const rpc = await rpcUsageSince(proxy, rpcBefore, "settled payment", onChainTransfers);
  const [txCountAfter, blockAfter] = await Promise.all([chain.transactionCount(signer), chain.blockNumber()]);
  const distinct = [...new Set(successHashes)];
  const gas = distinct.length > 0 ? await chain.gasUsed(distinct) : [];
  const signerGas = await chain.signerGas(signer, blockBefore, blockAfter);
  const successes = successHashes.length;
  const blocks = await burstBlocks(environment, run, payTo, blockBefore, blockAfter, successes);
  const perSuccess = (ms: number) => round2(ms / Math.max(1, successes));
  const latencySummary = (sorted: number[]) => ({
    p50: Math.round(percentile(sorted, 50)),
    p90: Math.round(percentile(sorted, 90)),
    p99: Math.round(percentile(sorted, 99)),
    max: Math.round(sorted.at(-1) ?? Number.NaN),
  });
  const result: SettleResult = {
    facilitator,
    mining,
    payments: bodies.length,
    payers: Math.min(settings.payers, bodies.length),
    successes,
    successRate: round2((successes / bodies.length) * 10_000) / 10_000,
    failures,
    wallMs: Math.round(run.wallMs),
    settledPerSecond: round2(successes / (run.wallMs / 1000)),
    latencyMs: latencySummary(latencies),
    successLatencyMs: latencySummary(successLatencies),
    distinctTransactions: distinct.length,
    onChainTransfers,
    signerTransactionsMined: txCountAfter - txCountBefore,
    avgGasUsed: gas.length > 0 ? Math.round(Number(gas.reduce((a, b) => a + b, 0n)) / gas.length) : Number.NaN,
    signerTransactionsInBlocks: signerGas.transactions,
    gasUsedTotal: Number(signerGas.gasUsed),
    gasPerSettlement: onChainTransfers > 0 ? Math.round(Number(signerGas.gasUsed) / onChainTransfers) : Number.NaN,
    cpuMsPerSettlement: perSuccess(cpuAfter.service - cpuBefore.service),
    postgresCpuMsPerSettlement: perSuccess(cpuMsSpent(cpuBefore.postgres, cpuAfter.postgres)),
    anvilCpuMsPerSettlement: perSuccess(cpuAfter.anvil - cpuBefore.anvil),
    ...(blocks ? { blocks } : {}),
    rpc,
    peakRssMb: rss,
  };
  if (isReference) {
    const after = await referenceSendErrors(service);
    result.sendErrors = Object.fromEntries(
      Object.entries(after)
        .map(([message, count]) => [message, count - (sendErrorsBefore[message] ?? 0)] as const)
        .filter(([, count]) => count > 0),
    );
  }
  log(
    `settle ${facilitator} ${bodies.length} (${mining}): ${successes} ok in ${(run.wallMs / 1000).toFixed(2)} s, successes p50 ${result.successLatencyMs.p50} ms, ` +
      `p99 ${result.successLatencyMs.p99} ms, ${result.onChainTransfers} on chain, ${result.signerTransactionsMined} txs, ${result.gasPerSettlement} gas/settlement, ` +
      `${rpc.callsPerUnit} RPC calls/settled, peak RSS ${rss} MiB (${run.preconnected} connections opened first, last arrival at ${Math.round(Math.max(0, ...run.answers.map((a) => a.sentMs).filter(Number.isFinite)))} ms)` +
      (blocks
        ? `; blocks: head ${blocks.blockAtFirstSend} at first send, ${blocks.blockAtLastArrival} at last arrival, last confirmed in ${blocks.lastConfirmBlock} ` +
          `(+${blocks.blocksAfterLastArrival}), ${blocks.confirmed} confirmed by ${(blocks.wallToLastConfirmMs / 1000).toFixed(2)} s`
        : "") +
      (Object.keys(failures).length > 0 ? `; failures ${JSON.stringify(failures).slice(0, 300)}` : ""),
  );
  return result;
}

async function referenceSendErrors(service: ChildService): Promise<Record<string, number>> {
  const response = await fetch(`${service.url}/bench/send-errors`, { signal: AbortSignal.timeout(5_000) });
  return (await response.json()) as Record<string, number>;
}

/** A deterministic pseudo-random sequence in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * `count` pauses spread evenly over one block interval, (i + ½)/count of it, in a shuffled order
 * (the same for every facilitator). An answer that comes at a block (a sync send's) is followed by
 * payments arriving at every phase of the block once, so their waits for the next block spread
 * evenly over the interval and their median is half an interval: few payments give a steady p50.
 * (Random pauses would too, with many more payments.)
 */
function spreadPauses(count: number, blockTimeMs: number): number[] {
  const pauses = Array.from({ length: count }, (_, index) => ((index + 0.5) / count) * blockTimeMs);
  const next = random(count * 7919 + blockTimeMs);
  for (let index = pauses.length - 1; index > 0; index--) {
    const other = Math.floor(next() * (index + 1));
    [pauses[index], pauses[other]] = [pauses[other]!, pauses[index]!];
  }
  return pauses;
}

/**
 * One payment at a time: each sent after a pause within one block interval of the previous answer
 * (spreadPauses), so arrivals fall evenly over the block's phase (answers that come at a block
 * would otherwise line every request up right after one, a whole interval from the next).
 */
async function measurePaced(
  environment: Environment,
  service: ChildService,
  facilitator: Facilitator,
  bodies: string[],
  blockTimeSeconds: number,
  kind: { payment: PacedSettleResult["payment"]; payTo: Address; chargeAtomic: bigint } | undefined = undefined,
): Promise<PacedSettleResult> {
  const blockTimeMs = blockTimeSeconds * 1000;
  const payToBefore = kind ? await environment.chain.balanceOf(kind.payTo) : 0n;
  const proxy = proxyOf(environment, service);
  const rpcBefore = await proxy.counts();
  startRssWindow(service.pid);
  const pauses = spreadPauses(bodies.length, blockTimeMs);
  const latencies: number[] = [];
  const successHashes: Hash[] = [];
  const failures: Record<string, number> = {};
  for (const [index, body] of bodies.entries()) {
    await sleep(pauses[index]!);
    const startedMs = performance.now();
    const answer: Record<string, unknown> = await postJson(`${service.url}/settle`, body, settings.settleRequestTimeoutMs).catch((error: unknown) => ({
      success: false,
      errorReason: `request failed: ${(error as Error).message}`,
    }));
    const ms = performance.now() - startedMs;
    if (answer.success === true) {
      latencies.push(ms);
      successHashes.push(answer.transaction as Hash);
    } else {
      const reason = String(answer.errorReason ?? answer.httpStatus ?? "unknown");
      failures[reason] = (failures[reason] ?? 0) + 1;
    }
  }
  const rss = endRssWindow(service.pid);
  const rpc = await rpcUsageSince(proxy, rpcBefore, "settled payment", latencies.length);
  const sorted = [...latencies].sort((a, b) => a - b);
  // One transaction per payment here (one at a time): gas per settlement is its receipt's gasUsed.
  const distinct = [...new Set(successHashes)];
  const gas = distinct.length > 0 ? await environment.chain.gasUsed(distinct) : [];
  const gasPerSettlement = distinct.length === successHashes.length && gas.length > 0 ? Math.round(Number(gas.reduce((a, b) => a + b, 0n)) / gas.length) : Number.NaN;
  // What payTo received: the charge for each success (upto: the charge, not the cap signed).
  const receivedAtomic = kind ? (await environment.chain.balanceOf(kind.payTo)) - payToBefore : undefined;
  const meanBlockWaitMs = blockTimeMs / 2;
  const p50 = Math.round(percentile(sorted, 50));
  const result: PacedSettleResult = {
    facilitator,
    payment: kind?.payment ?? "exact EIP-3009",
    mining: blockTimeSeconds === 0 ? "automine" : `block-time ${blockTimeSeconds} s`,
    blockTimeMs,
    payments: bodies.length,
    successes: latencies.length,
    failures,
    successLatencyMs: {
      p50,
      p90: Math.round(percentile(sorted, 90)),
      mean: Math.round(sorted.reduce((sum, ms) => sum + ms, 0) / Math.max(1, sorted.length)),
      max: Math.round(sorted.at(-1) ?? Number.NaN),
    },
    meanBlockWaitMs,
    p50OverMeanBlockWait: meanBlockWaitMs === 0 ? Number.NaN : round2(p50 / meanBlockWaitMs),
    gasPerSettlement,
    ...(kind && receivedAtomic !== undefined ? { receivedPerSuccessAtomic: latencies.length > 0 ? Number(receivedAtomic) / latencies.length : Number.NaN, chargeAtomic: Number(kind.chargeAtomic) } : {}),
    rpc,
    peakRssMb: rss,
  };
  log(
    `settle one at a time ${facilitator} ${result.payment} (${result.mining}): ${result.successes}/${result.payments} ok, p50 ${p50} ms, p90 ${result.successLatencyMs.p90} ms ` +
      (meanBlockWaitMs > 0 ? `(mean block wait ${meanBlockWaitMs} ms: p50 / wait ${result.p50OverMeanBlockWait})` : "(automine: no block to wait for)") +
      `, ${rpc.callsPerUnit} RPC calls/settled, ${gasPerSettlement} gas/settlement` +
      (result.receivedPerSuccessAtomic !== undefined ? `, payTo got ${result.receivedPerSuccessAtomic} per success (charge ${result.chargeAtomic})` : "") +
      (Object.keys(failures).length > 0 ? `; failures ${JSON.stringify(failures).slice(0, 300)}` : ""),
  );
  return result;
}

function resourcesOf(service: ChildService, facilitator: Facilitator, phase: string): Resources {
  notePeakRss(service.pid);
  const peak = phasePeakRssMb.get(service.pid) ?? Number.NaN;
  return { facilitator, phase, peakRssMb: round2(peak), rssAtEndMb: round2(rssMb(service.pid)), cpuMsTotal: Math.round(cpuMs(service.pid)) };
}

// ------------------------------------------------------------------------------------ payments

interface SettleSet {
  payTo: Address;
  bodies: string[];
}

/**
 * A settle set gives each payer at most half of IN_FLIGHT_PER_PAYER_MAX's default (the
 * facilitators run with it): a burst then never meets payer_busy, even while a payer's previous
 * settlements are still finishing. Verify sets are not settled and are not bound by it.
 */
const paymentsPerPayerMax = Math.floor(limitSpecs.inFlightPerPayerMax.default / 2);

/** Every payment the run will use, signed before anything is measured. */
async function signAll(keys: Keys) {
  const sign = async (label: string, count: number, settled = true): Promise<SettleSet> => {
    const perPayer = Math.ceil(count / keys.payerKeys.length);
    if (settled && perPayer > paymentsPerPayerMax) {
      throw new Error(`${label}: ${count} payments over ${keys.payerKeys.length} payers is ${perPayer} per payer, more than ${paymentsPerPayerMax} (raise settings.payers)`);
    }
    const payTo = addressFor(label);
    return { payTo, bodies: await signPayments({ payerKeys: keys.payerKeys, payTo, count, amountAtomic: settings.amountAtomic, validForSeconds: 3_600n }) };
  };
  const facilitators: Facilitator[] = profileMode ? ["ours"] : ["ours", "ours-single", "reference", "reference-nm"];
  const verify = await sign("verify", settings.verifyPayments, false);
  // Cold verify: one set, sent once to each facilitator (each sees every payment once); `connections` spare.
  const coldRequests = profileMode ? settings.profileColdVerifyRequests : settings.coldVerifyRequests;
  const coldVerify = await sign("verify/cold", coldRequests + settings.coldVerifyConcurrency, false);
  const sets = new Map<string, SettleSet>();
  for (const who of facilitators) {
    for (const phase of ["automine", "blocktime"]) sets.set(`${who}/${phase}/warmup`, await sign(`${who}/${phase}/warmup`, settings.warmupSettlements));
    for (const burst of settings.settleBursts) sets.set(`${who}/automine/${burst}`, await sign(`${who}/automine/${burst}`, burst));
    sets.set(`${who}/blocktime/${settings.blockTimeBurst}`, await sign(`${who}/blocktime/${settings.blockTimeBurst}`, settings.blockTimeBurst));
    if (profileMode && who === "ours") sets.set(`${who}/profile`, await sign(`${who}/profile`, settings.profileSettleBurst));
  }
  if (!profileMode) {
    for (const who of pacedParticipants) {
      for (const { blockTimeSeconds, payments } of settings.paced) {
        const key = `${who}/paced-${blockTimeSeconds}`;
        sets.set(`${key}/warmup`, await sign(`${key}/warmup`, settings.pacedWarmupSettlements));
        sets.set(key, await sign(key, payments));
      }
    }
    for (const who of ["ours", "reference"]) sets.set(`${who}/automine/one-at-a-time`, await sign(`${who}/automine/one-at-a-time`, settings.pacedAutominePayments));
    const facilitatorAddresses: Record<string, Address> = { ours: accountOf(keys.oursSigner), reference: accountOf(keys.referenceSigner) };
    for (const who of ["ours", "reference"]) {
      for (const scheme of ["exact", "upto"] as const) {
        const label = `${who}/automine/permit2-${scheme}`;
        const payTo = addressFor(label);
        const bodies = await signPermit2Payments({
          payerKeys: keys.payerKeys,
          payTo,
          count: settings.permit2Payments,
          scheme,
          amountAtomic: scheme === "upto" ? settings.uptoCapAtomic : settings.amountAtomic,
          chargeAtomic: settings.amountAtomic,
          facilitatorAddress: facilitatorAddresses[who],
          validForSeconds: 3_600,
        });
        sets.set(label, { payTo, bodies });
      }
    }
    for (const who of new Set(settings.baseLike.runs.map((run) => run.who))) sets.set(`${who}/base-like/warmup`, await sign(`${who}/base-like/warmup`, settings.warmupSettlements));
    for (const { who, payments } of settings.baseLike.runs) sets.set(`${who}/base-like/${payments}`, await sign(`${who}/base-like/${payments}`, payments));
  }
  const get = (key: string): SettleSet => {
    const set = sets.get(key);
    if (!set) throw new Error(`no payments signed for ${key}`);
    return set;
  };
  return {
    verify,
    coldVerify: { ...coldVerify, requestCount: coldRequests },
    get,
    count: verify.bodies.length + coldVerify.bodies.length + [...sets.values()].reduce((n, set) => n + set.bodies.length, 0),
  };
}

// ------------------------------------------------------------------------------------ phases

interface Context {
  postgres: EmbeddedPostgresHandle;
  postgresPid: number;
  workDir: string;
  keys: Keys;
  load: LoadGenerator;
  rpcProxy: RpcProxyProcess;
  payments: Awaited<ReturnType<typeof signAll>>;
}

interface Participant {
  who: Facilitator;
  service: ChildService;
  signer: Address;
}

/** Ours (defaults: batching on), ours single (SETTLE_BATCH_MAX=1, settle only), the reference, and the reference with a nonce manager (settle only). */
function participants(environment: Environment, keys: Keys): Participant[] {
  return [
    { who: "ours" as const, service: environment.ours, signer: accountOf(keys.oursSigner) },
    { who: "ours-single" as const, service: environment.oursSingle!, signer: accountOf(keys.oursSingleSigner) },
    { who: "reference" as const, service: environment.reference!, signer: accountOf(keys.referenceSigner) },
    { who: "reference-nm" as const, service: environment.referenceNm!, signer: accountOf(keys.referenceNmSigner) },
  ];
}

async function autominePhase(context: Context, results: BenchResults): Promise<void> {
  const environment = await startEnvironment({ phase: "automine", reference: true }, context);
  await approvePermit2ForAll(environment.chain, context.keys.payerKeys); // for the Permit2 rows at the end
  const all = participants(environment, context.keys);
  for (const { who, service } of all) await warmUp(service, context.payments.verify.bodies[0]!, context.payments.get(`${who}/automine/warmup`).bodies);
  // Verify is the same code in both variants of each: only ours and the reference proper are measured.
  const verifiers = all.filter((participant) => participant.who === "ours" || participant.who === "reference");
  for (const { service } of verifiers) {
    await context.load.verify(
      { url: service.url, bodies: context.payments.verify.bodies, connections: 8, durationSeconds: settings.verifyWarmupSeconds, timeoutSeconds: 10 },
      (settings.verifyWarmupSeconds + 30) * 1000,
    );
  }
  log("warm-up done");

  // Alternate which facilitator goes first, so neither always runs on a quieter machine.
  for (const [index, concurrency] of settings.verifyConcurrency.entries()) {
    const order = index % 2 === 0 ? verifiers : [...verifiers].reverse();
    for (const { who, service } of order) {
      results.verify.push(
        await measureVerify(context.load, service, who, environment, context.postgresPid, context.payments.verify.bodies, concurrency, {
          payloads: "rotated",
          durationSeconds: settings.verifyDurationSeconds,
        }),
      );
    }
  }
  // Cold: the same never-seen payments to each (neither has seen any of them); the order is the reverse of the last rotated run.
  const coldOrder = settings.verifyConcurrency.length % 2 === 0 ? verifiers : [...verifiers].reverse();
  for (const { who, service } of coldOrder) {
    const cold = context.payments.coldVerify;
    results.verify.push(
      await measureVerify(context.load, service, who, environment, context.postgresPid, cold.bodies, settings.coldVerifyConcurrency, {
        payloads: "cold",
        requestCount: cold.requestCount,
      }),
    );
  }

  for (const burst of settings.settleBursts) {
    for (const { who, service, signer } of all) {
      results.settle.push(await measureSettle(context, environment, { who, service, signer }, context.payments.get(`${who}/automine/${burst}`), "automine"));
    }
  }
  // One at a time, no block to wait for: what a settle costs the facilitator itself (ours and the reference at once).
  const alone = all.filter((participant) => participant.who === "ours" || participant.who === "reference");
  results.paced.push(...(await Promise.all(alone.map(({ who, service }) => measurePaced(environment, service, who, context.payments.get(`${who}/automine/one-at-a-time`).bodies, 0)))));
  // The Permit2 kinds, one at a time the same way: exact over Permit2, then upto (cap above the charge).
  for (const [scheme, payment] of [
    ["exact", "exact Permit2"],
    ["upto", "upto Permit2"],
  ] as const) {
    const runs = await Promise.all(
      alone.map(({ who, service }) => {
        const set = context.payments.get(`${who}/automine/permit2-${scheme}`);
        return measurePaced(environment, service, who, set.bodies, 0, { payment, payTo: set.payTo, chargeAtomic: settings.amountAtomic });
      }),
    );
    results.paced.push(...runs);
  }
  for (const { who, service } of all) results.resources.push(resourcesOf(service, who, "automine"));
  await environment.stop();
}

/** The one-at-a-time phases: ours (sync sends), ours with SEND_MODE=async, and the reference. */
const pacedParticipants = ["ours", "ours-async", "reference"] as const;

/**
 * A fresh Anvil mining every `blockTimeSeconds`, and ours, ours-async and the reference settling one
 * payment at a time each, all three at once (each on its own key; one request in flight per
 * facilitator, so they hardly compete for the cores).
 */
async function pacedPhase(context: Context, results: BenchResults, blockTimeSeconds: number): Promise<void> {
  const phase = `paced-${blockTimeSeconds}`;
  const environment = await startEnvironment({ phase, blockTimeSeconds, reference: true, oursSingle: false, referenceNm: false, oursAsync: true }, context);
  const services: Record<(typeof pacedParticipants)[number], ChildService> = { ours: environment.ours, "ours-async": environment.oursAsync!, reference: environment.reference! };
  await Promise.all(pacedParticipants.map((who) => warmUp(services[who], context.payments.verify.bodies[0]!, context.payments.get(`${who}/${phase}/warmup`).bodies)));
  log(`${phase}: warm-up done`);
  const runs = await Promise.all(pacedParticipants.map((who) => measurePaced(environment, services[who], who, context.payments.get(`${who}/${phase}`).bodies, blockTimeSeconds)));
  results.paced.push(...runs);
  for (const who of pacedParticipants) results.resources.push(resourcesOf(services[who], who, `block-time ${blockTimeSeconds} s, one at a time`));
  await environment.stop();
}

async function blockTimePhase(context: Context, results: BenchResults): Promise<void> {
  const environment = await startEnvironment({ phase: "blocktime", blockTimeSeconds: 1, reference: true }, context);
  const all = participants(environment, context.keys);
  for (const { who, service } of all) await warmUp(service, context.payments.verify.bodies[0]!, context.payments.get(`${who}/blocktime/warmup`).bodies);
  log("warm-up done");
  for (const participant of all) {
    results.settle.push(await measureSettle(context, environment, participant, context.payments.get(`${participant.who}/blocktime/${settings.blockTimeBurst}`), "block-time 1 s"));
  }
  for (const { who, service } of all) results.resources.push(resourcesOf(service, who, "block-time 1 s"));
  await environment.stop();
}

/**
 * The headline settle rows (issue 15): a fresh Anvil mining every 2 s, like Base, and bursts of
 * distinct payments sent at once to one facilitator with one signer key, one burst at a time
 * (settings.baseLike.runs). Each row says where the payments landed, block by block.
 */
async function baseLikePhase(context: Context, results: BenchResults): Promise<void> {
  const { blockTimeSeconds, runs } = settings.baseLike;
  const who = new Set(runs.map((run) => run.who));
  const environment = await startEnvironment(
    { phase: "base-like", blockTimeSeconds, reference: who.has("reference"), referenceNm: who.has("reference-nm"), oursSingle: false },
    context,
  );
  const mining = `block-time ${blockTimeSeconds} s`;
  const all = participants(environment, context.keys).filter((participant) => who.has(participant.who));
  // Each on its own key: the warm-ups may run side by side.
  await Promise.all(all.map(({ who, service }) => warmUp(service, context.payments.verify.bodies[0]!, context.payments.get(`${who}/base-like/warmup`).bodies)));
  log("base-like: warm-up done");
  for (const run of runs) {
    const participant = all.find((candidate) => candidate.who === run.who)!;
    results.settle.push(await measureSettle(context, environment, participant, context.payments.get(`${run.who}/base-like/${run.payments}`), mining));
  }
  for (const { who, service } of all) results.resources.push(resourcesOf(service, who, `${mining}, bursts`));
  await environment.stop();
}

const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/** --profile: ours alone under --cpu-prof; one verify window and one settle window, summarised. */
async function profilePhase(context: Context): Promise<string> {
  const profileDir = path.join(context.workDir, "cpu-profiles");
  await mkdir(profileDir, { recursive: true });
  const environment = await startEnvironment({ phase: "profile", reference: false, cpuProfileDir: profileDir }, context);
  const service = environment.ours;
  await warmUp(service, context.payments.verify.bodies[0]!, context.payments.get("ours/automine/warmup").bodies);
  await context.load.verify(
    { url: service.url, bodies: context.payments.verify.bodies, connections: 8, durationSeconds: settings.verifyWarmupSeconds, timeoutSeconds: 10 },
    (settings.verifyWarmupSeconds + 30) * 1000,
  );
  const verifyWindow = { fromMicros: monotonicMicros(), toMicros: 0 };
  const run = await measureVerify(context.load, service, "ours", environment, context.postgresPid, context.payments.verify.bodies, 16, {
    payloads: "rotated",
    durationSeconds: settings.profileVerifySeconds,
  });
  verifyWindow.toMicros = monotonicMicros();
  const coldWindow = { fromMicros: monotonicMicros(), toMicros: 0 };
  const cold = await measureVerify(context.load, service, "ours", environment, context.postgresPid, context.payments.coldVerify.bodies, settings.coldVerifyConcurrency, {
    payloads: "cold",
    requestCount: context.payments.coldVerify.requestCount,
  });
  coldWindow.toMicros = monotonicMicros();
  const set = context.payments.get("ours/profile");
  const settleWindow = { fromMicros: monotonicMicros(), toMicros: 0 };
  const settle = await measureSettle(context, environment, { who: "ours", service, signer: accountOf(context.keys.oursSigner) }, set, "automine");
  settleWindow.toMicros = monotonicMicros();
  await environment.stop(); // SIGTERM → graceful exit → the profile is written
  const files = (await readdir(profileDir)).filter((name) => name.endsWith(".cpuprofile"));
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${profileDir}`);
  // Kept outside the work directory, which is deleted at the end.
  const file = path.join(tmpdir(), `x402-bench-${files[0]!}`);
  await copyFile(path.join(profileDir, files[0]!), file);
  const text = [
    `profile file: ${file}`,
    `(under --cpu-prof, so slower than the real numbers: verify ${run.requestsPerSecond} req/s at c=16 (${run.cpuMsPerVerify} CPU ms/req), ` +
      `cold ${cold.requestsPerSecond} req/s at c=${settings.coldVerifyConcurrency} (${cold.cpuMsPerVerify} CPU ms/req); ` +
      `settle ${settle.successes}/${settle.payments} in ${(settle.wallMs / 1000).toFixed(2)} s)`,
    "",
    `== VERIFY, c=16, ${settings.profileVerifySeconds} s, ${settings.verifyPayments} payments rotated ==`,
    formatProfileSummary(summariseCpuProfile(file, verifyWindow)),
    "",
    `== VERIFY COLD, c=${settings.coldVerifyConcurrency}, ${context.payments.coldVerify.requestCount} payments never seen before ==`,
    formatProfileSummary(summariseCpuProfile(file, coldWindow)),
    "",
    `== SETTLE, ${settings.profileSettleBurst} at once, automine ==`,
    formatProfileSummary(summariseCpuProfile(file, settleWindow)),
  ].join("\n");
  return text;
}

// ------------------------------------------------------------------------------------ recovery options

/**
 * bench/recover-options.mjs (signer recovery: viem, viem on workers, libsecp256k1 inline and on
 * workers, WASM), in its own plain-node process, before anything else of the bench runs. ~10 s
 * (~3 s with --quick). A failure is logged and leaves the section out; it does not stop the run.
 */
function measureRecoveryOptions(): RecoveryOptions | undefined {
  const run = spawnSync(process.execPath, [path.join(repoRoot, "bench/recover-options.mjs"), "--json", ...(quick ? ["--quick"] : [])], {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 90_000,
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  if (run.status !== 0) {
    log(`recovery options not measured: ${run.error?.message ?? run.stderr.trim().split("\n").slice(-3).join(" ")}`);
    return undefined;
  }
  const measured = JSON.parse(run.stdout) as RecoveryOptions;
  const rows = measured.rows.map((row) => ({
    ...row,
    wallMicros: round2(row.wallMicros),
    mainThreadCpuMicros: round2(row.mainThreadCpuMicros),
    processCpuMicros: round2(row.processCpuMicros),
    cpuVsViemInline: Math.round(row.cpuVsViemInline * 1000) / 1000,
  }));
  log(`recovery options: ${rows.map((row) => `${row.option} ${row.where} ${row.processCpuMicros} µs`).join("; ")}`);
  return { rows, loadAverageAtStart: round2(measured.loadAverageAtStart), loadAverageAtEnd: round2(measured.loadAverageAtEnd) };
}

// ------------------------------------------------------------------------------------ main

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    log(`the run passed its limit of ${RUN_LIMIT_MS / 1000} s: stopping everything`);
    exitAfterCleanup(1);
  }, RUN_LIMIT_MS);
  watchdog.unref();

  // Ours runs the compiled CLI, as `npm start` does: dist/ must match src/.
  const build = buildDist();
  if (!build.ok) throw new Error(`npm run build failed:\n${build.output}`);
  log(`dist/ built (${build.elapsedMs} ms)`);
  const recoveryOptions = profileMode ? undefined : measureRecoveryOptions();

  // Postgres runs as the `postgres` user when we are root: every parent directory must be traversable.
  const workDir = await mkdtemp(path.join(tmpdir(), "x402-bench-"));
  await chmod(workDir, 0o755);
  onCleanup("work directory", () => rm(workDir, { recursive: true, force: true }));
  log(`work directory ${workDir}`);

  const postgres = await startEmbeddedPostgres({ dataDir: path.join(workDir, "postgres") });
  onCleanup("postgres", postgres.stop);
  const postgresPid = await postmasterPid(postgres);
  log(`postgres on port ${postgres.port} (postmaster pid ${postgresPid})`);

  const load = await startLoadGenerator();
  onCleanup("load generator", load.stop);
  const rpcProxy = await startRpcProxyProcess();
  onCleanup("rpc proxy", rpcProxy.stop);
  log(`rpc proxy pid ${rpcProxy.pid}`);

  const payerKeys = Array.from({ length: settings.payers }, (_, i) => keyFor(`payer/${i}`));
  const keys: Keys = {
    payerKeys,
    payers: payerKeys.map(accountOf),
    oursSigner: keyFor("signer/ours"),
    oursSingleSigner: keyFor("signer/ours-single"),
    oursAsyncSigner: keyFor("signer/ours-async"),
    referenceSigner: keyFor("signer/reference"),
    referenceNmSigner: keyFor("signer/reference-nm"),
  };
  const signStartedMs = Date.now();
  const payments = await signAll(keys);
  log(`${payments.count} payments pre-signed by ${settings.payers} payers in ${((Date.now() - signStartedMs) / 1000).toFixed(1)} s`);
  const context: Context = { postgres, postgresPid, workDir, keys, load, rpcProxy, payments };

  if (profileMode) {
    const summary = await profilePhase(context);
    const summaryFile = path.join(tmpdir(), `x402-bench-profile-${Date.now()}.txt`);
    await writeFile(summaryFile, `${summary}\n`);
    process.stdout.write(`${summary}\n\n(summary also in ${summaryFile})\n`);
    return;
  }

  const results: BenchResults = {
    machine: machineInfo(),
    settings: { ...settings, amountAtomic: settings.amountAtomic.toString(), uptoCapAtomic: settings.uptoCapAtomic.toString(), quick },
    ...(recoveryOptions ? { recoveryOptions } : {}),
    verify: [],
    baseLikeMining: `block-time ${settings.baseLike.blockTimeSeconds} s`,
    settle: [],
    paced: [],
    resources: [],
    ratios: [],
    notes: [
      "Each facilitator runs in its own Node process (ours compiled, `node dist/cli/index.js serve` as `npm start`; the reference via `node --import tsx`); the load generator (autocannon / node:http) is a third process; Anvil and Postgres are shared. Every facilitator reaches Anvil through its own counting JSON-RPC proxy (a fourth process, plain node:http, keep-alive): it adds a loopback hop to every RPC call, for both sides alike.",
      "CPU ms per verify is the facilitator process's utime+stime over the run divided by requests answered; pg/anvil columns charge the shared Postgres and Anvil the same way.",
      "Verify 'cold' is the verify headline; 'cache-served' (rotated) sends a fixed set of valid payments in turn (repeats: ours answers them from its caches); 'cold' sends every request a payment never sent to that facilitator before (no cache can hit; signatures are recovered, the chain is read).",
      "Settle: every payment in a burst is sent at the same moment, each a distinct pre-signed authorization, one signer key per facilitator. The reference uses the x402 example's signer (viem wallet client, no nonce manager); reference-nm is the same with viem's nonceManager on the account (not in the example); ours runs its defaults, where settlements waiting for the same signer go out as one BatchSettler transaction (SETTLE_BATCH_MAX 32); ours-single is ours with SETTLE_BATCH_MAX=1, one transaction per settlement. Before each burst the load generator opens one keep-alive connection per payment (GET /supported), so the burst is written on established connections and every payment arrives within a few ms.",
      `Base-like bursts (the settle headline): a fresh Anvil with --block-time ${settings.baseLike.blockTimeSeconds}, one burst at a time, payments spread round-robin over ${settings.payers} payers (at most ${paymentsPerPayerMax} each, under IN_FLIGHT_PER_PAYER_MAX). Each payment's block is the block of its Transfer to the burst's payTo (eth_getLogs); the head at each moment (at the first send, at the last arrival = the last request written out) and when each block appeared come from polling eth_blockNumber every 20 ms. 'blocks after' = last confirming block − head at the last arrival (1 is the floor); 'to last confirm s' = first send → the last confirming block seen. Target (issue 15): 100 % success and every payment confirmed within ${settings.baseLike.targetBlocks} blocks of the last arrival, and for 300 a wall time ≤ 6 s.`,
      "RPC calls: counted at each facilitator's proxy over the measurement (from the first request until the last payment landed, background polling included), every call of a JSON-RPC batch separately; per verify answered, or per payment that reached payTo (a failed settlement's calls are charged to the ones that landed).",
      "Peak RSS: VmHWM of the facilitator process, reset at the start of each measurement (/proc/<pid>/clear_refs) and read at its end; the PROCESSES rows are the highest reading over the phase.",
      "gas/settl = gasUsed of every transaction the facilitator's signer got mined during the burst (read from the blocks) / payments that reached payTo; gas/tx = mean gasUsed of the distinct transactions behind the success answers.",
      "Settle latencies: 'p50 ok'/'p99 ok' are over successful settlements only; 'p50 all' includes failures, which the reference answers quickly.",
      "Settle one at a time: on Anvil mining every 2 s and every 0.2 s (a stand-in for Base's flashblocks), each payment is sent after a pause within one block interval of the previous answer (spread evenly over the interval, shuffled, the same for every facilitator), so the waits for the next block spread over the interval and their median is half an interval: that is the floor ('mean block wait'). On automine (ours and the reference only) there is no block to wait for: the latency is the facilitator's own. Ours runs its defaults (SEND_MODE=auto: Anvil serves eth_sendRawTransactionSync, so the node answers the send with the receipt); ours-async is ours with SEND_MODE=async (plain send, receipt polled every 100 ms); the reference waits with viem's waitForTransactionReceipt (its baseSepolia chain polls every 1 s).",
      "The machine is shared: compare ratios rather than absolute numbers, and see loadAverage in machine.",
    ],
    durationSeconds: 0,
  };
  // The headline first, on the quietest machine.
  await baseLikePhase(context, results);
  await autominePhase(context, results);
  await blockTimePhase(context, results);
  for (const { blockTimeSeconds } of settings.paced) await pacedPhase(context, results, blockTimeSeconds);
  const proxyCpuMs = cpuMs(rpcProxy.pid);
  results.rpcProxyCpuMs = Number.isFinite(proxyCpuMs) ? Math.round(proxyCpuMs) : undefined;
  log(`rpc proxy: ${(proxyCpuMs / 1000).toFixed(1)} s CPU over the whole run`);

  results.machine.loadAverageAtEnd = loadavg().map(round2);
  results.ratios = computeRatios(results.verify, results.settle, results.resources, results.paced);
  results.durationSeconds = Math.round((Date.now() - runStartedMs) / 1000);
  await writeFile(outputFile, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${formatResults(results)}\n\nwritten to ${path.relative(process.cwd(), outputFile)}\n`);
}

main().then(
  () => exitAfterCleanup(0),
  (error: unknown) => {
    // After SIGINT the phase in progress fails as its processes go away: that is not news.
    if (cleaningUp) return;
    log(`failed: ${(error as Error).stack ?? String(error)}`);
    exitAfterCleanup(1);
  },
);
