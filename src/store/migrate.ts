import { fileURLToPath } from "node:url";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import { databaseStartError } from "./database-url.js";

export const migrationsFolder = fileURLToPath(new URL("../../migrations", import.meta.url));

/** Arbitrary but fixed: every instance takes the same advisory lock, so a rolling deploy migrates once. */
const migrationLockKey = 402_0001;

/**
 * Applies pending migrations from migrations/; safe to run from several instances at once. A failed
 * connection throws DatabaseStartError (one line naming DATABASE_URL's host:port/db).
 */
export async function runMigrations(databaseUrl: string, options: { lockTimeoutMs?: number } = {}): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000 });
  // Nothing can start without Postgres: say which DATABASE_URL failed and why, in one line.
  client.on("error", () => {}); // a failed connect also emits 'error'; the rejected connect() carries it
  await client.connect().catch((error: unknown) => {
    throw databaseStartError(databaseUrl, error);
  });
  try {
    await client.query(`set lock_timeout = ${Math.trunc(options.lockTimeoutMs ?? 60_000)}`);
    await client.query("select pg_advisory_lock($1)", [migrationLockKey]);
    try {
      await client.query("set client_min_messages = warning"); // drizzle's "schema already exists" notices are noise
      await migrate(drizzle(client), { migrationsFolder });
    } finally {
      await client.query("select pg_advisory_unlock($1)", [migrationLockKey]);
    }
  } finally {
    await client.end();
  }
}
