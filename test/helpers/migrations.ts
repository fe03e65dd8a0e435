import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrationsFolder } from "../../src/store/migrate.js";

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
