import { DependencyUnavailableError } from "../errors.js";
import { claimedKeyText, normalizeKey, type AuthorizationKey } from "./settlements-repo.js";

/**
 * Verify's "does Postgres hold a live claim on this authorization?", many verifies per query.
 *
 * Under load every /verify asked Postgres on its own: one pooled connection, one round trip, one
 * statement per payment — measured under the bench's cold verify load (64 at once), the largest
 * share of the facilitator's CPU after signature recovery (the socket write that wakes the backend,
 * the pool, the protocol parser), plus the backend's own CPU and connections queued behind the
 * pool's 20. Here at most `queriesInFlightMax` queries run at a time; the keys asked for while they
 * run wait for the next one, which takes up to `keysPerQueryMax` of them at once
 * (SettlementsRepository.claimedAmong: the same rule, one statement).
 *
 * Still exact, never a cache: every answer comes from a query that started after it was asked for
 * (a key joins only a query not yet sent), so it is what a query of its own sent at that moment or
 * later would say. Nothing is timed: a lone verify is sent at once; batches form only when verifies
 * queue behind running queries, i.e. exactly under load. A failed query fails every verify in it
 * (each answers 503, as its own query failing would). Bounded: at most `queuedKeysMax` keys wait
 * (more are answered 503 at once: Postgres is not keeping up — a request timeout closes the
 * socket but not the handler, so HTTP alone does not bound them), and each query has the pool's
 * statement timeout, so the queue always drains.
 */
export interface ClaimReadsOptions {
  /** Keys in one query at most. */
  keysPerQueryMax: number;
  /** Queries in flight at most; the rest of the keys wait for one of them to finish. */
  queriesInFlightMax: number;
  /** Keys waiting for a query at most; past it a verify is answered 503 instead of queueing. */
  queuedKeysMax: number;
}

// 4,096 waiting keys: ~32 queries' worth; with a 5 s statement timeout that is already a minute of backlog.
export const defaultClaimReadsOptions: ClaimReadsOptions = { keysPerQueryMax: 64, queriesInFlightMax: 2, queuedKeysMax: 4_096 };

interface Waiting {
  key: AuthorizationKey;
  resolve(claimed: boolean): void;
  reject(error: unknown): void;
}

export class ClaimReads {
  private queue: Waiting[] = [];
  private inFlight = 0;
  /** For tests and diagnostics: queries sent and keys answered. */
  private queries = 0;
  private keys = 0;

  constructor(
    /** The normalised keys (claimedKeyText) among `keys` that a live claim holds: SettlementsRepository.claimedAmong. */
    private readonly claimedAmong: (keys: readonly AuthorizationKey[]) => Promise<ReadonlySet<string>>,
    private readonly options: ClaimReadsOptions = defaultClaimReadsOptions,
  ) {
    for (const [name, value] of Object.entries(options)) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`ClaimReads ${name} must be a positive integer, got ${value}`);
    }
  }

  isClaimed(key: AuthorizationKey): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      if (this.queue.length >= this.options.queuedKeysMax) {
        reject(new DependencyUnavailableError("postgres", `Postgres is not keeping up: ${this.queue.length} verifies wait for a claim read; retry shortly`));
        return;
      }
      this.queue.push({ key: normalizeKey(key), resolve, reject });
      this.pump();
    });
  }

  stats(): { queries: number; keys: number; queued: number; inFlight: number } {
    return { queries: this.queries, keys: this.keys, queued: this.queue.length, inFlight: this.inFlight };
  }

  private pump(): void {
    while (this.inFlight < this.options.queriesInFlightMax && this.queue.length > 0) {
      const group = this.queue.splice(0, this.options.keysPerQueryMax);
      this.inFlight += 1;
      this.queries += 1;
      this.keys += group.length;
      void this.read(group);
    }
  }

  private async read(group: Waiting[]): Promise<void> {
    try {
      const claimed = await this.claimedAmong(group.map((waiting) => waiting.key));
      for (const waiting of group) waiting.resolve(claimed.has(claimedKeyText(waiting.key)));
    } catch (error) {
      for (const waiting of group) waiting.reject(error);
    } finally {
      this.inFlight -= 1;
      this.pump();
    }
  }
}
