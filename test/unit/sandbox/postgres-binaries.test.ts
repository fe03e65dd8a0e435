import { lstat, mkdir, mkdtemp, readFile, readlink, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { binariesPackageDir, restoreBinarySymlinks, type SymlinkEntry } from "../../../src/sandbox/postgres-binaries.js";

/**
 * The sandbox restores the PostgreSQL library symlinks that the binaries package's postinstall
 * creates, for installs where install scripts did not run. Exercised on a copy of the installed
 * package's own link list (the real node_modules stays untouched: other tests use it).
 */
const installed = binariesPackageDir();
const temporary: string[] = [];
afterEach(async () => {
  for (const dir of temporary.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A package directory with the real link list, every source file present, and every link but `missing`. */
async function packageCopy(entries: SymlinkEntry[], missing: (entry: SymlinkEntry) => boolean): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "pg-binaries-"));
  temporary.push(dir);
  await mkdir(path.join(dir, "native", "lib"), { recursive: true });
  await writeFile(path.join(dir, "native", "pg-symlinks.json"), JSON.stringify(entries));
  for (const { source } of entries) {
    await mkdir(path.dirname(path.join(dir, source)), { recursive: true });
    await writeFile(path.join(dir, source), `contents of ${source}`);
  }
  for (const entry of entries) {
    if (missing(entry)) continue;
    await symlink(path.relative(path.dirname(path.join(dir, entry.target)), path.join(dir, entry.source)), path.join(dir, entry.target));
  }
  return dir;
}

describe.skipIf(!installed)("PostgreSQL binaries' library symlinks", () => {
  it("are all present in the installed package (nothing to restore)", async () => {
    expect(await restoreBinarySymlinks(installed!)).toEqual([]);
  });

  it("are restored when one is missing (libicuuc, the one initdb failed on), relative and pointing at its library", async () => {
    const entries = JSON.parse(await readFile(path.join(installed!, "native", "pg-symlinks.json"), "utf8")) as SymlinkEntry[];
    const removed = entries.find((entry) => /libicuuc\.so\.\d+$/.test(entry.target)) ?? entries[0]!;
    const dir = await packageCopy(entries, (entry) => entry === removed);

    expect(await restoreBinarySymlinks(dir)).toEqual([removed.target]);
    const link = path.join(dir, removed.target);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(path.isAbsolute(await readlink(link))).toBe(false); // survives moving node_modules
    expect(await realpath(link)).toBe(await realpath(path.join(dir, removed.source)));
    expect(await restoreBinarySymlinks(dir)).toEqual([]); // idempotent
  });

  it("are all restored after an install that ran no scripts", async () => {
    const entries = JSON.parse(await readFile(path.join(installed!, "native", "pg-symlinks.json"), "utf8")) as SymlinkEntry[];
    const dir = await packageCopy(entries, () => true);
    expect((await restoreBinarySymlinks(dir)).sort()).toEqual(entries.map((entry) => entry.target).sort());
  });
});
