import { and, eq, sql } from "drizzle-orm";
import type { Database } from "./db.js";
import { idempotencyChangedChannel } from "./notifications.js";
import { postgresSafeJson } from "./postgres-text.js";
import { idempotencyKeys } from "./schema.js";

export type IdempotencyBegin =
  | { kind: "new" }
  | { kind: "recorded"; response: unknown }
  | { kind: "in-progress" }
  | { kind: "mismatch" };

/** The scope of callers without an API key (AUTH=off): they are one tenant, as they are for the policy. */
export const anonymousIdempotencyScope = "";

/**
 * Where one Idempotency-Key lives: the caller (its API key id, or anonymousIdempotencyScope) and
 * the route. Two tenants using the same key string never meet: neither gets the other's recorded
 * answer, nor can take a key before the other uses it. `key` is the header's value (1-255
 * printable ASCII) or a payment-identifier id (16-128 of A-Z a-z 0-9 _ -, a subset), stored as it
 * is: both name one key space (http/payment-routes.ts idempotencyKeyOf). The column is unbounded
 * text; the bounds are the route's.
 */
export interface IdempotencyKeyId {
  scope: string;
  route: "settle";
  key: string;
}

/** What a waiting retry needs of a key's record: its body's hash and the recorded answer (null while running). */
export interface IdempotencyRecord {
  requestHash: string;
  response: unknown;
}

/**
 * The name of a key in notifications and in the waiters' map (store/notifications.ts): (scope,
 * route, key) as one JSON array — at most a few hundred bytes, well within pg_notify's 8,000.
 */
export function idempotencyNotifyKey(id: IdempotencyKeyId): string {
  return JSON.stringify([id.scope, id.route, id.key]);
}

/** The id a notifyKey names (the waiters only ever read keys they made with idempotencyNotifyKey). */
export function idempotencyKeyIdOf(notifyKey: string): IdempotencyKeyId {
  const [scope, route, key] = JSON.parse(notifyKey) as [string, "settle", string];
  return { scope, route, key };
}

/** What a record (or its absence) means to a request with this body. */
export function idempotencyStateOf(record: IdempotencyRecord | undefined, requestHash: string): IdempotencyBegin {
  if (!record) return { kind: "in-progress" }; // forgotten between our insert attempt and now: treat as running
  if (record.requestHash !== requestHash) return { kind: "mismatch" };
  return record.response === null ? { kind: "in-progress" } : { kind: "recorded", response: record.response };
}

export interface IdempotencyRepositoryOptions {
  /** Each record written or forgotten here (undefined: forgotten), as committed: this process's waiters take it without a read. */
  onChange?(notifyKey: string, record: IdempotencyRecord | undefined): void;
}

/**
 * Stripe semantics for `Idempotency-Key`: the first request with a key runs, later ones with the
 * same key and body get its recorded answer; the same key with another body is refused. The
 * INSERT … ON CONFLICT makes "first" atomic across requests and instances. Recording or forgetting
 * an answer NOTIFYs the other instances (in the same statement) so their waiting retries re-read once.
 */
export class IdempotencyRepository {
  constructor(
    private readonly db: Database,
    private readonly options: IdempotencyRepositoryOptions = {},
  ) {}

  async begin(id: IdempotencyKeyId, requestHash: string): Promise<IdempotencyBegin> {
    const inserted = await this.db
      .insert(idempotencyKeys)
      .values({ ...id, requestHash })
      .onConflictDoNothing()
      .returning({ key: idempotencyKeys.key });
    if (inserted.length === 1) return { kind: "new" };
    return this.lookup(id, requestHash);
  }

  async lookup(id: IdempotencyKeyId, requestHash: string): Promise<IdempotencyBegin> {
    return idempotencyStateOf(await this.read(id), requestHash);
  }

  /** The record of the key idempotencyNotifyKey named, for the waiters. */
  async readByNotifyKey(notifyKey: string): Promise<IdempotencyRecord | undefined> {
    return this.read(idempotencyKeyIdOf(notifyKey));
  }

  /** The key's record as stored, or undefined when there is none. */
  async read(id: IdempotencyKeyId): Promise<IdempotencyRecord | undefined> {
    const [row] = await this.db
      .select({ requestHash: idempotencyKeys.requestHash, response: idempotencyKeys.response })
      .from(idempotencyKeys)
      .where(matches(id))
      .limit(1);
    return row;
  }

  async record(id: IdempotencyKeyId, response: unknown, settlementId: string | undefined): Promise<void> {
    const notifyKey = idempotencyNotifyKey(id);
    const [row] = await this.db
      .update(idempotencyKeys)
      .set({ response: sql`${postgresSafeJson(response)}::jsonb`, settlementId: settlementId ?? null })
      .where(matches(id))
      .returning({ requestHash: idempotencyKeys.requestHash, response: idempotencyKeys.response, notified: notifyOf(notifyKey) });
    if (row) this.options.onChange?.(notifyKey, { requestHash: row.requestHash, response: row.response });
  }

  /** A request that ended in a 5xx leaves no record, so its retry runs again (Stripe does the same). */
  async forget(id: IdempotencyKeyId): Promise<void> {
    const notifyKey = idempotencyNotifyKey(id);
    const deleted = await this.db.delete(idempotencyKeys).where(matches(id)).returning({ notified: notifyOf(notifyKey) });
    if (deleted.length > 0) this.options.onChange?.(notifyKey, undefined);
  }
}

function matches(id: IdempotencyKeyId) {
  return and(eq(idempotencyKeys.scope, id.scope), eq(idempotencyKeys.route, id.route), eq(idempotencyKeys.key, id.key));
}

function notifyOf(notifyKey: string) {
  return sql<unknown>`pg_notify(${idempotencyChangedChannel}, ${notifyKey})`;
}
