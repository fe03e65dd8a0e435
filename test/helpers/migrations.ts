import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import type pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { defaultLimits } from "../../src/config.js";
import { openDatabase, type DatabaseHandle } from "../../src/store/db.js";
import { migrationsFolder, runMigrations } from "../../src/store/migrate.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "./database.js";

/**
 * Copies of migrations/ whose journal stops at a tag (drizzle's migrator applies only what the
 * journal lists): how a migration test builds the database an older release left. `removeAll`
 * deletes the copies.
 */
export function migrationCopies(): { upTo(lastTag: string): string; removeAll(): void } {
  const folders: string[] = [];
  return {
    upTo(lastTag: string): string {
      const folder = mkdtempSync(join(tmpdir(), "x402-migrations-"));
      folders.push(folder);
      cpSync(migrationsFolder, folder, { recursive: true });
      const journalPath = join(folder, "meta", "_journal.json");
      const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: { tag: string }[] };
      const end = journal.entries.findIndex((entry) => entry.tag === lastTag);
      if (end < 0) throw new Error(`no migration ${lastTag}`);
      journal.entries = journal.entries.slice(0, end + 1);
      writeFileSync(journalPath, JSON.stringify(journal));
      return folder;
    },
    removeAll(): void {
      for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
    },
  };
}

export interface MigratedDatabase {
  /** The test database's URL (valid inside tests). */
  readonly url: string;
  /** A pool on it, opened after every migration ran (valid inside tests). */
  readonly db: DatabaseHandle["db"];
}

/**
 * The database an older release left, then upgraded: registers beforeAll/afterAll that create a test
 * database, migrate it up to `lastTagBefore`, let `seed` write rows as that release's code did,
 * run every migration after it (the one under test and any later), and open a pool on it.
 */
export function useMigratedDatabase(options: { label: string; lastTagBefore: string; seed(client: pg.Client): Promise<void> }): MigratedDatabase {
  const copies = migrationCopies();
  let database: TestDatabase | undefined;
  let handle: DatabaseHandle | undefined;
  beforeAll(async () => {
    database = await createTestDatabase(options.label);
    await withPgClient(database.url, async (client) => {
      await client.query("set client_min_messages = warning");
      await migrate(drizzle(client), { migrationsFolder: copies.upTo(options.lastTagBefore) });
      await options.seed(client);
    });
    await runMigrations(database.url);
    handle = openDatabase(database.url, defaultLimits);
  });
  afterAll(async () => {
    await handle?.close();
    await database?.drop();
    copies.removeAll();
  });
  return {
    get url() {
      return database!.url;
    },
    get db() {
      return handle!.db;
    },
  };
}
