/**
 * Starts and stops a local Anvil node from the npm binary (@foundry-rs/anvil-linux-amd64).
 *
 * The binary is spawned directly, never through npx: killing npx would leave Anvil orphaned on
 * its port. Every started node is also SIGKILLed on process exit, so a crashing test or sandbox
 * leaves nothing behind (a SIGKILL of this process itself cannot be covered).
 */
import { killOnExit } from "./child-reaper.js";
import { withTimeout } from "../util/with-timeout.js";
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import type { Hex } from "viem";

export interface StartAnvilOptions {
  chainId: number;
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Default: a free port chosen by the OS (Anvil is started with --port 0 and reports it). */
  port?: number;
  /** Interval mining; default: automine (a block per transaction). */
  blockTimeSeconds?: number;
  /** Automine off: transactions stay pending until evm_mine. */
  noMining?: boolean;
  forkUrl?: string;
  forkBlockNumber?: bigint;
  /** Number of funded dev accounts (Anvil default 10). */
  accounts?: number;
  /** Balance of each dev account in ether (Anvil default 10000). */
  balanceEther?: number;
  /** Default 10_000; a fork start may need more. */
  startTimeoutMs?: number;
  /** Default true: Anvil's output is only kept for error messages instead of being printed. */
  silent?: boolean;
  /**
   * Further command-line arguments passed verbatim (e.g. ["--hardfork", "cancun"]). Not --quiet:
   * readiness detection reads Anvil's "Listening on" line.
   */
  extraArgs?: string[];
}

export interface AnvilInstance {
  rpcUrl: string;
  host: string;
  port: number;
  chainId: number;
  pid: number;
  /** SIGTERM, then SIGKILL after 3 s; resolves once the process has exited. Idempotent. */
  stop(): Promise<void>;
}

/** First 10 keys of the "test test test test test test test test test test test junk" mnemonic. */
export const anvilDevPrivateKeys: readonly Hex[] = Object.freeze([
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
  "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
  "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
  "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
  "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
  "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
  "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
] as const);

const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 3_000;
const READY_POLL_INTERVAL_MS = 50;
const READY_REQUEST_TIMEOUT_MS = 1_000;
const OUTPUT_TAIL_LINES = 30;

/** Absolute path of the Anvil binary inside node_modules. Resolved lazily: it is an optional dependency. */
export function anvilBinaryPath(): string {
  return createRequire(import.meta.url).resolve("@foundry-rs/anvil-linux-amd64/bin/anvil");
}

// ---------------------------------------------------------------- start

function buildArgs(options: StartAnvilOptions, host: string): string[] {
  const args = ["--chain-id", String(options.chainId), "--host", host, "--port", String(options.port ?? 0)];
  if (options.blockTimeSeconds !== undefined) args.push("--block-time", String(options.blockTimeSeconds));
  if (options.noMining) args.push("--no-mining");
  if (options.forkUrl !== undefined) args.push("--fork-url", options.forkUrl);
  if (options.forkBlockNumber !== undefined) args.push("--fork-block-number", options.forkBlockNumber.toString());
  if (options.accounts !== undefined) args.push("--accounts", String(options.accounts));
  if (options.balanceEther !== undefined) args.push("--balance", String(options.balanceEther));
  args.push(...(options.extraArgs ?? []));
  return args;
}

/** Keeps the last lines of Anvil's stdout+stderr for error messages, and extracts its port. */
class OutputTail {
  private readonly lines: string[] = [];
  private partial = "";
  listeningPort: number | undefined;

  push(chunk: string): void {
    const text = this.partial + chunk;
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    for (const line of parts) this.addLine(line);
  }

  private addLine(line: string): void {
    // Printed once at start, e.g. "Listening on 127.0.0.1:39975": the only way to learn port 0's choice.
    const listening = /Listening on .*:(\d+)\s*$/.exec(line);
    if (listening && this.listeningPort === undefined) this.listeningPort = Number(listening[1]);
    this.lines.push(line);
    if (this.lines.length > OUTPUT_TAIL_LINES) this.lines.shift();
  }

