/** Result shapes of the benchmark, the ratios (ours / reference) and the printed table. */
import { cpus, loadavg, totalmem } from "node:os";

/**
 * "reference-nm": the reference with viem's nonceManager on its signer (settle only).
 * "ours": our defaults (batched settlement on, SETTLE_BATCH_MAX 32; SEND_MODE=auto, so sync sends on
 * Anvil). "ours-single": ours started with SETTLE_BATCH_MAX=1, one transaction per settlement (settle
 * only; verify is the same code). "ours-async": ours with SEND_MODE=async, plain sends and receipt
 * polling (the one-at-a-time phases only).
 */
export type Facilitator = "ours" | "ours-single" | "ours-async" | "reference" | "reference-nm";

/**
 * JSON-RPC traffic of one facilitator during one measurement, counted by the proxy between it and
 * Anvil (bench/rpc-proxy.ts): every call of a batch counts, background work (head polling, the
 * watcher) during the window included.
 */
export interface RpcUsage {
  /** What the calls are divided by: verify requests answered, or payments that reached payTo. */
  unit: "verify" | "settled payment";
  units: number;
  calls: number;
  /** HTTP requests that carried them (a JSON-RPC batch is one). */
  httpRequests: number;
  callsPerUnit: number;
  httpRequestsPerUnit: number;
  /** Calls per unit by method, most first (all methods; the table prints the top few). */
  byMethodPerUnit: { method: string; perUnit: number; calls: number }[];
  upstreamErrors: number;
}

/** "rotated": a fixed set of valid payments sent in turn (repeats: caches may hit). "cold": every request a payment never sent before. */
export type VerifyPayloads = "rotated" | "cold";

export interface VerifyResult {
  facilitator: Facilitator;
  payloads: VerifyPayloads;
  /** Distinct payments behind the requests (rotated: the set size; cold: one per request). */
  distinctPayments: number;
  concurrency: number;
  durationSeconds: number;
  requests: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; mean: number; max: number };
  validAnswers: number;
  otherAnswers: number;
  errors: number;
  timeouts: number;
  /** CPU of the facilitator process per request answered. */
  cpuMsPerVerify: number;
  /** CPU of Postgres (postmaster + backends) and of Anvil per request, during the same run. */
  postgresCpuMsPerVerify: number;
  anvilCpuMsPerVerify: number;
  /** Cold runs only: requests that had to reuse a payment because the pre-signed ones ran out (should be 0). */
  bodiesReused?: number;
  rpc?: RpcUsage;
  /** Peak RSS of the facilitator process during this run alone (VmHWM reset at its start). */
  peakRssMb?: number;
}

/**
 * Where a burst's payments landed, on interval-mined blocks: block numbers from the chain (each
 * payment's Transfer to the burst's payTo), the head at each moment from bench/block-clock.ts.
 */
export interface BurstBlocks {
  blockTimeMs: number;
  /** The head when the first request was sent, and when the last one was written out (the last arrival). */
  blockAtFirstSend: number;
  blockAtLastArrival: number;
  /** ms from the first send to the last arrival. */
  lastArrivalMs: number;
  /** Payments that reached payTo (Transfer logs), and the block of the last one. */
  confirmed: number;
  lastConfirmBlock: number;
  /** lastConfirmBlock − blockAtLastArrival: 1 is the floor (the next block after the last arrival). */
  blocksAfterLastArrival: number;
  /** Payments confirmed per block, by offset from blockAtLastArrival ("+1", "+2", … ; "0" or less: before the last arrival). */
  confirmedByBlockOffset: Record<string, number>;
  /** ms from the first send until the block holding the last payment was seen. */
  wallToLastConfirmMs: number;
  /** Issue 15: every payment answered success and confirmed within targetBlocks of the last arrival (and, where set, wall ≤ targetWallMs). */
  targetBlocks: number;
  targetWallMs?: number;
  targetMet: boolean;
}

