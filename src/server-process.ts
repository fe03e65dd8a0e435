import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { buildApp } from "./app.js";
import { createChainRegistry } from "./chain/registry.js";
import { createSignerPool } from "./chain/signers.js";
import { checkAtStart } from "./startup-checks.js";
import { systemClock } from "./clock.js";
import type { Config } from "./config.js";
import { createMetrics } from "./metrics.js";
import { createServices, type Services } from "./services.js";
import { openDatabase } from "./store/db.js";
import { runMigrations } from "./store/migrate.js";
import { applyHeapGrowth } from "./heap-growth.js";

/** In-flight requests get this long to finish on shutdown before the process stops anyway. */
export const shutdownGraceMs = 25_000;

export interface RunningServer {
  url: string;
  app: FastifyInstance;
  services: Services;
  close(): Promise<void>;
}

/** Migrates, builds the app and its services from config, starts the watcher and listens. */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  applyHeapGrowth(config.limits.heapGrowthPercent);
  // Before anything else: a wrong chain or token domain must stop the start, with one line.
  const signers = createSignerPool(config.signerPrivateKeys, config.limits, systemClock);
  const selfCheck = await checkAtStart(
    config.networks,
    config.limits.rpcTimeoutMs,
    { addresses: signers.addresses(), minBalanceWei: config.limits.minSignerBalanceWei },
    { settleBatchMax: config.limits.settleBatchMax, requested: config.settleBatchMaxSet ?? false },
  );
  for (const warning of selfCheck.warnings) log.warn({ check: "start-up" }, warning);
  for (const note of selfCheck.notes) log.info({ check: "start-up" }, note);
  await runMigrations(config.databaseUrl);
  const database = openDatabase(config.databaseUrl, config.limits, (error) => log.warn({ err: error }, "idle Postgres connection lost"));
  const metrics = createMetrics();
  const services = createServices({
    database,
    metrics,
    policy: config.policy,
    chains: createChainRegistry(config.networks, config.limits, {
      clock: systemClock,
      onRpcError: metrics.rpcError,
      sendMode: config.sendMode,
      onSendModeDetected: (network, url, mode, why) => log.info({ network, url, sendMode: config.sendMode ?? "auto", sends: mode }, `RPC URL ${mode === "sync" ? "serves" : "does not serve"} eth_sendRawTransactionSync (${why})`),
    }),
    signers,
    clock: systemClock,
    limits: config.limits,
    builderCode: config.builderCode,
    log,
    rpcUrlChecks: selfCheck.rpcUrls,
    screening: config.screening,
  });
  const app = await buildApp({ services, logger: log });
  services.watcher.start();
  const address = await app.listen({ host: config.host, port: config.port });
  log.info(
    { url: address, networks: config.networks.map((n) => n.network), signers: signers.addresses() },
    "x402 facilitator listening",
  );
  let closing: Promise<void> | undefined;
  return {
    url: address,
    app,
    services,
    close: () =>
      (closing ??= (async () => {
        // Stop taking requests and let in-flight ones finish (each is bounded by settleBudgetMs),
        // then stop the watcher and the recovery workers (services.close()); unfinished rows stay
        // in Postgres for the next start to finish.
        // A keep-alive connection that answers its last in-flight request only becomes idle after
        // close() began, and close() would wait for it forever: keep closing idle connections.
        const sweep = setInterval(() => app.server.closeIdleConnections?.(), 100);
        try {
          await app.close();
        } finally {
          clearInterval(sweep);
        }
        await services.close();
        await database.close();
      })()),
  };
}

/** How often a process started by npm checks that its parent is still there. */
const parentCheckIntervalMs = 500;

/**
 * SIGINT/SIGTERM → graceful close within shutdownGraceMs, then exit. With `whenParentExits` (set when
 * npm started us: `npm start`), the same shutdown runs when our parent goes away: a supervisor
 * signals the PID it started, npm, which dies without passing SIGTERM through its shell, and the
 * facilitator (and the sandbox's Postgres and Anvil) would run on orphaned, answering /health.
 */
export function closeOnSignals(log: Logger, close: () => Promise<void>, options: { whenParentExits?: boolean } = {}): void {
  let signalled = false;
  const shutDown = (reason: { signal?: NodeJS.Signals; parentExited?: true }) => {
    if (signalled) return;
    signalled = true;
    log.info(reason, reason.parentExited ? "parent process exited; shutting down" : "shutting down");
    const force = setTimeout(() => {
      log.error({ graceMs: shutdownGraceMs }, "shutdown took too long; exiting");
      process.exit(1);
    }, shutdownGraceMs);
    force.unref();
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", (signal) => shutDown({ signal }));
  process.on("SIGTERM", (signal) => shutDown({ signal }));
  if (options.whenParentExits) {
    const parentPid = process.ppid;
    const npmChain = ancestorsUpToNpm();
    const watch = setInterval(() => {
      // An orphan is re-parented (to init or a subreaper): its ppid changes. npm may also die while
      // the shell (or tsx) between us lives on: each ancestor up to npm is watched.
      if (process.ppid !== parentPid || npmChain.some((pid) => !isAlive(pid))) {
        clearInterval(watch);
        shutDown({ parentExited: true });
      }
    }, parentCheckIntervalMs);
    watch.unref();
  }
}

/** Our ancestors' pids from the parent up to the npm process (Linux /proc; elsewhere none: the ppid check remains). */
function ancestorsUpToNpm(maxDepth = 4): number[] {
  const chain: number[] = [];
  let pid = process.ppid;
  for (let depth = 0; depth < maxDepth && pid > 1; depth += 1) {
    chain.push(pid);
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      if (/(^|\/)npm(-cli\.js)?( |$)|npm-cli\.js/.test(cmdline)) return chain;
      // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after the last ")".
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      return [];
    }
  }
  return []; // no npm found above us: only the ppid check
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** True when an npm script started this process (npm sets npm_lifecycle_event for its scripts). */
export function startedByNpm(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.npm_lifecycle_event);
}
