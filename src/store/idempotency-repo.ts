import { and, eq, sql } from "drizzle-orm";
import type { Database } from "./db.js";
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

/**
 * Stripe semantics for `Idempotency-Key`: the first request with a key runs, later ones with the
 * same key and body get its recorded answer; the same key with another body is refused. The
 * INSERT … ON CONFLICT makes "first" atomic across requests and instances.
 */
export class IdempotencyRepository {
  constructor(private readonly db: Database) {}

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
    const [row] = await this.db.select().from(idempotencyKeys).where(matches(id)).limit(1);
    if (!row) return { kind: "in-progress" }; // forgotten between our insert attempt and now: treat as running
    if (row.requestHash !== requestHash) return { kind: "mismatch" };
    return row.response === null ? { kind: "in-progress" } : { kind: "recorded", response: row.response };
  }

  async record(id: IdempotencyKeyId, response: unknown, settlementId: string | undefined): Promise<void> {
    await this.db
      .update(idempotencyKeys)
      .set({ response: sql`${postgresSafeJson(response)}::jsonb`, settlementId: settlementId ?? null })
      .where(matches(id));
  }

  /** A request that ended in a 5xx leaves no record, so its retry runs again (Stripe does the same). */
  async forget(id: IdempotencyKeyId): Promise<void> {
    await this.db.delete(idempotencyKeys).where(matches(id));
  }
}

function matches(id: IdempotencyKeyId) {
  return and(eq(idempotencyKeys.scope, id.scope), eq(idempotencyKeys.route, id.route), eq(idempotencyKeys.key, id.key));
}
