import { createHash, randomBytes } from "node:crypto";
import { and, eq, gt, isNull, lte, sql } from "drizzle-orm";
import type { Database } from "./db.js";
import { apiKeys, dashboardSessions, type ApiKeyRow } from "./schema.js";

/** A session token is 32 random bytes, base64url: 43 characters. Anything else is not looked up. */
const tokenPattern = /^[A-Za-z0-9_-]{43}$/;

export function isSessionTokenShaped(token: string): boolean {
  return tokenPattern.test(token);
}

function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * Dashboard sessions (schema.ts `dashboardSessions`). Expiry and revocation are judged by Postgres'
 * clock in the lookup itself, so every instance agrees and nothing is cached: a revoked key's
 * sessions stop at the next request.
 */
export class DashboardSessionsRepository {
  constructor(private readonly db: Database) {}

  /** A new session for this key, good for `ttlMs`; returns the token (only its hash is stored). */
  async create(apiKeyId: string, ttlMs: number): Promise<{ token: string; expiresAt: Date }> {
    const token = randomBytes(32).toString("base64url");
    // Expired sessions are removed as new ones are made: the table stays the size of the live ones.
    await this.db.delete(dashboardSessions).where(lte(dashboardSessions.expiresAt, sql`now()`));
    const [row] = await this.db
      .insert(dashboardSessions)
      .values({ tokenHash: hashToken(token), apiKeyId, expiresAt: sql`now() + make_interval(secs => ${ttlMs / 1000})` })
      .returning({ expiresAt: dashboardSessions.expiresAt });
    return { token, expiresAt: row!.expiresAt };
  }

  /** The session's admin key while the session is unexpired and the key unrevoked and admin; else undefined. */
  async findActive(token: string): Promise<ApiKeyRow | undefined> {
    if (!isSessionTokenShaped(token)) return undefined;
    const [row] = await this.db
      .select({ key: apiKeys })
      .from(dashboardSessions)
      .innerJoin(apiKeys, eq(apiKeys.id, dashboardSessions.apiKeyId))
      .where(and(eq(dashboardSessions.tokenHash, hashToken(token)), gt(dashboardSessions.expiresAt, sql`now()`), isNull(apiKeys.revokedAt), eq(apiKeys.role, "admin")))
      .limit(1);
    return row?.key;
  }

  /** Ends the session (logout); true when there was one. */
  async delete(token: string): Promise<boolean> {
    if (!isSessionTokenShaped(token)) return false;
    const rows = await this.db.delete(dashboardSessions).where(eq(dashboardSessions.tokenHash, hashToken(token))).returning({ tokenHash: dashboardSessions.tokenHash });
    return rows.length > 0;
  }
}
