import { sql } from "drizzle-orm";
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import pg from "pg";
import type { Limits } from "../config.js";
import * as schema from "./schema.js";

export type Database = NodePgDatabase<typeof schema>;

export interface DatabaseHandle {
  db: Database;
  pool: pg.Pool;
  /**
   * A new client of its own, outside the pool, for the instance's one LISTEN connection
   * (store/notifications.ts ChangeListener); named apart in pg_stat_activity.
   */
  listenerClient(): pg.Client;
  close(): Promise<void>;
}

/** application_name of the pool's connections and of the LISTEN connection, as pg_stat_activity shows them. */
export const poolApplicationName = "x402-facilitator";
export const listenerApplicationName = "x402-facilitator-listen";

/**
 * One pool per process. Every statement has a server-side timeout and every connect a client-side
 * one, so a stuck Postgres turns into a 503 within a bound instead of a hung request.
 */
export function openDatabase(url: string, limits: Pick<Limits, "dbPoolMax" | "dbStatementTimeoutMs">, onError?: (error: Error) => void): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: url,
    max: limits.dbPoolMax,
    connectionTimeoutMillis: Math.min(limits.dbStatementTimeoutMs, 5_000),
    idleTimeoutMillis: 30_000,
    statement_timeout: limits.dbStatementTimeoutMs,
    query_timeout: limits.dbStatementTimeoutMs + 1_000,
    application_name: poolApplicationName,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on("error", (error) => onError?.(error));
  const db = drizzle(pool, { schema });
  let closed = false;
  return {
    db,
    pool,
    listenerClient: () =>
      new pg.Client({
        connectionString: url,
        connectionTimeoutMillis: Math.min(limits.dbStatementTimeoutMs, 5_000),
        // A connection that died silently (no FIN, a NAT timeout) is noticed by TCP keep-alive.
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
        application_name: listenerApplicationName,
      }),
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

/** Postgres error classes that mean "could not reach or use the database", not "bad data". */
const unavailableSqlStates = new Set(["57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006", "53300", "57014"]);
const unavailableNodeCodes = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH"]);

/** Resolves when Postgres answers a query (used by /ready). */
export async function pingDatabase(db: Database): Promise<void> {
  await db.execute(sql`select 1`);
}

export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && (unavailableSqlStates.has(code) || unavailableNodeCodes.has(code))) return true;
    if (/Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error/i.test(current.message)) return true;
  }
  return false;
}
