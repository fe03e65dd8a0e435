import pg from "pg";
import type { Clock } from "../clock.js";

/**
 * How a request that waits for another one's answer learns it without polling Postgres: a duplicate
 * /settle waits for the claimer's verdict on the row (settlement/engine.ts answerExisting), a retry
 * with the same Idempotency-Key for the first request's recorded answer (http/payment-routes.ts).
 *
 * - In this process, the repositories hand every write that may end a wait (the row they got back
 *   from the UPDATE … RETURNING) to `ChangeWaiters.publish`: the waiters of that row take it as
 *   their answer, with no query.
 * - Across instances, the same statement calls `pg_notify(channel, key)` (delivered at its
 *   commit); each instance LISTENs on one dedicated connection outside the pool (`ChangeListener`)
 *   and re-reads a notified key once, for all of its waiters of that key together.
 * - A key with waiters is read once when it gets its first waiter (a change committed between the
 *   waiter's own read and its registration would otherwise go unseen), once after each listener
 *   (re)connect (notifications sent while it was down are lost), and at least every `recheckMs`
 *   (a lost notification, or no listener at all). Never per waiter, never on a short timer.
 * - Bounded: waiters per key and in all; past either, `wait` says `full` at once and the caller
 *   answers without waiting. Every wait ends at its deadline.
 */

/** The NOTIFY channel of settlement rows; the payload is the row's id. */
export const settlementChangedChannel = "settlement_changed";
/** The NOTIFY channel of idempotency records; the payload is idempotencyNotifyKey(id) (store/idempotency-repo.ts). */
export const idempotencyChangedChannel = "idempotency_changed";

interface WarnLog {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
}

/** How a wait ended: the awaited value, the deadline (with the last value seen), or no room to wait. */
export type WaitEnd<T> = { kind: "done"; value: T } | { kind: "deadline"; value: T } | { kind: "full" };

export interface ChangeWaitersOptions<T> {
  /** Reads a key's current value: one query, shared by every waiter of the key in this process. */
  load(key: string): Promise<T>;
  /** Waiters of one key at most; more are answered `full`. */
  perKeyMax: number;
  /** Waiters in all at most; more are answered `full`. */
  totalMax: number;
  /** A key with waiters is read again at least this often, notified or not. */
  recheckMs: number;
  clock: Pick<Clock, "nowMs">;
  log?: WarnLog;
}

interface Waiter<T> {
  done(value: T): boolean;
  latest: T;
  finish(end: WaitEnd<T>): void;
}

interface Entry<T> {
  waiters: Set<Waiter<T>>;
  /** The last value published or read for the key while it had waiters. */
  latest?: { value: T };
  reading: boolean;
  /** A change was signalled during the read in flight: read once more after it. */
  readAgain: boolean;
  /** A write was published during the read in flight: that read's value may be older, drop it. */
  publishedDuringRead: boolean;
  recheck: ReturnType<typeof setTimeout> | undefined;
}

/** What the waits of one kind (settlement rows, idempotency records) cost so far: for tests and logs. */
export interface ChangeWaitersStats {
  /** Waiting now. */
  waiting: number;
  /** Waits begun (registered) so far. */
  waits: number;
  /** Waits refused at a cap. */
  full: number;
  /** Waits that ended at their deadline (the rest ended done, or at close). */
  deadline: number;
  /** Reads, by what caused them. */
  reads: { first: number; notified: number; recheck: number; reconnect: number };
  /** Values handed to waiters from a write in this process (no read). */
  published: number;
}

type ReadCause = keyof ChangeWaitersStats["reads"];

