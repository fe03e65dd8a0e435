import { execFileSync, spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { SandboxInfo } from "../../src/sandbox/sandbox.js";

/**
 * A supervisor stops `npm start` by signalling the PID it started: npm. npm does not pass the
 * signal through its shell, so the facilitator, Postgres and Anvil used to run on orphaned. Here npm
 * is killed outright (SIGKILL: nothing can be passed on) and everything it started must stop.
 */
const repoRoot = path.resolve(import.meta.dirname, "../..");
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function portAnswers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/** Processes whose command line mentions `needle` (Postgres and Anvil name the data dir / port in theirs). */
function processesMentioning(needle: string): string[] {
  const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return out.split("\n").filter((line) => line.includes(needle) && !line.includes("ps -eo"));
}

async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 40_000): Promise<void> {
  const untilMs = Date.now() + timeoutMs;
  while (Date.now() < untilMs) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("npm start under a supervisor", () => {
  it("stops the sandbox's facilitator, Anvil and Postgres when npm itself is killed", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "x402-npm-start-"));
    dirs.push(dataDir);
    await chmod(dataDir, 0o755);
    const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PORT: "0", SANDBOX_RPC_PORT: "0", LOG_LEVEL: "info", LOG_FORMAT: "json" };
    for (const name of ["DATABASE_URL", "NETWORKS", "FACILITATOR_CONFIG", "SIGNER_PRIVATE_KEYS", "npm_lifecycle_event"]) delete env[name];
    const npm = spawn("npm", ["start", "--silent"], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    npm.stdout!.on("data", (chunk) => (output += chunk));
    npm.stderr!.on("data", (chunk) => (output += chunk));
    let info: SandboxInfo | undefined;
    await until(async () => {
      if (npm.exitCode !== null) throw new Error(`npm start exited early:\n${output}`);
      // The file may be caught half-written: not there yet until it parses.
      info = await readFile(path.join(dataDir, "sandbox.json"), "utf8").then(
        (text) => {
          try {
            return JSON.parse(text) as SandboxInfo;
          } catch {
            return undefined;
          }
        },
        () => undefined,
      );
      return info !== undefined && (await portAnswers(info.facilitatorUrl));
    }, "the sandbox to start", 60_000);
    expect(processesMentioning(dataDir).length).toBeGreaterThan(0); // Postgres runs on the data dir

    npm.kill("SIGKILL");

    await until(async () => !(await portAnswers(info!.facilitatorUrl)) && !(await portAnswers(info!.rpcUrl)), "the facilitator and Anvil to stop");
    await until(() => processesMentioning(dataDir).length === 0, "Postgres to stop");
    expect(output).toContain("parent process exited; shutting down");
  }, 120_000);
});
