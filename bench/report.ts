/** Result shapes of the benchmark, the ratios (ours / reference) and the printed table. */
import { cpus, loadavg, totalmem } from "node:os";

/** "reference-nm": the reference with viem's nonceManager on its signer (settle only). */
export type Facilitator = "ours" | "reference" | "reference-nm";

export interface VerifyResult {
  facilitator: Facilitator;
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
}

export interface SettleResult {
  facilitator: Facilitator;
  mining: "automine" | "block-time 1 s";
  payments: number;
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
  avgGasUsed: number;
  /** CPU of the facilitator process, of Postgres and of Anvil during the burst, per successful settlement. */
  cpuMsPerSettlement: number;
  postgresCpuMsPerSettlement: number;
  anvilCpuMsPerSettlement: number;
  /** Reference only: why its transaction sends failed (the SDK reports them all as transaction_failed). */
  sendErrors?: Record<string, number>;
}

export interface Resources {
  facilitator: Facilitator;
  phase: string;
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
  ours: number;
  reference: number;
  /** ours / reference. */
  ratio: number;
  better: "higher" | "lower";
}

export interface BenchResults {
  machine: MachineInfo;
  settings: Record<string, unknown>;
  verify: VerifyResult[];
  settle: SettleResult[];
  resources: Resources[];
  ratios: Ratio[];
  notes: string[];
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

function ratio(metric: string, ours: number, reference: number, better: Ratio["better"]): Ratio {
  return { metric, ours: round2(ours), reference: round2(reference), ratio: reference === 0 ? Number.NaN : round2(ours / reference), better };
}

export function computeRatios(verify: VerifyResult[], settle: SettleResult[], resources: Resources[]): Ratio[] {
  const ratios: Ratio[] = [];
  const pair = <T extends { facilitator: Facilitator }>(rows: T[], match: (row: T) => boolean) => ({
    ours: rows.find((row) => row.facilitator === "ours" && match(row)),
    reference: rows.find((row) => row.facilitator === "reference" && match(row)),
  });
  for (const concurrency of [...new Set(verify.map((row) => row.concurrency))]) {
    const { ours, reference } = pair(verify, (row) => row.concurrency === concurrency);
    if (!ours || !reference) continue;
    ratios.push(ratio(`verify c=${concurrency} req/s`, ours.requestsPerSecond, reference.requestsPerSecond, "higher"));
    ratios.push(ratio(`verify c=${concurrency} p50 ms`, ours.latencyMs.p50, reference.latencyMs.p50, "lower"));
    ratios.push(ratio(`verify c=${concurrency} p99 ms`, ours.latencyMs.p99, reference.latencyMs.p99, "lower"));
  }
  const sum = (rows: VerifyResult[], pick: (row: VerifyResult) => number) => rows.reduce((acc, row) => acc + pick(row), 0);
  const perVerify = (who: Facilitator, pick: (row: VerifyResult) => number) => {
    const rows = verify.filter((row) => row.facilitator === who);
    return sum(rows, (row) => pick(row) * row.requests) / Math.max(1, sum(rows, (row) => row.requests));
  };
  if (verify.length > 0) {
    ratios.push(ratio("CPU ms per verify (facilitator process)", perVerify("ours", (r) => r.cpuMsPerVerify), perVerify("reference", (r) => r.cpuMsPerVerify), "lower"));
    ratios.push(
      ratio(
        "CPU ms per verify (facilitator + Postgres + Anvil)",
        perVerify("ours", (r) => r.cpuMsPerVerify + r.postgresCpuMsPerVerify + r.anvilCpuMsPerVerify),
        perVerify("reference", (r) => r.cpuMsPerVerify + r.postgresCpuMsPerVerify + r.anvilCpuMsPerVerify),
        "lower",
      ),
    );
  }
  for (const other of ["reference", "reference-nm"] as const) {
    for (const row of settle.filter((r) => r.facilitator === "ours")) {
      const reference = settle.find((r) => r.facilitator === other && r.mining === row.mining && r.payments === row.payments);
      if (!reference) continue;
      const label = `settle ${row.payments} ${row.mining}${other === "reference" ? "" : " vs reference-nm"}`;
      ratios.push(ratio(`${label} success rate`, row.successRate, reference.successRate, "higher"));
      ratios.push(ratio(`${label} settled/s`, row.settledPerSecond, reference.settledPerSecond, "higher"));
      ratios.push(ratio(`${label} p50 ms (successes)`, row.successLatencyMs.p50, reference.successLatencyMs.p50, "lower"));
      ratios.push(ratio(`${label} p99 ms (successes)`, row.successLatencyMs.p99, reference.successLatencyMs.p99, "lower"));
    }
  }
  const gas = (who: Facilitator) => {
    const rows = settle.filter((row) => row.facilitator === who && row.successes > 0);
    return rows.reduce((acc, row) => acc + row.avgGasUsed * row.successes, 0) / Math.max(1, rows.reduce((acc, row) => acc + row.successes, 0));
  };
  // Against reference-nm: it settles as many payments as ours. The first payment to a fresh payTo costs
  // ~17k gas more (a zero balance slot written), so the reference's few successes would skew the mean.
  const gasReference: Facilitator = settle.some((row) => row.facilitator === "reference-nm" && row.successes > 0) ? "reference-nm" : "reference";
  if (settle.length > 0) ratios.push(ratio(`gas per settlement (vs ${gasReference})`, gas("ours"), gas(gasReference), "lower"));
  const rss = (who: Facilitator) => Math.max(...resources.filter((row) => row.facilitator === who).map((row) => row.peakRssMb));
  if (resources.length > 0) ratios.push(ratio("peak RSS MiB", rss("ours"), rss("reference"), "lower"));
  return ratios;
}

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : "—");

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ");
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function formatResults(results: BenchResults): string {
  const out: string[] = [];
  const m = results.machine;
  out.push(`x402 facilitator benchmark — ${m.date}`);
  out.push(`${m.cpuModel}, ${m.cores} cores, ${m.memoryGb} GiB, Node ${m.node}; load average at start ${m.loadAverageAtStart.join(" ")}`);
  if (results.verify.length > 0) {
    out.push("", "VERIFY (autocannon, fixed duration, pre-signed valid payments rotated)");
    out.push(
      table(
        ["facilitator", "conc", "req/s", "p50 ms", "p99 ms", "valid", "other", "err", "cpu ms/req", "pg ms/req", "anvil ms/req"],
        results.verify.map((r) => [
          r.facilitator,
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
        ]),
      ),
    );
  }
  if (results.settle.length > 0) {
    out.push("", "SETTLE (N distinct payments sent at once, one signer key; latencies in ms; CPU in ms per successful settlement)");
    out.push(
      table(
        ["facilitator", "mining", "N", "ok", "ok %", "settled/s", "p50 ok", "p99 ok", "p50 all", "wall s", "on chain", "txs", "gas/tx", "cpu/ok", "pg/ok", "anvil/ok"],
        results.settle.map((r) => [
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
          String(r.signerTransactionsMined),
          fixed(r.avgGasUsed, 0),
          fixed(r.cpuMsPerSettlement, 1),
          fixed(r.postgresCpuMsPerSettlement, 1),
          fixed(r.anvilCpuMsPerSettlement, 1),
        ]),
      ),
    );
    const failing = results.settle.filter((r) => Object.keys(r.failures).length > 0);
    for (const r of failing) {
      const reasons = Object.entries(r.failures)
        .sort((a, b) => b[1] - a[1])
        .map(([reason, count]) => `${count}× ${reason}`)
        .join("; ");
      out.push(`  not settled — ${r.facilitator}, ${r.payments}, ${r.mining}: ${reasons}`);
      const sends = Object.entries(r.sendErrors ?? {}).map(([message, count]) => `${count}× ${message}`);
      if (sends.length > 0) out.push(`    send errors behind them: ${sends.join("; ")}`);
    }
  }
  if (results.resources.length > 0) {
    out.push("", "PROCESSES");
    out.push(
      table(
        ["facilitator", "phase", "peak RSS MiB", "RSS at end MiB", "CPU s total"],
        results.resources.map((r) => [r.facilitator, r.phase, fixed(r.peakRssMb), fixed(r.rssAtEndMb), fixed(r.cpuMsTotal / 1000, 1)]),
      ),
    );
  }
  if (results.ratios.length > 0) {
    out.push("", "RATIOS (ours / reference)");
    out.push(
      table(
        ["metric", "ours", "reference", "ratio", "better"],
        results.ratios.map((r) => [r.metric, fixed(r.ours, 2), fixed(r.reference, 2), fixed(r.ratio, 2), r.better]),
      ),
    );
  }
  for (const note of results.notes) out.push(`note: ${note}`);
  out.push(`(run took ${results.durationSeconds.toFixed(0)} s)`);
  return out.join("\n");
}