export class ChangeWaiters<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private waiting = 0;
  private closed = false;
  private readonly counts: ChangeWaitersStats = { waiting: 0, waits: 0, full: 0, deadline: 0, reads: { first: 0, notified: 0, recheck: 0, reconnect: 0 }, published: 0 };

  constructor(private readonly options: ChangeWaitersOptions<T>) {}

  /**
   * Waits until `done` holds for the key's value, or until `untilMs` (wall clock). `initial` is
   * the value the caller read last; it is what a deadline answers with when nothing came since.
   */
  wait(key: string, initial: T, done: (value: T) => boolean, untilMs: number): Promise<WaitEnd<T>> {
    const remainingMs = untilMs - this.options.clock.nowMs();
    if (remainingMs <= 0 || this.closed) return Promise.resolve({ kind: "deadline", value: initial });
    let entry = this.entries.get(key);
    if (this.waiting >= this.options.totalMax || (entry && entry.waiters.size >= this.options.perKeyMax)) {
      this.counts.full += 1;
      return Promise.resolve({ kind: "full" });
    }
    // A value published or read since the key got its first waiter is at least as new as ours.
    if (entry?.latest && done(entry.latest.value)) return Promise.resolve({ kind: "done", value: entry.latest.value });
    const isFirst = entry === undefined;
    if (!entry) {
      entry = { waiters: new Set(), reading: false, readAgain: false, publishedDuringRead: false, recheck: undefined };
      this.entries.set(key, entry);
      this.scheduleRecheck(key, entry);
    }
    const owner = entry;
    return new Promise<WaitEnd<T>>((resolve) => {
      const waiter: Waiter<T> = {
        done,
        latest: initial,
        finish: (end) => {
          if (!owner.waiters.delete(waiter)) return;
          clearTimeout(deadline);
          this.waiting -= 1;
          if (owner.waiters.size === 0) this.drop(key, owner);
          resolve(end);
        },
      };
      const deadline = setTimeout(() => {
        this.counts.deadline += 1;
        waiter.finish({ kind: "deadline", value: waiter.latest });
      }, remainingMs);
      owner.waiters.add(waiter);
      this.waiting += 1;
      this.counts.waits += 1;
      if (isFirst) this.read(key, owner, "first");
    });
  }

  /** A write in this process: its value goes to the key's waiters as it is, no query. */
  publish(key: string, value: T): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.counts.published += 1;
    if (entry.reading) entry.publishedDuringRead = true;
    this.deliver(entry, value);
  }

  /** The key changed elsewhere (a notification): one read, shared by its waiters in this process. */
  changed(key: string): void {
    const entry = this.entries.get(key);
    if (entry) this.read(key, entry, "notified");
  }

  /** Notifications may have been lost (the listener reconnected): every key with waiters is read once. */
  changedAll(): void {
    for (const [key, entry] of this.entries) this.read(key, entry, "reconnect");
  }

  stats(): ChangeWaitersStats {
    return { ...this.counts, waiting: this.waiting, reads: { ...this.counts.reads } };
  }

  /** Ends every wait now (at its "deadline", with the last value seen) and takes no more. */
  close(): void {
    this.closed = true;
    for (const entry of [...this.entries.values()]) for (const waiter of [...entry.waiters]) waiter.finish({ kind: "deadline", value: waiter.latest });
  }

  private read(key: string, entry: Entry<T>, cause: ReadCause): void {
    if (entry.reading) {
      entry.readAgain = true;
      return;
    }
    entry.reading = true;
    entry.publishedDuringRead = false;
    this.counts.reads[cause] += 1;
    this.options
      .load(key)
      .then(
        (value) => {
          if (!entry.publishedDuringRead) this.deliver(entry, value);
        },
        (error: unknown) => {
          // The next notification, recheck or the waiter's deadline tries again; nothing waits forever.
          this.options.log?.warn({ err: error, key }, "could not read a value that requests wait on");
        },
      )
      .finally(() => {
        entry.reading = false;
        if (entry.readAgain && this.entries.get(key) === entry) {
          entry.readAgain = false;
          this.read(key, entry, "notified");
        }
      });
  }

  private deliver(entry: Entry<T>, value: T): void {
    entry.latest = { value };
    for (const waiter of [...entry.waiters]) {
      waiter.latest = value;
      if (waiter.done(value)) waiter.finish({ kind: "done", value });
    }
  }

  private scheduleRecheck(key: string, entry: Entry<T>): void {
    entry.recheck = setTimeout(() => {
      if (this.entries.get(key) !== entry) return;
      this.read(key, entry, "recheck");
      this.scheduleRecheck(key, entry);
    }, this.options.recheckMs);
  }

  private drop(key: string, entry: Entry<T>): void {
    clearTimeout(entry.recheck);
    if (this.entries.get(key) === entry) this.entries.delete(key);
  }
}

