import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Reconciler actions worth alarming on: fee bumps and gap fills mean fees or nodes misbehave. */
export type ReconcilerAction = "finalized" | "released" | "resent" | "fee_bumped" | "gap_filled";

/** Where a sanctions screening looked (src/screening/). */
export type ScreeningSource = "denylist" | "oracle";
/**
 * What it found: clear, one of the two refusals, or (oracle only) no answer — refused with
 * SANCTIONS_ORACLE_FAILURE=closed, allowed with open.
 */
export type ScreeningOutcome = "clear" | "payer_sanctioned" | "pay_to_sanctioned" | "unavailable_refused" | "unavailable_allowed";

export interface Metrics {
  registry: Registry;
  observeVerify(network: string, outcome: string, seconds: number): void;
  observeSettle(network: string, outcome: string, seconds: number): void;
  reconcilerAction(action: ReconcilerAction, count?: number): void;
  rpcError(network: string, url: string, kind: "http" | "connection" | "timeout"): void;
  signerCannotPay(signer: string): void;
  /** Settlements carried by one settlement transaction as it is signed (1 without batching). */
  observeSettlementTransaction(settlements: number): void;
  /** One screening of a payment's payer and payTo by one source (each configured source counts once per screening). */
  sanctionsScreening(network: string, source: ScreeningSource, outcome: ScreeningOutcome): void;
  /** One address looked up at a sanctions oracle: answered from the per-block cache, or an eth_call. */
  sanctionsOracleLookup(network: string, result: "cached" | "called"): void;
  /** A (re)load of SANCTIONS_DENYLIST_FILE: loaded (with its entry count) or failed (the last good list stays). */
  sanctionsDenylistLoad(outcome: "loaded" | "failed", entries?: number): void;
  /** Gauges read on each scrape (bounded: collectors must answer quickly or give up). */
  onScrape(collect: (gauges: ScrapeGauges) => Promise<void>): void;
  /**
   * Runs the scrape collectors, then renders. (prom-client evaluates metrics concurrently, so a
   * collector hung on one gauge would race the others' snapshots.) A collector that fails is
   * logged to `log`; the scrape still answers, its gauges as they were.
   */
  render(log: { warn(object: object, message?: string): void }): Promise<string>;
}

export interface ScrapeGauges {
  unfinishedSettlements: Gauge<"status">;
  signerBalanceWei: Gauge<"network" | "signer">;
  settlementsInFlight: Gauge<"signer">;
  transactionsInFlight: Gauge<"signer">;
}

const latencyBucketsSeconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];

/**
 * Prometheus metrics (prom-client), one registry per app so tests and several apps in one process
 * do not share counters. Labels are bounded: outcomes are reason codes from one table, networks
 * and signers come from configuration, never from request input.
 */
