/**
 * One empty database per test file (or per test), on the server chosen by global-setup.ts.
 * Migrations are the caller's job (src/store/migrate.ts), so tests can also start from a blank DB.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, inject } from "vitest";
import { defaultLimits } from "../../src/config.js";
import { openDatabase, type DatabaseHandle } from "../../src/store/db.js";
import { runMigrations } from "../../src/store/migrate.js";
import { createDatabase, dropDatabase, withPgClient } from "../../src/store/database-admin.js";

export interface TestDatabase {
  url: string;
  name: string;
  /** Drops the database, terminating open connections. Idempotent. */
  drop(): Promise<void>;
}

const NAME_PREFIX = "x402_t_";
const RANDOM_SUFFIX_BYTES = 5; // 10 hex chars: collisions across parallel workers and people are negligible
/** Postgres identifiers are at most 63 bytes: prefix + label + "_" + suffix must fit. */
const MAX_LABEL_LENGTH = 63 - NAME_PREFIX.length - 1 - RANDOM_SUFFIX_BYTES * 2;

export async function createTestDatabase(label = "db"): Promise<TestDatabase> {
  const adminUrl = inject("pgAdminUrl");
  const name = `${NAME_PREFIX}${sanitizeLabel(label)}_${randomBytes(RANDOM_SUFFIX_BYTES).toString("hex")}`;
  const url = await createDatabase(adminUrl, name);
  let dropping: Promise<void> | undefined;
  return { url, name, drop: () => (dropping ??= dropDatabase(adminUrl, name)) };
}

/** Lower-case, [a-z0-9_] only, truncated: any label (a test file name, say) gives a valid name. */
function sanitizeLabel(label: string): string {
  const cleaned = label
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, MAX_LABEL_LENGTH);
  return cleaned === "" ? "db" : cleaned;
}

/** Connects, runs `fn`, and always closes the connection (a terminated connection's 'error' is the failing query's). */
export { withPgClient };

/**
 * Store-level tests: a fresh, migrated database and an open handle on it for the test file (or the
 * describe block it is called in); closed and dropped after. Fields are filled in beforeAll.
 */
export function useMigratedDatabase(label: string): { database: TestDatabase; handle: DatabaseHandle } {
  const fixture = {} as { database: TestDatabase; handle: DatabaseHandle };
  beforeAll(async () => {
    fixture.database = await createTestDatabase(label);
    await runMigrations(fixture.database.url);
    fixture.handle = openDatabase(fixture.database.url, defaultLimits);
  });
  afterAll(async () => {
    await fixture.handle?.close();
    await fixture.database?.drop();
  });
  return fixture;
}