export interface ChangeListenerOptions {
  /** A new client for each connection attempt: a connection of its own, never one of the pool's. */
  connect(): pg.Client;
  /** The channels to LISTEN on, each with what a notification's payload means. */
  channels: Record<string, (payload: string) => void>;
  /** After each (re)connect, once LISTENing: notifications sent while we were not are lost. */
  onListening(): void;
  log: WarnLog;
  /** Reconnect delays: from initialMs, doubled each failed attempt, up to maxMs (with jitter). */
  backoff: { initialMs: number; maxMs: number };
}

/**
 * One LISTEN connection per instance, outside the pool (a pooled connection cannot keep LISTENing:
 * it goes back to the pool). When it is lost (Postgres restarted, the backend terminated, the
 * network), it reconnects with backoff; until then, waiters rely on their recheck reads.
 */
export class ChangeListener {
  private client: pg.Client | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;
  private closed = false;
  private connects = 0;
  private pid: number | undefined;

  constructor(private readonly options: ChangeListenerOptions) {}

  /** Starts connecting in the background; never throws. */
  start(): void {
    if (this.closed || this.client || this.retry) return;
    void this.connectOnce();
  }

  /** True while LISTENing. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  /** The Postgres backend pid of the LISTEN connection (pg_stat_activity.pid) while listening. */
  get backendPid(): number | undefined {
    return this.client ? this.pid : undefined;
  }

  /** Successful connects so far (the first one included). */
  get connections(): number {
    return this.connects;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.retry = undefined;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connectOnce(): Promise<void> {
    const client = this.options.connect();
    let lost = false;
    const onLost = (error?: Error) => {
      if (lost) return;
      lost = true;
      const wasListening = this.client === client;
      if (wasListening) this.client = undefined;
      client.end().catch(() => undefined);
      if (this.closed) return;
      if (wasListening) this.options.log.warn({ err: error }, "Postgres LISTEN connection lost; reconnecting (waiting requests re-read their rows meanwhile)");
      this.scheduleRetry();
    };
    client.on("error", onLost);
    client.on("end", () => onLost());
    client.on("notification", (message) => {
      const handler = this.options.channels[message.channel];
      if (handler && message.payload !== undefined) handler(message.payload);
    });
    let pid: number | undefined;
    try {
      await client.connect();
      // Our own constant channel names; LISTEN takes no parameters.
      for (const channel of Object.keys(this.options.channels)) await client.query(`LISTEN "${channel}"`);
      pid = (await client.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]?.pid;
    } catch (error) {
      if (this.failures === 0 && !this.closed) this.options.log.warn({ err: error }, "could not LISTEN on Postgres; retrying with backoff (waiting requests re-read their rows meanwhile)");
      onLost(error as Error);
      return;
    }
    if (lost) return;
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    if (this.failures > 0) this.options.log.info({ attempts: this.failures }, "Postgres LISTEN connection restored");
    this.failures = 0;
    this.client = client;
    this.pid = pid;
    this.connects += 1;
    this.options.onListening();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retry) return;
    const { initialMs, maxMs } = this.options.backoff;
    const delayMs = Math.min(maxMs, initialMs * 2 ** Math.min(this.failures, 20));
    this.failures += 1;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (!this.closed) void this.connectOnce();
    }, delayMs * (0.5 + Math.random() / 2));
  }
}
