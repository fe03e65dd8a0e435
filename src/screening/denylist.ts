import { createHash } from "node:crypto";
import { readFileSync, statSync, type BigIntStats } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { isAddress } from "viem";
import { sanctionsDenylistBytesMax } from "../limits.js";

/**
 * SANCTIONS_DENYLIST_FILE: the operator's own list of addresses no payment may come from or go to.
 *
 * Format: one address a line, any case (no checksum is required); `#` starts a comment, to the end
 * of the line; blank lines are ignored. Any other line makes the whole file bad: at start that is
 * a configuration error, on a reload the last good list stays in force (and an error is logged).
 *
 * Reload: every SANCTIONS_DENYLIST_RELOAD_MS one stat(); the file is read only when its inode, size,
 * mtime or ctime changed — or when the last read was "racy" (the file was modified within
 * `racyWindowMs` before it was read, where a same-size rewrite inside the file system's timestamp
 * granularity would leave stat() unchanged; git's racy-git rule). It is re-parsed only when its
 * content hash changed. Replacing the file by a rename (write a temporary file, then `mv`) is
 * atomic; an in-place write may be read half-written, and is then read again at the next check.
 */

/** A denylist file that cannot be used: unreadable, too large, or a line that is no address. */
export class DenylistError extends Error {
  override name = "DenylistError";
}

/** A stat() this close (ms) to the read may hide a later rewrite of the same size: read again next time. */
const racyWindowMs = 2_000;
/** How much of a bad line an error quotes. */
const quotedLineMax = 60;

export interface LoadedDenylist {
  /** Lowercase addresses. */
  addresses: ReadonlySet<string>;
  /** sha256 of the text parsed. */
  digest: string;
  /** Identity of the file as last stat()ed: inode, size, mtime, ctime. */
  fingerprint: string;
  /** The file was modified within racyWindowMs of being read: read it again at the next check. */
  racy: boolean;
}

/** The addresses of a denylist's text; throws DenylistError naming the first bad line. */
export function parseDenylist(text: string): Set<string> {
  const addresses = new Set<string>();
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (const [index, line] of lines.entries()) {
    const hash = line.indexOf("#");
    const entry = (hash === -1 ? line : line.slice(0, hash)).trim();
    if (entry === "") continue;
    if (!isAddress(entry, { strict: false })) {
      const shown = entry.length > quotedLineMax ? `${entry.slice(0, quotedLineMax)}…` : entry;
      throw new DenylistError(`line ${index + 1}: "${shown}" is not an address`);
    }
    addresses.add(entry.toLowerCase());
  }
  return addresses;
}

/** The denylist at `path`, read now (synchronously: at start, while loading the configuration). */
export function loadDenylistFileSync(path: string): LoadedDenylist {
  let stats: BigIntStats;
  let text: string;
  try {
    stats = statSync(path, { bigint: true });
    checkSize(stats);
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw asDenylistError(error);
  }
  return { addresses: parseDenylist(text), digest: digestOf(text), fingerprint: fingerprintOf(stats), racy: isRacy(stats) };
}

export interface DenylistEvents {
  /** A changed file was loaded and is in force now. */
  loaded(entries: number): void;
  /** A check failed (once per distinct failure, not per check): the list in force stays. */
  failed(message: string, entriesKept: number): void;
}

/** The denylist in force, and its reloads (see the top of this file). */
export class DenylistFile {
  #inForce: LoadedDenylist;
  /** The file as last read, good or bad: an unchanged stat() of it is not read again. */
  #seen: { fingerprint: string; racy: boolean };
  /** The last failure reported; reported again only when it changes. */
  #failure: string | undefined;
  #checking: Promise<DenylistCheck> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    initial: LoadedDenylist,
    private readonly events: DenylistEvents,
  ) {
    this.#inForce = initial;
    this.#seen = { fingerprint: initial.fingerprint, racy: initial.racy };
  }

  /** `address` in any case. */
  has(address: string): boolean {
    return this.#inForce.addresses.has(address.toLowerCase());
  }

  get size(): number {
    return this.#inForce.addresses.size;
  }

  /** Checks every `intervalMs` until stop(); the timer does not keep the process alive. */
  start(intervalMs: number): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.check(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One check now (concurrent callers share it). Never throws. */
  check(): Promise<DenylistCheck> {
    this.#checking ??= this.checkOnce().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  private async checkOnce(): Promise<DenylistCheck> {
    let stats: BigIntStats;
    let text: string;
    try {
      stats = await stat(this.path, { bigint: true });
      if (fingerprintOf(stats) === this.#seen.fingerprint && !this.#seen.racy) return "unchanged";
      checkSize(stats);
      text = await readFile(this.path, "utf8");
    } catch (error) {
      return this.fail(asDenylistError(error).message);
    }
    this.#seen = { fingerprint: fingerprintOf(stats), racy: isRacy(stats) };
    const digest = digestOf(text);
    if (digest === this.#inForce.digest) {
      this.#failure = undefined; // touched, or put back as it was
      return "unchanged";
    }
    let addresses: Set<string>;
    try {
      addresses = parseDenylist(text);
    } catch (error) {
      return this.fail(error instanceof Error ? error.message : String(error));
    }
    this.#inForce = { addresses, digest, ...this.#seen };
    this.#failure = undefined;
    this.events.loaded(addresses.size);
    return "loaded";
  }

  private fail(message: string): DenylistCheck {
    if (message !== this.#failure) this.events.failed(message, this.size);
    this.#failure = message;
    return "failed";
  }
}

export type DenylistCheck = "unchanged" | "loaded" | "failed";

function checkSize(stats: BigIntStats): void {
  if (!stats.isFile()) throw new DenylistError("not a regular file");
  if (stats.size > BigInt(sanctionsDenylistBytesMax)) throw new DenylistError(`${stats.size} bytes, more than the ${sanctionsDenylistBytesMax} accepted`);
}

function fingerprintOf(stats: BigIntStats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
}

function isRacy(stats: BigIntStats): boolean {
  return Date.now() - Number(stats.mtimeMs) < racyWindowMs;
}

function digestOf(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function asDenylistError(error: unknown): DenylistError {
  if (error instanceof DenylistError) return error;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const reason = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "not a regular file" : (code ?? String(error));
  return new DenylistError(`cannot be read: ${reason}`);
}