export interface SettleResult {
  facilitator: Facilitator;
  /** "automine", or "block-time N s". */
  mining: string;
  payments: number;
  /** Distinct payers the payments are spread over (round-robin). */
  payers: number;
  successes: number;
  successRate: number;
  /** errorReason (or transport failure) → count, for the answers that were not success:true. */
  failures: Record<string, number>;
  wallMs: number;
  /** Successful settlements per second of wall time (first request sent → last answer). */
  settledPerSecond: number;
  /** Every answer, failures included (a fast failure lowers these). */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** success:true answers only. */
  successLatencyMs: { p50: number; p90: number; p99: number; max: number };
  /** Distinct transaction hashes among the success answers. */
  distinctTransactions: number;
  /** Payments that reached payTo on chain (payTo balance delta / amount), read after the burst. */
  onChainTransfers: number;
  /** Transactions the facilitator's signer got mined during the burst (nonce delta). */
  signerTransactionsMined: number;
  /** Mean gasUsed per distinct transaction among the success answers (a batch counts once). */
  avgGasUsed: number;
  /** Every transaction the signer got mined during the burst (blocks read from the chain), and their gas. */
  signerTransactionsInBlocks: number;
  gasUsedTotal: number;
  /** gasUsedTotal / onChainTransfers: what one payment that reached payTo cost in gas, batching included. */
  gasPerSettlement: number;
  /** CPU of the facilitator process, of Postgres and of Anvil during the burst, per successful settlement. */
  cpuMsPerSettlement: number;
  postgresCpuMsPerSettlement: number;
  anvilCpuMsPerSettlement: number;
  /** Reference only: why its transaction sends failed (the SDK reports them all as transaction_failed). */
  sendErrors?: Record<string, number>;
  /** Interval-mined rows only: where the payments landed, block by block. */
  blocks?: BurstBlocks;
  rpc?: RpcUsage;
  /** Peak RSS of the facilitator process during this burst alone (VmHWM reset at its start). */
  peakRssMb?: number;
}

/**
 * One payment at a time on interval-mined blocks: each sent after a pause within one block interval
 * of the previous answer (spread evenly over the interval), so arrivals fall evenly over the
 * block's phase and the median wait for the next block is half an interval (`meanBlockWaitMs`, the
 * mean too): the physical floor of a settle that answers once the payment is in a block. On
 * automine there is no block to wait for: the latency is the facilitator's own.
 */
export interface PacedSettleResult {
  facilitator: Facilitator;
  /** What was paid: EIP-3009 `exact` (every row before issue 16), `exact` over Permit2, or `upto` over Permit2. */
  payment: "exact EIP-3009" | "exact Permit2" | "upto Permit2";
  mining: string;
  blockTimeMs: number;
  payments: number;
  successes: number;
  failures: Record<string, number>;
  /** success:true answers only, ms from the request sent to the answer. */
  successLatencyMs: { p50: number; p90: number; mean: number; max: number };
  meanBlockWaitMs: number;
  /** successLatencyMs.p50 / meanBlockWaitMs: 1.0 is the floor; the target is ≤ 1.1. */
  p50OverMeanBlockWait: number;
  /** gasUsed per settlement (one transaction each, one at a time); NaN when a hash was shared or none succeeded. */
  gasPerSettlement?: number;
  /** Permit2 rows: what payTo received per success, and the charge asked (upto: below the cap signed). */
  receivedPerSuccessAtomic?: number;
  chargeAtomic?: number;
  rpc?: RpcUsage;
  /** Peak RSS of the facilitator process during this run (VmHWM reset at its start). */
  peakRssMb?: number;
}

export interface Resources {
  facilitator: Facilitator;
  phase: string;
  /** The highest VmHWM read over the phase (each measurement resets it, and is read before it is). */
  peakRssMb: number;
  rssAtEndMb: number;
  cpuMsTotal: number;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGb: number;
  node: string;
  platform: string;
  date: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
}

export interface Ratio {
  metric: string;
  subject: Facilitator;
  value: number;
  /** A facilitator, or the physical floor ("mean block wait", the one-at-a-time phases). */
  baseline: Facilitator | "mean block wait";
  baselineValue: number;
  /** value / baselineValue. */
  ratio: number;
  better: "higher" | "lower";
}

/** One option of bench/recover-options.mjs: µs per ECDSA recovery of a never-seen signature. */
export interface RecoveryOptionRow {
  option: string;
  where: string;
  recoveries: number;
  inFlight: number;
  wallMicros: number;
  mainThreadCpuMicros: number;
  processCpuMicros: number;
  /** processCpuMicros / viem inline's. */
  cpuVsViemInline: number;
}

/** bench/recover-options.mjs, run in its own process before the phases (nothing else of the bench running). */
export interface RecoveryOptions {
  rows: RecoveryOptionRow[];
  loadAverageAtStart: number;
  loadAverageAtEnd: number;
}

