/**
 * Database administration against any PostgreSQL server (the shared dev server, a testcontainer or
 * the embedded sandbox server): create and drop databases by validated name, and one-shot clients.
 */
import pg from "pg";

export class InvalidDatabaseNameError extends Error {
  override name = "InvalidDatabaseNameError";
  readonly databaseName: string;
  constructor(databaseName: string, reason: string) {
    super(`Invalid database name ${JSON.stringify(databaseName)}: ${reason}`);
    this.databaseName = databaseName;
  }
}

export class UnsupportedPostgresVersionError extends Error {
  override name = "UnsupportedPostgresVersionError";
  readonly serverVersionNum: number;
  constructor(serverVersionNum: number, needed: string) {
    super(`PostgreSQL ${formatVersionNum(serverVersionNum)} is too old: ${needed}`);
    this.serverVersionNum = serverVersionNum;
  }
}

const DATABASE_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
/** Dropping these would break the server for everyone else (the shared dev server included). */
const PROTECTED_DATABASES = new Set(["postgres", "template0", "template1"]);
const ADMIN_CONNECT_TIMEOUT_MS = 10_000;
const DROP_FORCE_MIN_VERSION_NUM = 130_000;

function assertDatabaseName(databaseName: string): void {
  if (!DATABASE_NAME_PATTERN.test(databaseName)) {
    throw new InvalidDatabaseNameError(databaseName, `must match ${DATABASE_NAME_PATTERN}`);
  }
}

function assertDroppable(databaseName: string): void {
  assertDatabaseName(databaseName);
  if (PROTECTED_DATABASES.has(databaseName)) {
    throw new InvalidDatabaseNameError(databaseName, "refusing to drop a system database");
  }
}

/**
 * Creates `databaseName` (from template0, so it is empty whatever template1 holds on a shared server)
 * and returns its URL: `adminUrl` with the database swapped, credentials and query kept.
 */
export async function createDatabase(
  adminUrl: string,
  databaseName: string,
  options: { dropIfExists?: boolean } = {},
): Promise<string> {
  assertDatabaseName(databaseName);
  if (options.dropIfExists) assertDroppable(databaseName);
  await withAdminClient(adminUrl, async (client) => {
    const identifier = client.escapeIdentifier(databaseName);
    if (options.dropIfExists) await dropDatabaseWith(client, identifier);
    await client.query(`CREATE DATABASE ${identifier} TEMPLATE template0`);
  });
  return databaseUrl(adminUrl, databaseName);
}

/** Drops `databaseName` if it exists, terminating its connections (WITH (FORCE), PostgreSQL >= 13). */
export async function dropDatabase(adminUrl: string, databaseName: string): Promise<void> {
  assertDroppable(databaseName);
  await withAdminClient(adminUrl, (client) => dropDatabaseWith(client, client.escapeIdentifier(databaseName)));
}

async function dropDatabaseWith(client: pg.Client, identifier: string): Promise<void> {
  const { rows } = await client.query<{ server_version_num: string }>("SHOW server_version_num");
  const versionNum = Number(rows[0]?.server_version_num);
  if (versionNum < DROP_FORCE_MIN_VERSION_NUM) {
    throw new UnsupportedPostgresVersionError(versionNum, "DROP DATABASE ... WITH (FORCE) needs PostgreSQL 13 or newer");
  }
  await client.query(`DROP DATABASE IF EXISTS ${identifier} WITH (FORCE)`);
}

function databaseUrl(adminUrl: string, databaseName: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${databaseName}`;
  return url.toString();
}

function withAdminClient<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withPgClient(adminUrl, fn, ADMIN_CONNECT_TIMEOUT_MS);
}

/** One connection for `fn`, always closed after; a connect waits at most `connectTimeoutMs` (0 = pg's default, none). */
export async function withPgClient<T>(url: string, fn: (client: pg.Client) => Promise<T>, connectTimeoutMs = 0): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs });
  // A server going away emits 'error' on the client as well as rejecting the query; without a
  // listener that event would crash the process. The rejected query carries the error to the caller.
  client.on("error", () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    // Closing a connection the server already dropped fails too; fn's result (or error) is the answer.
    await client.end().catch(() => undefined);
  }
}

function formatVersionNum(versionNum: number): string {
  return Number.isFinite(versionNum) ? `${Math.floor(versionNum / 10_000)}.${versionNum % 10_000}` : "(unknown)";
}
