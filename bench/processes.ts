/**
 * Child processes of the benchmark: both facilitators run in their own process so that their CPU
 * time and memory can be read separately (bench/proc-stats.ts), and the load comes from a third.
 *
 * Bounds: start-up waits at most startTimeoutMs; stop sends SIGTERM and SIGKILLs after
 * stopGraceMs. Every child is SIGKILLed when this process exits, whatever the reason.
 */
import { killOnExit } from "../src/sandbox/child-reaper.js";
import { freePort } from "../src/sandbox/free-port.js";
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { Address, Hex } from "viem";
import { setTimeout as sleep } from "node:timers/promises";

export const repoRoot = path.resolve(import.meta.dirname, "..");

const OUTPUT_TAIL_LINES = 60;
const READY_POLL_MS = 100;
const READY_REQUEST_TIMEOUT_MS = 1_000;

export interface ChildService {
  name: string;
  url: string;
  pid: number;
  child: ChildProcess;
  /** Last lines of the child's stdout/stderr, for error messages. */
  output(): string;
  running(): boolean;
  /** SIGTERM, SIGKILL after graceMs; resolves once it has exited. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}



/**
 * This process's environment without anything that would reconfigure a facilitator behind our
 * back (a NETWORKS or RPC_URLS_84532 left in the shell), plus the child's own variables.
 */
function childEnv(own: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(NETWORKS|RPC_URLS_\d+|AUTH|ALLOWED_PAY_TO|MAX_AMOUNT_ATOMIC|SETTLE_BATCH_MAX|SEND_MODE|NODE_OPTIONS)$/.test(name)) delete env[name];
  }
  return { ...env, ...own };
}

interface SpawnServiceOptions {
  name: string;
  args: string[];
  env: Record<string, string>;
  url: string;
  startTimeoutMs: number;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeFlags?: string[];
  /** TypeScript run through tsx (the reference); false for compiled JavaScript (ours, dist/). */
  tsx: boolean;
}

/** Spawns `node [flags] [--import tsx] <args>` and waits until GET <url>/supported answers 200. */
async function spawnService(options: SpawnServiceOptions): Promise<ChildService> {
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), ...(options.tsx ? ["--import", "tsx"] : []), ...options.args], {
    cwd: repoRoot,
    env: childEnv(options.env),
    // stdin stays an open pipe: the reference facilitator exits when it closes.
    stdio: ["pipe", "pipe", "pipe"],
  });
  killOnExit(child);
  child.stdin!.on("error", () => {});
  const tail: string[] = [];
  const remember = (chunk: string) => {
    for (const line of chunk.split("\n")) {
      if (line.trim() === "") continue;
      tail.push(line.length > 2_000 ? `${line.slice(0, 2_000)}…` : line);
      if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
    }
  };
  child.stdout!.setEncoding("utf8").on("data", remember);
  child.stderr!.setEncoding("utf8").on("data", remember);
  let spawnError: Error | undefined;
  child.on("error", (error) => (spawnError ??= error));

  const running = () => child.exitCode === null && child.signalCode === null && spawnError === undefined;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 10_000) =>
    (stopping ??= (async () => {
      if (!running()) return;
      child.kill("SIGTERM");
      const outcome = await Promise.race([exited.then(() => "exited" as const), sleep(graceMs).then(() => "slow" as const)]);
      if (outcome === "slow" && running()) {
        child.kill("SIGKILL");
        await exited;
      }
    })());
  const service: ChildService = {
    name: options.name,
    url: options.url,
    pid: child.pid ?? -1,
    child,
    output: () => tail.join("\n"),
    running,
    stop,
  };

  const deadline = Date.now() + options.startTimeoutMs;
  while (Date.now() < deadline) {
    if (!running()) {
      throw new Error(`${options.name} exited before it was ready (code ${child.exitCode}, signal ${child.signalCode}${spawnError ? `, ${spawnError.message}` : ""}):\n${service.output()}`);
    }
    try {
      const response = await fetch(`${options.url}/supported`, { signal: AbortSignal.timeout(READY_REQUEST_TIMEOUT_MS) });
      await response.arrayBuffer();
      if (response.ok) return service;
    } catch {
      // not listening yet
    }
    await sleep(READY_POLL_MS);
  }
  await stop(2_000);
  throw new Error(`${options.name} not ready within ${options.startTimeoutMs} ms:\n${service.output()}`);
}

export interface OursOptions {
  databaseUrl: string;
  rpcUrl: string;
  token: Address;
  signerKey: Hex;
  configPath: string;
  startTimeoutMs: number;
  /** Writes a V8 CPU profile into this directory when the process exits (--cpu-prof). */
  cpuProfileDir?: string;
  /** Default "ours"; e.g. "ours-single" for the variant started with SETTLE_BATCH_MAX. */
  name?: string;
  /** More environment for the process, e.g. { SETTLE_BATCH_MAX: "64" }. */
  extraEnv?: Record<string, string>;
}

/** This repository's facilitator, exactly as production runs it: `node dist/cli/index.js serve` (= `npm start`; run.ts builds dist/ first). */
export async function startOurFacilitator(options: OursOptions): Promise<ChildService> {
  const config = {
    networks: [
      {
        network: "eip155:84532",
        v1Name: "base-sepolia",
        rpcUrls: [options.rpcUrl],
        assets: [{ address: options.token, name: "USDC", version: "2", decimals: 6 }],
      },
    ],
  };
  await writeFile(options.configPath, `${JSON.stringify(config, null, 2)}\n`);
  const port = await freePort();
  return spawnService({
    name: options.name ?? "ours",
    args: ["dist/cli/index.js", "serve"],
    tsx: false,
    url: `http://127.0.0.1:${port}`,
    startTimeoutMs: options.startTimeoutMs,
    nodeFlags: options.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`] : [],
    env: {
      DATABASE_URL: options.databaseUrl,
      SIGNER_PRIVATE_KEYS: options.signerKey,
      FACILITATOR_CONFIG: options.configPath,
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "warn",
      RATE_LIMIT_PER_MINUTE: "10000000",
      ...options.extraEnv,
    },
  });
}

export interface ReferenceOptions {
  rpcUrl: string;
  signerKey: Hex;
  startTimeoutMs: number;
  /** The variant with viem's nonceManager on the signer account. */
  nonceManager?: boolean;
}

export async function startReferenceFacilitator(options: ReferenceOptions): Promise<ChildService> {
  const port = await freePort();
  return spawnService({
    name: options.nonceManager ? "reference-nm" : "reference",
    args: ["bench/reference-facilitator.ts"],
    tsx: true,
    url: `http://127.0.0.1:${port}`,
    startTimeoutMs: options.startTimeoutMs,
    env: {
      RPC_URL: options.rpcUrl,
      SIGNER_PRIVATE_KEY: options.signerKey,
      PORT: String(port),
      HOST: "127.0.0.1",
      NONCE_MANAGER: options.nonceManager ? "1" : "0",
    },
  });
}

export { freePort };