export interface BenchResults {
  machine: MachineInfo;
  settings: Record<string, unknown>;
  /** Signer recovery, the options side by side (issue 15 cold verify); absent when it could not run. */
  recoveryOptions?: RecoveryOptions;
  verify: VerifyResult[];
  /** The `mining` of the headline settle rows (the Base-like bursts), printed in their own table. */
  baseLikeMining?: string;
  settle: SettleResult[];
  /** One payment at a time on Base-like blocks (2 s, and 0.2 s as a stand-in for flashblocks). */
  paced: PacedSettleResult[];
  resources: Resources[];
  ratios: Ratio[];
  notes: string[];
  /** CPU the counting RPC proxy process used over the whole run (it must not be the bottleneck). */
  rpcProxyCpuMs?: number;
  durationSeconds: number;
}

export function machineInfo(): MachineInfo {
  const cpuList = cpus();
  return {
    cpuModel: cpuList[0]?.model.trim() ?? "unknown",
    cores: cpuList.length,
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    date: new Date().toISOString(),
    loadAverageAtStart: loadavg().map(round2),
  };
}

export function round2(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 100) / 100 : value;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

function ratio(metric: string, subject: Facilitator, value: number, baseline: Ratio["baseline"], baselineValue: number, better: Ratio["better"]): Ratio {
  return {
    metric,
    subject,
    value: round2(value),
    baseline,
    baselineValue: round2(baselineValue),
    ratio: baselineValue === 0 ? Number.NaN : round2(value / baselineValue),
    better,
  };
}

/** Cold first (the verify headline), then cache-served by concurrency; ours before the reference. */
function verifyOrder(verify: VerifyResult[]): VerifyResult[] {
  const who = (row: VerifyResult) => (row.facilitator === "ours" ? 0 : 1);
  return [...verify].sort((a, b) => (a.payloads === b.payloads ? a.concurrency - b.concurrency || who(a) - who(b) : a.payloads === "cold" ? -1 : 1));
}

function verifyRatios(verify: VerifyResult[]): Ratio[] {
  const ratios: Ratio[] = [];
  const runs = [...new Set(verifyOrder(verify).map((row) => `${row.payloads}/${row.concurrency}`))];
  for (const run of runs) {
    const matches = (row: VerifyResult) => `${row.payloads}/${row.concurrency}` === run;
    const ours = verify.find((row) => row.facilitator === "ours" && matches(row));
    const reference = verify.find((row) => row.facilitator === "reference" && matches(row));
    if (!ours || !reference) continue;
    const label = `verify ${ours.payloads === "cold" ? "cold" : "cache-served"} c=${ours.concurrency}`;
    ratios.push(ratio(`${label} req/s`, "ours", ours.requestsPerSecond, "reference", reference.requestsPerSecond, "higher"));
    ratios.push(ratio(`${label} p50 ms`, "ours", ours.latencyMs.p50, "reference", reference.latencyMs.p50, "lower"));
    ratios.push(ratio(`${label} p99 ms`, "ours", ours.latencyMs.p99, "reference", reference.latencyMs.p99, "lower"));
    if (ours.rpc && reference.rpc) ratios.push(ratio(`${label} RPC calls per verify`, "ours", ours.rpc.callsPerUnit, "reference", reference.rpc.callsPerUnit, "lower"));
  }
  const sum = (rows: VerifyResult[], pick: (row: VerifyResult) => number) => rows.reduce((acc, row) => acc + pick(row), 0);
  const perVerify = (who: Facilitator, payloads: VerifyPayloads, pick: (row: VerifyResult) => number) => {
    const rows = verify.filter((row) => row.facilitator === who && row.payloads === payloads);
    return sum(rows, (row) => pick(row) * row.requests) / Math.max(1, sum(rows, (row) => row.requests));
  };
  for (const payloads of ["cold", "rotated"] as const) {
    if (!verify.some((row) => row.payloads === payloads)) continue;
    const label = payloads === "cold" ? ", cold" : ", cache-served";
    const own = (r: VerifyResult) => r.cpuMsPerVerify;
    const all = (r: VerifyResult) => r.cpuMsPerVerify + r.postgresCpuMsPerVerify + r.anvilCpuMsPerVerify;
    ratios.push(ratio(`CPU ms per verify (facilitator process${label})`, "ours", perVerify("ours", payloads, own), "reference", perVerify("reference", payloads, own), "lower"));
    ratios.push(
      ratio(`CPU ms per verify (facilitator + Postgres + Anvil${label})`, "ours", perVerify("ours", payloads, all), "reference", perVerify("reference", payloads, all), "lower"),
    );
  }
  return ratios;
}