export function createMetrics(): Metrics {
  const registry = new Registry();
  // prom-client's defaults are already named process_* and nodejs_*: prefixed, x402_process_cpu_…
  collectDefaultMetrics({ register: registry, prefix: "x402_" });
  const verifyTotal = new Counter({ name: "x402_verify_total", help: "POST /verify answers by network and outcome (valid or the reason code)", labelNames: ["network", "outcome"], registers: [registry] });
  const settleTotal = new Counter({ name: "x402_settle_total", help: "POST /settle answers by network and outcome (success or the reason code)", labelNames: ["network", "outcome"], registers: [registry] });
  const verifySeconds = new Histogram({ name: "x402_verify_duration_seconds", help: "POST /verify latency", labelNames: ["network"], buckets: latencyBucketsSeconds, registers: [registry] });
  const settleSeconds = new Histogram({ name: "x402_settle_duration_seconds", help: "POST /settle latency", labelNames: ["network"], buckets: latencyBucketsSeconds, registers: [registry] });
  const reconciler = new Counter({ name: "x402_reconciler_actions_total", help: "What the background watcher did to unfinished settlements", labelNames: ["action"], registers: [registry] });
  const rpcErrors = new Counter({
    name: "x402_rpc_errors_total",
    help: "RPC requests a URL did not serve (kind: http error status, connection failure, timeout), per network and URL (scheme://host)",
    labelNames: ["network", "url", "kind"],
    registers: [registry],
  });
  const cannotPay = new Counter({ name: "x402_signer_cannot_pay_total", help: "Settlements refused because a signer could not pay gas or fees were above the cap", labelNames: ["signer"], registers: [registry] });
  const settlementsPerTx = new Histogram({
    name: "x402_settlements_per_transaction",
    help: "Settlements carried by each signed settlement transaction (SETTLE_BATCH_MAX > 1 batches those queued for one signer)",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
  });
  const screenings = new Counter({
    name: "x402_sanctions_screenings_total",
    help: "Sanctions screenings of a payment's payer and payTo at verify and settle, by network, source (denylist, oracle) and outcome",
    labelNames: ["network", "source", "outcome"],
    registers: [registry],
  });
  const oracleLookups = new Counter({
    name: "x402_sanctions_oracle_lookups_total",
    help: "Addresses looked up at a network's sanctions oracle: cached (same head block) or called (one eth_call)",
    labelNames: ["network", "result"],
    registers: [registry],
  });
  const denylistLoads = new Counter({ name: "x402_sanctions_denylist_loads_total", help: "Loads of SANCTIONS_DENYLIST_FILE (at start and on change): loaded, or failed (the last good list stays)", labelNames: ["outcome"], registers: [registry] });
  const denylistEntries = new Gauge({ name: "x402_sanctions_denylist_entries", help: "Addresses in the denylist in force", registers: [registry] });
  const collectors: Array<(gauges: ScrapeGauges) => Promise<void>> = [];
  const gauges: ScrapeGauges = {
    unfinishedSettlements: new Gauge({ name: "x402_settlements_unfinished", help: "Settlement rows not yet final, by status", labelNames: ["status"], registers: [registry] }),
    signerBalanceWei: new Gauge({
      name: "x402_signer_balance_wei",
      help: "Native balance of each signer per network: alarm before it cannot pay for gas",
      labelNames: ["network", "signer"],
      registers: [registry],
    }),
    settlementsInFlight: new Gauge({ name: "x402_settlements_in_flight", help: "Settlements from their signer's lease until their transaction's verdict on this instance, per signer", labelNames: ["signer"], registers: [registry] }),
    transactionsInFlight: new Gauge({
      name: "x402_transactions_in_flight",
      help: "Settlement transactions between send and verdict on this instance, per signer (all chains; at most IN_FLIGHT_PER_SIGNER_MAX per chain)",
      labelNames: ["signer"],
      registers: [registry],
    }),
  };
  return {
    registry,
    observeVerify: (network, outcome, seconds) => {
      verifyTotal.inc({ network, outcome });
      verifySeconds.observe({ network }, seconds);
    },
    observeSettle: (network, outcome, seconds) => {
      settleTotal.inc({ network, outcome });
      settleSeconds.observe({ network }, seconds);
    },
    reconcilerAction: (action, count = 1) => reconciler.inc({ action }, count),
    rpcError: (network, url, kind) => rpcErrors.inc({ network, url, kind }),
    signerCannotPay: (signer) => cannotPay.inc({ signer }),
    observeSettlementTransaction: (settlements) => settlementsPerTx.observe(settlements),
    sanctionsScreening: (network, source, outcome) => screenings.inc({ network, source, outcome }),
    sanctionsOracleLookup: (network, result) => oracleLookups.inc({ network, result }),
    sanctionsDenylistLoad: (outcome, entries) => {
      denylistLoads.inc({ outcome });
      if (entries !== undefined) denylistEntries.set(entries);
    },
    onScrape: (collect) => collectors.push(collect),
    render: async (log) => {
      await Promise.all(
        collectors.map((collect) =>
          collect(gauges).catch((error: unknown) => {
            log.warn({ err: error }, "a metrics scrape collector failed: its gauges keep their last values");
          }),
        ),
      );
      return registry.metrics();
    },
  };
}