  text(): string {
    return [...this.lines, this.partial].filter((l) => l.trim() !== "").join("\n");
  }
}

function connectHost(listenHost: string): string {
  if (listenHost === "0.0.0.0") return "127.0.0.1";
  if (listenHost === "::") return "[::1]";
  return listenHost.includes(":") ? `[${listenHost}]` : listenHost;
}

async function rpcChainId(rpcUrl: string): Promise<number | undefined> {
  try {
    const response = await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(READY_REQUEST_TIMEOUT_MS),
    });
    if (!response.ok) return undefined;
    const body = (await response.json()) as { result?: string };
    return typeof body.result === "string" ? Number(BigInt(body.result)) : undefined;
  } catch {
    return undefined; // not listening yet
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startAnvil(options: StartAnvilOptions): Promise<AnvilInstance> {
  const host = options.host ?? DEFAULT_HOST;
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const silent = options.silent ?? true;

  const child = spawn(anvilBinaryPath(), buildArgs(options, host), { stdio: ["ignore", "pipe", "pipe"] });
  killOnExit(child);
  const tail = new OutputTail();
  let spawnError: Error | undefined;
  child.on("error", (error) => (spawnError ??= error));
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    tail.push(chunk);
    if (!silent) process.stdout.write(chunk);
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    tail.push(chunk);
    if (!silent) process.stderr.write(chunk);
  });

  const stop = makeStop(child);
  const fail = async (reason: string): Promise<never> => {
    await stop();
    const output = tail.text();
    throw new Error(`anvil ${reason}${output ? `; last output:\n${output}` : ""}`);
  };

  // Wall-clock polling of a child's start-up, not a decision of the service: no injected Clock here.
  const deadlineMs = Date.now() + startTimeoutMs;
  let rpcUrl: string | undefined;
  let port: number | undefined;
  while (Date.now() < deadlineMs) {
    if (spawnError) return fail(`could not be spawned: ${spawnError.message}`);
    if (hasExited(child)) return fail(`exited (code ${child.exitCode}, signal ${child.signalCode}) before it was ready`);
    // Wait for our own child's "Listening on" line even when the port was given: otherwise a
    // different node already on that port could answer the poll while ours fails to bind.
    port ??= tail.listeningPort;
    if (port !== undefined && options.port !== undefined && port !== options.port) {
      return fail(`listens on port ${port}, expected ${options.port}`);
    }
    if (port !== undefined) {
      rpcUrl = `http://${connectHost(host)}:${port}`;
      const chainId = await rpcChainId(rpcUrl);
      if (chainId !== undefined) {
        if (chainId !== options.chainId) {
          return fail(`at ${rpcUrl} answered chain id ${chainId}, expected ${options.chainId} (port taken by another node?)`);
        }
        // Ready. From now on the node must not keep this process alive by itself: the caller's
        // server or test runner decides the lifetime, and the exit hook cleans up.
        child.unref();
        (child.stdout as unknown as { unref?: () => void }).unref?.();
        (child.stderr as unknown as { unref?: () => void }).unref?.();
        return { rpcUrl, host, port, chainId, pid: child.pid!, stop };
      }
    }
    await sleep(READY_POLL_INTERVAL_MS);
  }
  return fail(`did not answer eth_chainId${rpcUrl ? ` at ${rpcUrl}` : ""} within ${startTimeoutMs} ms`);
}

// ---------------------------------------------------------------- stop

function makeStop(child: ChildProcess): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      if (hasExited(child) || child.pid === undefined) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const outcome = await withTimeout(exited.then(() => "exited" as const), STOP_GRACE_MS, () => "timeout" as const);
      if (outcome === "timeout" && !hasExited(child)) {
        child.kill("SIGKILL");
        await exited;
      }
    })();
    return stopping;
  };
}