function settleRatios(settle: SettleResult[]): Ratio[] {
  const ratios: Ratio[] = [];
  const comparisons: [Facilitator, Facilitator][] = [
    ["ours", "reference"],
    ["ours", "reference-nm"],
    ["ours", "ours-single"],
  ];
  for (const [subject, baseline] of comparisons) {
    for (const row of settle.filter((r) => r.facilitator === subject)) {
      const base = settle.find((r) => r.facilitator === baseline && r.mining === row.mining && r.payments === row.payments);
      if (!base) continue;
      const label = `settle ${row.payments} ${row.mining}`;
      ratios.push(ratio(`${label} success rate`, subject, row.successRate, baseline, base.successRate, "higher"));
      ratios.push(ratio(`${label} settled/s`, subject, row.settledPerSecond, baseline, base.settledPerSecond, "higher"));
      ratios.push(ratio(`${label} p50 ms (successes)`, subject, row.successLatencyMs.p50, baseline, base.successLatencyMs.p50, "lower"));
      ratios.push(ratio(`${label} p99 ms (successes)`, subject, row.successLatencyMs.p99, baseline, base.successLatencyMs.p99, "lower"));
      // Only against a baseline that landed every payment: one that landed a few is done early.
      if (row.blocks && base.blocks && base.blocks.confirmed === base.payments) {
        ratios.push(ratio(`${label} s to last confirmation`, subject, row.blocks.wallToLastConfirmMs / 1000, baseline, base.blocks.wallToLastConfirmMs / 1000, "lower"));
      }
      if (row.rpc && base.rpc) ratios.push(ratio(`${label} RPC calls per settled payment`, subject, row.rpc.callsPerUnit, baseline, base.rpc.callsPerUnit, "lower"));
      if (baseline === "ours-single") ratios.push(ratio(`${label} gas per settlement`, subject, row.gasPerSettlement, baseline, base.gasPerSettlement, "lower"));
    }
  }
  /** All the gas a facilitator's signer spent over every burst / every payment that reached payTo. */
  const gasPerSettlement = (who: Facilitator) => {
    const rows = settle.filter((row) => row.facilitator === who);
    const landed = rows.reduce((acc, row) => acc + row.onChainTransfers, 0);
    return landed === 0 ? Number.NaN : rows.reduce((acc, row) => acc + row.gasUsedTotal, 0) / landed;
  };
  // Against reference-nm: it settles as many payments as ours. The first payment to a fresh payTo costs
  // ~17k gas more (a zero balance slot written), so the reference's few successes would skew the mean.
  const gasReference: Facilitator = settle.some((row) => row.facilitator === "reference-nm" && row.successes > 0) ? "reference-nm" : "reference";
  if (settle.some((row) => row.facilitator === "ours")) {
    ratios.push(ratio("gas per settlement, all bursts", "ours", gasPerSettlement("ours"), gasReference, gasPerSettlement(gasReference), "lower"));
    if (settle.some((row) => row.facilitator === "ours-single")) {
      ratios.push(ratio("gas per settlement, all bursts (batched / single)", "ours", gasPerSettlement("ours"), "ours-single", gasPerSettlement("ours-single"), "lower"));
    }
  }
  return ratios;
}

/** A row's payment kind; rows written before issue 16 carry none and were all EIP-3009. */
const paymentOf = (row: PacedSettleResult): PacedSettleResult["payment"] => row.payment ?? "exact EIP-3009";

