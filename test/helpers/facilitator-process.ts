/**
 * A real facilitator in a CHILD process (test/helpers/facilitator-child.ts → src/server-process.ts
 * startServer), for tests that need a process to die: SIGKILL at a crash point
 * (X402_TEST_CRASH_AT), or SIGTERM for a graceful shutdown.
 *
 * No orphans: every child is SIGKILLed when this process exits, and a child whose stdin closes
 * (this process died without running exit hooks) shuts itself down. Tests still kill in afterAll.
 */
import { killOnExit } from "../../src/sandbox/child-reaper.js";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { Address, Hex } from "viem";
import type { CrashPoint } from "../../src/settlement/crash-points.js";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const childEntry = path.join(repoRoot, "test/helpers/facilitator-child.ts");
/** Spelled the same in facilitator-child.ts. */
const readyEvent = "facilitator-ready";
/** Migrations + listen take ~3 s of CPU under tsx; several children starting on a busy 2-CPU box took up to ~30 s. */
const DEFAULT_START_TIMEOUT_MS = 45_000;
const DEFAULT_EXIT_TIMEOUT_MS = 15_000;
const OUTPUT_TAIL_LINES = 200;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface FacilitatorProcessOptions {
  /** The child's configuration (see facilitatorEnv); merged over this process's environment. */
  env: Record<string, string>;
  /** Arms src/settlement/crash-points.ts: the child SIGKILLs itself the first time it gets there. */
  crashAt?: CrashPoint;
  /** Bound on migrations + listen; default 45 s. */
  startTimeoutMs?: number;
}

export interface FacilitatorProcess {
  url: string;
  child: ChildProcess;
  pid: number;
  /** Resolves with how the child ended; rejects if it has not ended within timeoutMs. */
  waitForExit(timeoutMs?: number): Promise<ExitStatus>;
  /** Sends `signal` (default SIGKILL) if the child still runs, then waits (bounded) for its exit. */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus>;
  /** The last lines of the child's stdout and stderr (its pino logs), for failure messages. */
  output(): string;
}

export interface FacilitatorEnvInput {
  databaseUrl: string;
  rpcUrl: string;
  token: Address;
  signerKeys: Hex[];
  chainId?: number;
  logLevel?: string;
  /** Extra variables, e.g. { SETTLE_BUDGET_MS: 1000, RECONCILE_INTERVAL_MS: 200 }. */
  limits?: Record<string, string | number>;
}

/** The environment facilitator-child.ts reads. */
export function facilitatorEnv(input: FacilitatorEnvInput): Record<string, string> {
  const env: Record<string, string> = {
    DATABASE_URL: input.databaseUrl,
    RPC_URL: input.rpcUrl,
    TOKEN_ADDRESS: input.token,
    SIGNER_PRIVATE_KEYS: input.signerKeys.join(","),
    CHAIN_ID: String(input.chainId ?? 84532),
    PORT: "0",
    LOG_LEVEL: input.logLevel ?? "warn",
  };
  for (const [name, value] of Object.entries(input.limits ?? {})) env[name] = String(value);
  return env;
}


export async function startFacilitatorProcess(options: FacilitatorProcessOptions): Promise<FacilitatorProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  delete env.X402_TEST_CRASH_AT;
  if (options.crashAt) env.X402_TEST_CRASH_AT = options.crashAt;
  const child = spawn(process.execPath, ["--import", "tsx", childEntry], { cwd: repoRoot, env, stdio: ["pipe", "pipe", "pipe"] });
  killOnExit(child);

  const tail: string[] = [];
  const remember = (line: string) => {
    tail.push(line);
    if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
  };
  const output = () => tail.join("\n");

  const exited = new Promise<ExitStatus>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let spawnError: Error | undefined;
  child.on("error", (error) => (spawnError ??= error));
  // stdin stays open for the child's lifetime: its end tells the child that we are gone.
  child.stdin!.on("error", () => {});

  let resolveUrl: (url: string) => void = () => {};
  const ready = new Promise<string>((resolve) => (resolveUrl = resolve));
  let partial = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      remember(line);
      if (!line.includes(readyEvent)) continue;
      try {
        const parsed = JSON.parse(line) as { event?: string; url?: string };
        if (parsed.event === readyEvent && parsed.url) resolveUrl(parsed.url);
      } catch {
        // a log line that merely mentions the word
      }
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    for (const line of chunk.split("\n")) if (line.trim() !== "") remember(`[stderr] ${line}`);
  });

  const waitForExit = async (timeoutMs = DEFAULT_EXIT_TIMEOUT_MS): Promise<ExitStatus> => {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`facilitator child ${child.pid} did not exit within ${timeoutMs} ms; output:\n${output()}`)), timeoutMs);
    });
    try {
      return await Promise.race([exited, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  };
  const running = () => child.exitCode === null && child.signalCode === null;
  const kill = async (signal: NodeJS.Signals = "SIGKILL", timeoutMs = DEFAULT_EXIT_TIMEOUT_MS): Promise<ExitStatus> => {
    if (running()) child.kill(signal);
    try {
      return await waitForExit(timeoutMs);
    } catch (error) {
      child.kill("SIGKILL"); // never leave it behind, even when a graceful stop hangs
      await exited;
      throw error;
    }
  };

  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  let startTimer: NodeJS.Timeout | undefined;
  try {
    const url = await Promise.race([
      ready,
      exited.then((status) => {
        throw new Error(`facilitator child exited before it was ready (code ${status.code}, signal ${status.signal}); output:\n${output()}`);
      }),
      new Promise<never>((_, reject) => {
        startTimer = setTimeout(() => reject(new Error(`facilitator child not ready within ${startTimeoutMs} ms${spawnError ? ` (${spawnError.message})` : ""}; output:\n${output()}`)), startTimeoutMs);
      }),
    ]);
    return { url, child, pid: child.pid!, waitForExit, kill, output };
  } catch (error) {
    await kill("SIGKILL").catch(() => undefined);
    throw error;
  } finally {
    clearTimeout(startTimer);
  }
}
