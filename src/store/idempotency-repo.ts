import { eq, sql } from "drizzle-orm";
import type { Database } from "./db.js";
import { idempotencyKeys } from "./schema.js";

export type IdempotencyBegin =
  | { kind: "new" }
  | { kind: "recorded"; response: unknown }
  | { kind: "in-progress" }
  | { kind: "mismatch" };

/**
 * Stripe semantics for `Idempotency-Key`: the first request with a key runs, later ones with the
 * same key and body get its recorded answer; the same key with another body is refused. The
 * INSERT … ON CONFLICT makes "first" atomic across requests and instances.
 */
export class IdempotencyRepository {
  constructor(private readonly db: Database) {}

  async begin(key: string, requestHash: string): Promise<IdempotencyBegin> {
    const inserted = await this.db.insert(idempotencyKeys).values({ key, requestHash }).onConflictDoNothing().returning({ key: idempotencyKeys.key });
    if (inserted.length === 1) return { kind: "new" };
    return this.lookup(key, requestHash);
  }

  async lookup(key: string, requestHash: string): Promise<IdempotencyBegin> {
    const [row] = await this.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key)).limit(1);
    if (!row) return { kind: "in-progress" }; // forgotten between our insert attempt and now: treat as running
    if (row.requestHash !== requestHash) return { kind: "mismatch" };
    return row.response === null ? { kind: "in-progress" } : { kind: "recorded", response: row.response };
  }

  async record(key: string, response: unknown, settlementId: string | undefined): Promise<void> {
    await this.db
      .update(idempotencyKeys)
      .set({ response: sql`${JSON.stringify(response)}::jsonb`, settlementId: settlementId ?? null })
      .where(eq(idempotencyKeys.key, key));
  }

  /** A request that ended in a 5xx leaves no record, so its retry runs again (Stripe does the same). */
  async forget(key: string): Promise<void> {
    await this.db.delete(idempotencyKeys).where(eq(idempotencyKeys.key, key));
  }
}