/** Per block time: ours against the floor (half a block interval), against plain sends, and against the reference. */
function pacedRatios(paced: PacedSettleResult[]): Ratio[] {
  const ratios: Ratio[] = [];
  const kinds = [...new Map(paced.map((row) => [`${row.mining}|${paymentOf(row)}`, { mining: row.mining, payment: paymentOf(row) }] as const)).values()];
  for (const { mining, payment } of kinds) {
    const of = (who: Facilitator) => paced.find((row) => row.mining === mining && paymentOf(row) === payment && row.facilitator === who);
    const kindLabel = payment === "exact EIP-3009" ? "" : `${payment}, `;
    const label = `settle one at a time, ${kindLabel}${mining}: p50 ms (successes)`;
    const ours = of("ours");
    if (!ours) continue;
    const reference = of("reference");
    if (payment !== "exact EIP-3009" && reference && Number.isFinite(ours.gasPerSettlement) && Number.isFinite(reference.gasPerSettlement)) {
      ratios.push(ratio(`settle one at a time, ${payment}: gas per settlement`, "ours", ours.gasPerSettlement!, "reference", reference.gasPerSettlement!, "lower"));
    }
    if (ours.meanBlockWaitMs > 0) ratios.push(ratio(label, "ours", ours.successLatencyMs.p50, "mean block wait", ours.meanBlockWaitMs, "lower"));
    for (const baseline of ["ours-async", "reference"] as const) {
      const base = of(baseline);
      if (base) ratios.push(ratio(label, "ours", ours.successLatencyMs.p50, baseline, base.successLatencyMs.p50, "lower"));
    }
    if (reference && reference.meanBlockWaitMs > 0) ratios.push(ratio(label, "reference", reference.successLatencyMs.p50, "mean block wait", reference.meanBlockWaitMs, "lower"));
  }
  return ratios;
}

export function computeRatios(verify: VerifyResult[], settle: SettleResult[], resources: Resources[], paced: PacedSettleResult[] = []): Ratio[] {
  const ratios = [...verifyRatios(verify), ...settleRatios(settle), ...pacedRatios(paced)];
  const rss = (who: Facilitator) => Math.max(...resources.filter((row) => row.facilitator === who).map((row) => row.peakRssMb));
  if (resources.some((row) => row.facilitator === "reference")) ratios.push(ratio("peak RSS MiB", "ours", rss("ours"), "reference", rss("reference"), "lower"));
  return ratios;
}

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : "—");

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ");
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** "eth_call 1.50, eth_blockNumber 0.20": the top methods per unit. */
function topMethods(rpc: RpcUsage | undefined, count = 4): string {
  if (!rpc) return "";
  const shown = rpc.byMethodPerUnit.slice(0, count).map((entry) => `${entry.method} ${fixed(entry.perUnit, 2)}`);
  const rest = rpc.byMethodPerUnit.length - count;
  return rest > 0 ? `${shown.join(", ")}, +${rest} more` : shown.join(", ");
}

/** "+1:250 +2:50": payments confirmed per block, by offset from the block at the last arrival. */
function byBlock(blocks: BurstBlocks): string {
  return Object.entries(blocks.confirmedByBlockOffset)
    .sort((a, b) => Number(a[0]) - Number(b[0]))
    .map(([offset, count]) => `${offset}:${count}`)
    .join(" ");
}

const verdict = (ok: boolean) => (ok ? "met" : "NOT met");

function failureLines(rows: SettleResult[]): string[] {
  const out: string[] = [];
  for (const r of rows.filter((row) => Object.keys(row.failures).length > 0)) {
    const reasons = Object.entries(r.failures)
      .sort((a, b) => b[1] - a[1])
      .map(([reason, count]) => `${count}× ${reason}`)
      .join("; ");
    out.push(`  not settled — ${r.facilitator}, ${r.payments}, ${r.mining}: ${reasons}`);
    const sends = Object.entries(r.sendErrors ?? {}).map(([message, count]) => `${count}× ${message}`);
    if (sends.length > 0) out.push(`    send errors behind them: ${sends.join("; ")}`);
  }
  return out;
}

