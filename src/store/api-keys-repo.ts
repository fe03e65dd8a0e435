import { createHash, randomBytes } from "node:crypto";
import { and, desc, eq, isNull, or, sql } from "drizzle-orm";
import type { Database } from "./db.js";
import { apiKeys, type ApiKeyRow } from "./schema.js";

export type ApiKeyRole = "client" | "admin";

export interface NewApiKey {
  name: string;
  role: ApiKeyRole;
  allowedPayTo?: string[];
  allowedNetworks?: string[];
  allowedAssets?: string[];
  rateLimitPerMinute?: number;
  dailyGasBudgetWei?: bigint;
}

/** The first characters of a key kept in clear beside its hash, to recognise it in listings. */
export const apiKeyPrefixLength = 12;

/** What `keys revoke` was given, once the CLI has told the forms apart. */
export type ApiKeyMatch = { id: string } | { key: string } | { keyPrefix: string };

/** A key is 32 random bytes: `x402_` + base64url. Shown once; only its SHA-256 is stored. */
export function generateApiKey(): string {
  return `x402_${randomBytes(32).toString("base64url")}`;
}

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

export class ApiKeysRepository {
  constructor(private readonly db: Database) {}

  /** Creates a key and returns it in clear text, the only time it exists outside the caller's hands. */
  async create(input: NewApiKey): Promise<{ key: string; row: ApiKeyRow }> {
    const key = generateApiKey();
    const [row] = await this.db
      .insert(apiKeys)
      .values({
        name: input.name,
        keyHash: hashApiKey(key),
        keyPrefix: key.slice(0, apiKeyPrefixLength),
        role: input.role,
        allowedPayTo: input.allowedPayTo?.map((address) => address.toLowerCase()) ?? null,
        allowedNetworks: input.allowedNetworks ?? null,
        allowedAssets: input.allowedAssets?.map((address) => address.toLowerCase()) ?? null,
        rateLimitPerMinute: input.rateLimitPerMinute ?? null,
        dailyGasBudgetWei: input.dailyGasBudgetWei?.toString() ?? null,
      })
      .returning();
    return { key, row: row! };
  }

  async findActive(key: string): Promise<ApiKeyRow | undefined> {
    const [row] = await this.db
      .select()
      .from(apiKeys)
      .where(and(eq(apiKeys.keyHash, hashApiKey(key)), isNull(apiKeys.revokedAt)))
      .limit(1);
    return row;
  }

  async list(): Promise<ApiKeyRow[]> {
    return this.db.select().from(apiKeys).orderBy(desc(apiKeys.createdAt)).limit(1_000);
  }

  /**
   * Keys (revoked ones too, newest first, at most `limit`) matching an id, a whole key (by its
   * hash) or the start of a key (at most `apiKeyPrefixLength` characters: no more are stored).
   */
  async findMatching(match: ApiKeyMatch, limit = 50, options: { activeOnly?: boolean } = {}): Promise<ApiKeyRow[]> {
    const where =
      "id" in match
        ? eq(apiKeys.id, match.id)
        : "key" in match
          ? eq(apiKeys.keyHash, hashApiKey(match.key))
          : // left(…) = $1, not LIKE: "_" (in every key) and "%" would be wildcards.
            sql`left(${apiKeys.keyPrefix}, ${match.keyPrefix.length}) = ${match.keyPrefix}`;
    // activeOnly filters in SQL: with more than `limit` matches, revoked ones must not hide an active one.
    return this.db
      .select()
      .from(apiKeys)
      .where(options.activeOnly ? and(where, isNull(apiKeys.revokedAt)) : where)
      .orderBy(desc(apiKeys.createdAt))
      .limit(limit);
  }

  /** Revokes one key by id; undefined when it is unknown or already revoked. */
  async revokeById(id: string): Promise<ApiKeyRow | undefined> {
    const [row] = await this.db
      .update(apiKeys)
      .set({ revokedAt: sql`now()` })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
      .returning();
    return row;
  }

  /** Revokes by id or by the key prefix shown in listings; returns how many keys were revoked. */
  async revoke(idOrPrefix: string): Promise<number> {
    const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrPrefix);
    const match = isUuid ? or(eq(apiKeys.id, idOrPrefix), eq(apiKeys.keyPrefix, idOrPrefix)) : eq(apiKeys.keyPrefix, idOrPrefix);
    const rows = await this.db
      .update(apiKeys)
      .set({ revokedAt: sql`now()` })
      .where(and(match, isNull(apiKeys.revokedAt)))
      .returning({ id: apiKeys.id });
    return rows.length;
  }
}
