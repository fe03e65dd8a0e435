import { ConfigError } from "../errors.js";

/**
 * DATABASE_URL as an operator sees it in an error: `user@host:port/db`, never the password (nor a
 * query string, which can carry one).
 */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : "";
    // A Unix socket: postgres:///db?host=/var/run/postgresql (no host in the authority).
    const host = parsed.hostname ? decodeURIComponent(parsed.hostname) : (parsed.searchParams.get("host") ?? "localhost");
    return `${user}${host}:${parsed.port || "5432"}${parsed.pathname || "/"}`;
  } catch {
    return "(unparsable URL)";
  }
}

/** A postgres:// URL with a host, or a ConfigError naming DATABASE_URL (pg would read "notaurl" as a host named "base"…). */
export function parseDatabaseUrl(value: string, name = "DATABASE_URL"): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a URL: expected a postgres:// URL with user, password, host, port and database`);
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new ConfigError(`${name} must start with postgres:// or postgresql://, got ${parsed.protocol}//…`);
  }
  if (!parsed.hostname && !parsed.searchParams.get("host")) throw new ConfigError(`${name} names no host (for a Unix socket, add ?host=<socket directory>)`);
  if (parsed.pathname.length <= 1) throw new ConfigError(`${name} (${describeDatabaseUrl(value)}) names no database: add /<database> after the host`);
  return value;
}

/** Postgres refused or could not be reached at start: one line naming DATABASE_URL's target, as a ConfigError (exit 2). */
export class DatabaseStartError extends ConfigError {
  override name = "DatabaseStartError";
}

/** Why a connection to `url` failed, in one line naming DATABASE_URL (the password masked). */
export function databaseStartError(url: string, error: unknown): DatabaseStartError {
  const target = `DATABASE_URL (${describeDatabaseUrl(url)})`;
  const { code, message } = (error ?? {}) as { code?: string; message?: string };
  const database = (() => {
    try {
      return decodeURIComponent(new URL(url).pathname.slice(1));
    } catch {
      return "";
    }
  })();
  const reasons: Record<string, string> = {
    "3D000": `database "${database}" does not exist: create it (createdb ${database}) or point DATABASE_URL at one that does`,
    "28P01": "password authentication failed",
    "28000": "the server refused this user (pg_hba.conf or role)",
    ECONNREFUSED: "refused the connection: is Postgres running there?",
    ENOTFOUND: "host not found",
    EAI_AGAIN: "host name could not be resolved",
    ETIMEDOUT: "did not answer in time",
    ECONNRESET: "closed the connection",
  };
  const timedOut = typeof message === "string" && /timeout/i.test(message);
  const reason = (code && reasons[code]) ?? (timedOut ? "did not answer within 10 s" : `cannot connect: ${(message ?? String(error)).split("\n")[0]!.slice(0, 200)}`);
  return new DatabaseStartError(`${target}: ${reason}`);
}