/** The headline settle rows: bursts on Base-like blocks, block by block, against issue 15's target. */
function formatBaseLike(rows: SettleResult[], mining: string): string[] {
  const out = [
    `SETTLE BURSTS ON BASE-LIKE BLOCKS — the settle headline (Anvil ${mining}; N distinct payments sent at once to one facilitator, one signer key; ` +
      `blocks from the chain, each payment's Transfer; "blocks after" = last confirming block − head at the last arrival, 1 is the floor)`,
    table(
      ["facilitator", "N", "payers", "ok %", "confirmed", "to last confirm s", "last answer s", "p50 ok", "p99 ok", "p50 all", "last arrival ms", "head at arrival", "blocks after", "confirmed per block", "txs", "rpc/settled", "peak RSS MiB", "target"],
      rows.map((r) => [
        r.facilitator,
        String(r.payments),
        String(r.payers),
        fixed(100 * r.successRate),
        String(r.blocks?.confirmed ?? r.onChainTransfers),
        fixed((r.blocks?.wallToLastConfirmMs ?? Number.NaN) / 1000, 2),
        fixed(r.wallMs / 1000, 2),
        fixed(r.successLatencyMs.p50, 0),
        fixed(r.successLatencyMs.p99, 0),
        fixed(r.latencyMs.p50, 0),
        fixed(r.blocks?.lastArrivalMs ?? Number.NaN, 0),
        String(r.blocks?.blockAtLastArrival ?? "—"),
        fixed(r.blocks?.blocksAfterLastArrival ?? Number.NaN, 0),
        r.blocks ? byBlock(r.blocks) : "—",
        String(r.signerTransactionsMined),
        fixed(r.rpc?.callsPerUnit ?? Number.NaN, 2),
        fixed(r.peakRssMb ?? Number.NaN),
        r.blocks ? verdict(r.blocks.targetMet) : "—",
      ]),
    ),
  ];
  for (const r of rows.filter((row) => row.blocks)) {
    const b = r.blocks!;
    out.push(
      `  ${r.facilitator} ${r.payments}: target "all confirmed within ${b.targetBlocks} blocks of the last arrival` +
        (b.targetWallMs === undefined ? "" : `, wall ≤ ${fixed(b.targetWallMs / 1000, 0)} s`) +
        `, 100 % success": ${verdict(b.targetMet)} — ${fixed(100 * r.successRate)} % answered success, ${b.confirmed}/${r.payments} confirmed, ` +
        `last in block +${fixed(b.blocksAfterLastArrival, 0)}, ${fixed(b.wallToLastConfirmMs / 1000, 2)} s from the first send`,
    );
  }
  out.push(...failureLines(rows));
  return out;
}

