import type { Address } from "viem";
import type { ChainRegistry } from "../chain/registry.js";
import type { Clock } from "../clock.js";
import type { Limits } from "../config.js";
import type { ResolvedPayment } from "../exact-evm/resolve.js";
import type { Metrics } from "../metrics.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Rejection } from "../protocol/types.js";
import { DenylistFile, type LoadedDenylist } from "./denylist.js";
import { OracleUnavailableError, SanctionsOracle } from "./oracle.js";

/**
 * Sanctions screening of a payment's payer (`authorization.from`) and payee (`payTo`), at /verify
 * and at /settle before anything is claimed or signed (README, *Security model*):
 * 1. the operator's denylist (SANCTIONS_DENYLIST_FILE), in memory;
 * 2. the network's sanctions oracle, when one is configured (oracle.ts: cached per block).
 * A hit is a 200 outcome `payer_sanctioned` / `pay_to_sanctioned` (the payer first when both are).
 * An oracle that cannot answer never makes a 5xx: with SANCTIONS_ORACLE_FAILURE=closed (the
 * default) the payment is refused with `sanctions_screening_unavailable`, with `open` it passes;
 * either way it is logged (at most once a minute per network) and counted.
 */

export type OracleFailureMode = "closed" | "open";

/** The screening settings of Config (loaded by screening/config.ts). */
export interface ScreeningConfig {
  /** SANCTIONS_DENYLIST_FILE, read at start. */
  denylist?: { path: string; loaded: LoadedDenylist };
  /** SANCTIONS_ORACLE_FAILURE. */
  oracleFailure: OracleFailureMode;
}

export interface Screening {
  /** undefined: neither address is sanctioned. Never throws. */
  screen(payment: ResolvedPayment): Promise<Rejection | undefined>;
  /** The denylist in force, if any (tests and operators' tooling may ask it to check now). */
  denylist: DenylistFile | undefined;
  /** Stops the denylist reloads. */
  close(): void;
}

interface Log {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

export interface ScreeningDeps {
  config: ScreeningConfig | undefined;
  chains: ChainRegistry;
  clock: Pick<Clock, "monotonicMs">;
  limits: Pick<Limits, "sanctionsDenylistReloadMs">;
  log: Log;
  metrics: Pick<Metrics, "sanctionsScreening" | "sanctionsOracleLookup" | "sanctionsDenylistLoad">;
}

/** An oracle failure is logged at most this often per network (the rest are counted in the metric). */
export const oracleFailureLogIntervalMs = 60_000;

/** undefined when nothing is configured: no denylist, no network with an oracle. */
export function createScreening(deps: ScreeningDeps): Screening | undefined {
  const { config, log, metrics } = deps;
  const oracleFailure = config?.oracleFailure ?? "closed";
  const oracles = new Map<number, { oracle: SanctionsOracle; network: string; failureLog: FailureLog }>();
  for (const handle of deps.chains.all()) {
    const address = handle.config.sanctionsOracle;
    if (!address) continue;
    const network = handle.config.network;
    const oracle = new SanctionsOracle(address, handle.publicClient, (result) => metrics.sanctionsOracleLookup(network, result));
    oracles.set(handle.config.chainId, { oracle, network, failureLog: new FailureLog(deps.clock) });
  }
  const denylist = config?.denylist
    ? new DenylistFile(config.denylist.path, config.denylist.loaded, {
        loaded: (entries) => {
          metrics.sanctionsDenylistLoad("loaded", entries);
          log.info({ path: config.denylist!.path, entries }, "sanctions denylist reloaded");
        },
        failed: (message, entriesKept) => {
          metrics.sanctionsDenylistLoad("failed");
          log.error({ path: config.denylist!.path, error: message, entriesKept }, "SANCTIONS_DENYLIST_FILE could not be reloaded: the last good list stays in force");
        },
      })
    : undefined;
  if (!denylist && oracles.size === 0) return undefined;
  if (denylist) {
    metrics.sanctionsDenylistLoad("loaded", denylist.size);
    denylist.start(deps.limits.sanctionsDenylistReloadMs);
  }

  return {
    denylist,
    close: () => denylist?.stop(),
    screen: async (payment) => {
      const network = payment.network.network;
      const payer = payment.request.authorization.from;
      const payTo = payment.request.requirements.payTo;
      if (denylist) {
        const listed = denylist.has(payer) ? "payer" : denylist.has(payTo) ? "payTo" : undefined;
        metrics.sanctionsScreening(network, "denylist", listed === "payer" ? "payer_sanctioned" : listed === "payTo" ? "pay_to_sanctioned" : "clear");
        if (listed) return sanctioned(listed, listed === "payer" ? payer : payTo, "is on the operator's sanctions denylist (SANCTIONS_DENYLIST_FILE)");
      }
      const entry = oracles.get(payment.network.chainId);
      if (!entry) return undefined;
      const { oracle } = entry;
      let flags: boolean[];
      try {
        flags = await oracle.flagged(payer.toLowerCase() === payTo.toLowerCase() ? [payer] : [payer, payTo]);
      } catch (error) {
        // Only the oracle not answering is "unavailable" (and may be let through when open): a bug of
        // ours must never turn into an unscreened payment.
        if (!(error instanceof OracleUnavailableError)) throw error;
        const reason = error.message;
        metrics.sanctionsScreening(network, "oracle", oracleFailure === "closed" ? "unavailable_refused" : "unavailable_allowed");
        entry.failureLog.maybe((suppressed) =>
          log.warn(
            { network, oracle: oracle.address, error: reason, mode: oracleFailure, failuresNotLogged: suppressed },
            oracleFailure === "closed" ? "sanctions oracle did not answer: payments refused (SANCTIONS_ORACLE_FAILURE=closed)" : "sanctions oracle did not answer: payments allowed unscreened (SANCTIONS_ORACLE_FAILURE=open)",
          ),
        );
        if (oracleFailure === "open") return undefined;
        return {
          reason: ReasonCode.sanctionsScreeningUnavailable,
          message: `the sanctions oracle ${oracle.address} on ${network} could not be asked (${reason}); payments are refused until it answers: retry later`,
        };
      }
      const payerFlagged = flags[0]!;
      const payToFlagged = flags[flags.length - 1]!;
      metrics.sanctionsScreening(network, "oracle", payerFlagged ? "payer_sanctioned" : payToFlagged ? "pay_to_sanctioned" : "clear");
      if (payerFlagged) return sanctioned("payer", payer, `is flagged by the sanctions oracle ${oracle.address} on ${network}`);
      if (payToFlagged) return sanctioned("payTo", payTo, `is flagged by the sanctions oracle ${oracle.address} on ${network}`);
      return undefined;
    },
  };
}

function sanctioned(who: "payer" | "payTo", address: Address, why: string): Rejection {
  return { reason: who === "payer" ? ReasonCode.payerSanctioned : ReasonCode.payToSanctioned, message: `${who} ${address} ${why}` };
}

/** At most one log line per oracleFailureLogIntervalMs; the next one says how many were not logged. */
class FailureLog {
  #lastMs: number | undefined;
  #suppressed = 0;

  constructor(private readonly clock: Pick<Clock, "monotonicMs">) {}

  maybe(write: (suppressed: number) => void): void {
    const nowMs = this.clock.monotonicMs();
    if (this.#lastMs !== undefined && nowMs - this.#lastMs < oracleFailureLogIntervalMs) {
      this.#suppressed += 1;
      return;
    }
    write(this.#suppressed);
    this.#lastMs = nowMs;
    this.#suppressed = 0;
  }
}
