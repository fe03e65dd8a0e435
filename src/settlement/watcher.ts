import { parseTransaction, type Hex } from "viem";
import type { ChainRegistry } from "../chain/registry.js";
import type { SignerPool } from "../chain/signers.js";
import type { Clock } from "../clock.js";
import type { Limits } from "../config.js";
import { watcherBatchMax, watcherLeaseMs } from "../limits.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Database } from "../store/db.js";
import type { SettlementRow } from "../store/schema.js";
import type { SettlementsRepository } from "../store/settlements-repo.js";
import { broadcastRawTransaction } from "./prepare-sign-send.js";
import type { Logger, SettlementEngine } from "./engine.js";
import { feeBumpedReplacement } from "./fee-bump.js";
import { healNonceGaps } from "./nonce-gaps.js";
import type { Metrics } from "../metrics.js";

export interface WatcherDeps {
  db: Database;
  repo: SettlementsRepository;
  chains: ChainRegistry;
  signers: SignerPool;
  engine: SettlementEngine;
  /** Wall clock: a row's broadcast time comes from Postgres. */
  clock: Pick<Clock, "nowMs">;
  log: Logger;
  metrics?: Pick<Metrics, "reconcilerAction">;
  limits: Pick<Limits, "reconcileIntervalMs" | "stuckAfterMs" | "feeBumpPercent" | "feeBumpsMax" | "maxFeePerGasWei" | "nonceGapHealAfterMs">;
  /** Rows leased per pass; the rest wait for the next pass. Default watcherBatchMax. */
  batchSize?: number;
  /** How long one pass owns a row before another instance may take it. Default watcherLeaseMs. */
  leaseMs?: number;
}

/**
 * The reconciler. At boot and every reconcileIntervalMs it finishes settlements nobody waits on
 * any more (after settlement_pending, a crash or an RPC outage) and fills tx-nonce holes. Rows are
 * leased (FOR UPDATE SKIP LOCKED), so several instances share the work without touching one row
 * twice at a time.
 */
export class SettlementWatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(private readonly deps: WatcherDeps) {}

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.running = this.runOnce()
        .catch((error: unknown) => this.deps.log.warn({ err: error }, "watcher pass failed"))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.deps.limits.reconcileIntervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass; returns how many rows reached a final status. */
  async runOnce(): Promise<number> {
    const rows = await this.deps.repo.leaseUnfinished(this.deps.batchSize ?? watcherBatchMax, this.deps.leaseMs ?? watcherLeaseMs, 0);
    const finished = await Promise.all(
      rows.map(async (row) => {
        const done = await this.finishRow(row).catch((error: unknown) => {
          this.deps.log.warn({ settlementId: row.id, err: error }, "watcher could not finish row");
          return false;
        });
        // Not final yet: hand the row back so the next pass (here or on another instance) looks again.
        if (!done) await this.deps.repo.releaseLease(row.id).catch(() => undefined);
        return done;
      }),
    );
    const filled = await healNonceGaps(this.deps).catch((error: unknown) => {
      this.deps.log.warn({ err: error }, "could not fill nonce gaps");
      return 0;
    });
    if (filled > 0) {
      this.deps.log.warn({ filled }, "filled tx-nonce gaps with 0-value self-transfers");
      this.deps.metrics?.reconcilerAction("gap_filled", filled);
    }
    const finishedCount = finished.filter(Boolean).length;
    if (finishedCount > 0) this.deps.metrics?.reconcilerAction("finalized", finishedCount);
    return finishedCount;
  }

  private async finishRow(row: SettlementRow): Promise<boolean> {
    const { repo, chains, engine } = this.deps;
    if (row.status === "claimed") {
      // Claimed but never signed: nothing reached the chain, so the authorization is free again.
      const released = await repo.failClaim(row.id, { errorReason: ReasonCode.unexpectedSettleError, errorMessage: "abandoned before signing" }, { attempt: row.attempt });
      if (!released) return false; // signed meanwhile by the request that held it: the next pass follows that
      await engine.releaseGas(released, 0n);
      this.deps.metrics?.reconcilerAction("released");
      return true;
    }
    if (!chains.get(row.chainId) || !row.txHash || !row.rawTx) return false;
    const step = await engine.advance(row, { waitMs: 0, claimSuccess: false });
    if (step.kind !== "unknown") return true;
    if (step.row.status === "submitted") await this.unstick(step.row);
    return false;
  }

  /**
   * No receipt yet. Once the tx has waited stuckAfterMs it is replaced at the same nonce with
   * higher fees when it is underpriced (its fee cap is below the latest base fee: Anvil drops such
   * transactions, geth queues them) or when the node holds it without mining it (tip too low).
   * Otherwise the node lost it: the same bytes are sent again.
   */
  private async unstick(row: SettlementRow): Promise<void> {
    const { repo, chains, signers, limits, log } = this.deps;
    const sentAtMs = (row.lastBroadcastAt ?? row.broadcastAt ?? row.updatedAt).getTime();
    if (this.deps.clock.nowMs() - sentAtMs < limits.stuckAfterMs) return;
    const client = chains.get(row.chainId)!.publicClient;
    const [inPool, latest] = await Promise.all([
      client.getTransaction({ hash: row.txHash as Hex }).then(
        () => true,
        () => false,
      ),
      client.getBlock({ blockTag: "latest" }),
    ]);
    const offeredMaxFee = parseTransaction(row.rawTx as Hex).maxFeePerGas ?? 0n;
    const underpriced = latest.baseFeePerGas !== null && offeredMaxFee < latest.baseFeePerGas;
    if (!inPool && !underpriced) {
      const resent = await broadcastRawTransaction(client, row.rawTx as Hex);
      if (resent.kind !== "rejected") {
        await repo.touchBroadcast(row.id);
        this.deps.metrics?.reconcilerAction("resent");
        return;
      }
      // Nonce consumed: one of this row's transactions (or another) was mined; the next pass judges it.
      if (resent.nonceConsumed) return;
    }
    const signer = row.signer ? signers.byAddress(row.signer) : undefined;
    if (!signer) return;
    const replacement = await feeBumpedReplacement(row, signer, limits);
    if ("refused" in replacement) {
      log.warn({ settlementId: row.id, txHash: row.txHash, reason: replacement.refused }, "stuck settlement not bumped");
      return;
    }
    const persisted = await repo.recordReplacement(row, replacement);
    if (!persisted) return;
    const sent = await broadcastRawTransaction(client, replacement.rawTx);
    this.deps.metrics?.reconcilerAction("fee_bumped");
    log.warn({ settlementId: row.id, replaced: row.txHash, txHash: replacement.txHash, feeBumps: persisted.feeBumps, sent: sent.kind }, "stuck settlement replaced with a higher fee");
  }
}