export function formatResults(results: BenchResults): string {
  const out: string[] = [];
  const m = results.machine;
  out.push(`x402 facilitator benchmark — ${m.date}`);
  out.push(`${m.cpuModel}, ${m.cores} cores, ${m.memoryGb} GiB, Node ${m.node}; load average at start ${m.loadAverageAtStart.join(" ")}`);
  const headlineMining = results.baseLikeMining;
  const baseLike = results.settle.filter((r) => headlineMining !== undefined && r.mining === headlineMining);
  if (baseLike.length > 0) out.push("", ...formatBaseLike(baseLike, headlineMining!));
  if (results.verify.length > 0) {
    // The cold rows first: the verify headline. Rotated rows answer repeats from ours's caches.
    const rows = verifyOrder(results.verify);
    out.push(
      "",
      "VERIFY (autocannon, pre-signed valid payments; cold = every request a payment never seen: the verify headline; cache-served = a fixed set of 64 sent in turn for a fixed time, repeats that ours answers from its caches)",
    );
    out.push(
      table(
        ["facilitator", "payloads", "conc", "req/s", "p50 ms", "p99 ms", "valid", "other", "err", "cpu ms/req", "pg ms/req", "anvil ms/req", "rpc/req", "peak RSS MiB"],
        rows.map((r) => [
          r.facilitator,
          r.payloads === "cold" ? `cold ${r.requests}` : `cache-served (${r.distinctPayments} rotated)`,
          String(r.concurrency),
          fixed(r.requestsPerSecond),
          fixed(r.latencyMs.p50),
          fixed(r.latencyMs.p99),
          String(r.validAnswers),
          String(r.otherAnswers),
          String(r.errors),
          fixed(r.cpuMsPerVerify, 2),
          fixed(r.postgresCpuMsPerVerify, 2),
          fixed(r.anvilCpuMsPerVerify, 2),
          fixed(r.rpc?.callsPerUnit ?? Number.NaN, 2),
          fixed(r.peakRssMb ?? Number.NaN),
        ]),
      ),
    );
  }
  if (results.recoveryOptions) out.push("", ...formatRecoveryOptions(results.recoveryOptions, results.verify));
  const otherSettle = results.settle.filter((r) => !baseLike.includes(r));
  if (otherSettle.length > 0) {
    out.push("", "SETTLE, AUTOMINE AND 1 S BLOCKS (N distinct payments sent at once, one signer key; latencies in ms; CPU in ms per successful settlement)");
    out.push(
      table(
        ["facilitator", "mining", "N", "ok", "ok %", "settled/s", "p50 ok", "p99 ok", "p50 all", "wall s", "on chain", "blocks after", "txs", "gas/tx", "gas/settl", "cpu/ok", "pg/ok", "anvil/ok", "rpc/settled", "peak RSS MiB"],
        otherSettle.map((r) => [
          r.facilitator,
          r.mining,
          String(r.payments),
          String(r.successes),
          fixed(100 * r.successRate),
          fixed(r.settledPerSecond),
          fixed(r.successLatencyMs.p50, 0),
          fixed(r.successLatencyMs.p99, 0),
          fixed(r.latencyMs.p50, 0),
          fixed(r.wallMs / 1000, 2),
          String(r.onChainTransfers),
          r.blocks ? fixed(r.blocks.blocksAfterLastArrival, 0) : "—",
          String(r.signerTransactionsMined),
          fixed(r.avgGasUsed, 0),
          fixed(r.gasPerSettlement, 0),
          fixed(r.cpuMsPerSettlement, 1),
          fixed(r.postgresCpuMsPerSettlement, 1),
          fixed(r.anvilCpuMsPerSettlement, 1),
          fixed(r.rpc?.callsPerUnit ?? Number.NaN, 2),
          fixed(r.peakRssMb ?? Number.NaN),
        ]),
      ),
    );
    out.push(...failureLines(otherSettle));
  }
  if (results.paced.length > 0) {
    out.push(
      "",
      "SETTLE, ONE AT A TIME (each payment sent a pause within one block interval after the last answer, pauses spread evenly over it; latencies of successes in ms; floor = half an interval; automine: no block to wait for, the facilitator's own latency)",
    );
    out.push(
      table(
        ["facilitator", "payment", "mining", "N", "ok", "p50", "p90", "mean", "max", "mean block wait", "p50 / wait", "gas/settled", "rpc/settled", "peak RSS MiB"],
        results.paced.map((r) => [
          r.facilitator,
          paymentOf(r),
          r.mining,
          String(r.payments),
          String(r.successes),
          fixed(r.successLatencyMs.p50, 0),
          fixed(r.successLatencyMs.p90, 0),
          fixed(r.successLatencyMs.mean, 0),
          fixed(r.successLatencyMs.max, 0),
          fixed(r.meanBlockWaitMs, 0),
          fixed(r.p50OverMeanBlockWait, 2),
          fixed(r.gasPerSettlement ?? Number.NaN, 0),
          fixed(r.rpc?.callsPerUnit ?? Number.NaN, 2),
          fixed(r.peakRssMb ?? Number.NaN),
        ]),
      ),
    );
    for (const r of results.paced.filter((row) => row.receivedPerSuccessAtomic !== undefined)) {
      const charged = r.receivedPerSuccessAtomic === r.chargeAtomic;
      out.push(`  ${r.facilitator}, ${paymentOf(r)}: payTo received ${fixed(r.receivedPerSuccessAtomic!, 0)} atomic per success for a charge of ${r.chargeAtomic} (${charged ? "the charge, not the cap" : "NOT the charge"})`);
    }
    for (const r of results.paced.filter((row) => Object.keys(row.failures).length > 0)) {
      out.push(`  not settled — ${r.facilitator}, ${paymentOf(r)}, ${r.mining}: ${Object.entries(r.failures).map(([reason, count]) => `${count}× ${reason}`).join("; ")}`);
    }
  }
  out.push("", ...formatRpc(results));
  if (results.resources.length > 0) {
    out.push("", "PROCESSES (peak RSS = the highest VmHWM over the phase; each measurement above has its own, VmHWM being reset at its start)");
    out.push(
      table(
        ["facilitator", "phase", "peak RSS MiB", "RSS at end MiB", "CPU s total"],
        results.resources.map((r) => [r.facilitator, r.phase, fixed(r.peakRssMb), fixed(r.rssAtEndMb), fixed(r.cpuMsTotal / 1000, 1)]),
      ),
    );
  }
  if (results.ratios.length > 0) {
    out.push("", "RATIOS (subject / baseline)");
    out.push(
      table(
        ["metric", "subject", "value", "baseline", "value ", "ratio", "better"],
        results.ratios.map((r) => [r.metric, r.subject, fixed(r.value, 2), r.baseline, fixed(r.baselineValue, 2), fixed(r.ratio, 2), r.better]),
      ),
    );
  }
  for (const note of results.notes) out.push(`note: ${note}`);
  out.push(`(run took ${results.durationSeconds.toFixed(0)} s)`);
  return out.join("\n");
}

