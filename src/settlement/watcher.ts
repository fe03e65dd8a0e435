import type { Hex } from "viem";
import type { ChainRegistry } from "../chain/registry.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { SettlementRow } from "../store/schema.js";
import type { SettlementsRepository } from "../store/settlements-repo.js";
import { broadcastRawTransaction } from "./broadcast.js";
import { chainVerdict } from "./chain-verdict.js";
import type { Logger, SettlementEngine } from "./engine.js";

export interface WatcherDeps {
  repo: SettlementsRepository;
  chains: ChainRegistry;
  engine: SettlementEngine;
  log: Logger;
  intervalMs: number;
  /** Rows leased per pass; the rest wait for the next pass. */
  batchSize?: number;
  /** How long one pass owns a row before another instance may take it. */
  leaseMs?: number;
}

/**
 * Finishes settlements nobody is waiting on any more: after settlement_pending, after a crash,
 * after an RPC outage. Rows are leased (FOR UPDATE SKIP LOCKED), so several instances share the
 * work without touching one row twice at a time.
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
        .catch((error: unknown) => this.deps.log.warn({ error: String(error) }, "watcher pass failed"))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.deps.intervalMs);
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
    const rows = await this.deps.repo.leaseUnfinished(this.deps.batchSize ?? 50, this.deps.leaseMs ?? 30_000, 0);
    const finished = await Promise.all(rows.map((row) => this.finishRow(row).catch((error: unknown) => {
      this.deps.log.warn({ settlementId: row.id, error: String(error) }, "watcher could not finish row");
      return false;
    })));
    return finished.filter(Boolean).length;
  }

  private async finishRow(row: SettlementRow): Promise<boolean> {
    const { repo, chains, engine } = this.deps;
    if (row.status === "claimed") {
      // Claimed but never signed: nothing reached the chain, so the authorization is free again.
      await repo.transition(row.id, "failed", { errorReason: ReasonCode.unexpectedSettleError, errorMessage: "abandoned before signing", leaseUntil: null });
      return true;
    }
    const client = chains.get(row.chainId)?.publicClient;
    if (!client || !row.txHash || !row.rawTx) return false;
    if (row.status === "signed") {
      // Persisted before broadcast: sending the same bytes again is harmless ("already known").
      const broadcast = await broadcastRawTransaction(client, row.rawTx as Hex);
      if (broadcast.kind === "accepted") await repo.markBroadcast(row.id);
    }
    const verdict = await chainVerdict(client, row, 0);
    if (verdict.kind === "unknown") return false;
    await engine.finalize(row, verdict);
    return true;
  }
}