/**
 * RPC calls per unit of work, ours and the reference side by side, with the top methods; and issue
 * 15's goal for the Base-like bursts (≤ 2 calls per settled payment, amortised).
 */
function formatRpc(results: BenchResults): string[] {
  const rows: { who: Facilitator; what: string; rpc: RpcUsage }[] = [];
  for (const r of verifyOrder(results.verify)) if (r.rpc) rows.push({ who: r.facilitator, what: `verify ${r.payloads === "cold" ? "cold" : "cache-served"} c=${r.concurrency}`, rpc: r.rpc });
  for (const r of results.settle) if (r.rpc) rows.push({ who: r.facilitator, what: `settle ${r.payments} ${r.mining}`, rpc: r.rpc });
  for (const r of results.paced) if (r.rpc) rows.push({ who: r.facilitator, what: `settle one at a time ${paymentOf(r) === "exact EIP-3009" ? "" : `${paymentOf(r)} `}${r.mining}`, rpc: r.rpc });
  if (rows.length === 0) return [];
  // Verify cold first, then the bursts, as the headline reads.
  const rank = (what: string) => (what.startsWith("verify cold") ? 0 : what.includes(results.baseLikeMining ?? "\u0000") ? 1 : 2);
  rows.sort((a, b) => rank(a.what) - rank(b.what));
  const out = [
    "RPC CALLS (counted at a proxy between each facilitator and Anvil, every call of a JSON-RPC batch separately, background polling included; per verify answered, or per payment that reached payTo)",
    table(
      ["facilitator", "measurement", "units", "calls", "per unit", "http req/unit", "top methods per unit"],
      rows.map(({ who, what, rpc }) => [who, what, String(rpc.units), String(rpc.calls), fixed(rpc.callsPerUnit, 2), fixed(rpc.httpRequestsPerUnit, 2), topMethods(rpc)]),
    ),
  ];
  for (const r of results.settle.filter((row) => row.facilitator === "ours" && row.mining === results.baseLikeMining && row.rpc)) {
    out.push(`  ours, burst of ${r.payments} (${r.mining}): ${fixed(r.rpc!.callsPerUnit, 2)} RPC calls per settled payment (goal ≤ 2, amortised: ${verdict(r.rpc!.callsPerUnit <= 2)})`);
  }
  if (results.rpcProxyCpuMs !== undefined) out.push(`  the proxy process used ${fixed(results.rpcProxyCpuMs / 1000, 1)} s of CPU over the whole run`);
  return out;
}

/**
 * Beside the cold verify row: what one recovery of a never-seen signature costs each way
 * (bench/recover-options.mjs), and the cold verify targets of issue 15 against this run.
 */
function formatRecoveryOptions(options: RecoveryOptions, verify: VerifyResult[]): string[] {
  const out = [
    `SIGNER RECOVERY OPTIONS (bench/recover-options.mjs, alone before the phases, load ${fixed(options.loadAverageAtStart)} → ${fixed(options.loadAverageAtEnd)}; µs per recovery of a never-seen signature)`,
    table(
      ["option", "where", "n", "wall µs", "main-thread cpu µs", "process cpu µs", "cpu / viem inline"],
      options.rows.map((row) => [
        row.option,
        row.where,
        String(row.recoveries),
        fixed(row.wallMicros),
        fixed(row.mainThreadCpuMicros),
        fixed(row.processCpuMicros),
        fixed(row.cpuVsViemInline, 3),
      ]),
    ),
    "  ours verifies with recoverAddressFast inline (viem on RecoverPool workers only when the binding does not load); the reference recovers with viem inline.",
  ];
  const cold = (who: Facilitator) => verify.find((row) => row.facilitator === who && row.payloads === "cold");
  const ours = cold("ours");
  const reference = cold("reference");
  if (ours && reference) {
    const speedup = ours.requestsPerSecond / reference.requestsPerSecond;
    out.push(
      `  cold verify c=${ours.concurrency} targets: req/s ours/reference ${fixed(speedup, 2)}× (≥ 5×: ${verdict(speedup >= 5)}), ` +
        `p99 ${fixed(ours.latencyMs.p99, 0)} ms (≤ 100: ${verdict(ours.latencyMs.p99 <= 100)}), ` +
        `facilitator CPU ${fixed(ours.cpuMsPerVerify, 2)} ms/verify (≤ 1: ${verdict(ours.cpuMsPerVerify <= 1)})`,
    );
  }
  return out;
}
