import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signPayment, v1Body, v2Body, v2Requirements } from "../helpers/payments.js";
import type { SandboxInfo } from "../../src/sandbox/sandbox.js";

/**
 * `npm start` with no configuration, as a user runs it: the compiled CLI (dist/, built by the global
 * setup as `npm ci` builds it) in a real child process, real HTTP. Configuration variables are
 * removed from the environment so the sandbox path is taken.
 */
const repoRoot = path.resolve(import.meta.dirname, "../..");
let dataDir: string;
let child: ChildProcess;
let info: SandboxInfo;
let output = "";

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "x402-sandbox-e2e-"));
  await chmod(dataDir, 0o755);
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PORT: "0", SANDBOX_RPC_PORT: "0", LOG_LEVEL: "warn" };
  for (const name of ["DATABASE_URL", "NETWORKS", "FACILITATOR_CONFIG", "SIGNER_PRIVATE_KEYS"]) delete env[name];
  // `npm start` is `node dist/cli/index.js serve`.
  child = spawn(process.execPath, ["dist/cli/index.js", "serve"], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  info = await waitForSandboxJson(path.join(dataDir, "sandbox.json"), 45_000);
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await rm(dataDir, { recursive: true, force: true });
});

async function waitForSandboxJson(file: string, timeoutMs: number): Promise<SandboxInfo> {
  const untilMs = Date.now() + timeoutMs;
  while (Date.now() < untilMs) {
    if (child.exitCode !== null) throw new Error(`sandbox exited early:\n${output}`);
    try {
      return JSON.parse(await readFile(file, "utf8")) as SandboxInfo;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`sandbox did not start in ${timeoutMs} ms:\n${output}`);
}

async function post(route: string, body: unknown) {
  const response = await fetch(`${info.facilitatorUrl}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

describe("npm start with no configuration (the sandbox)", () => {
  it("serves /supported for Base Sepolia in both versions, with its signer", async () => {
    const response = await fetch(`${info.facilitatorUrl}/supported`);
    const supported = (await response.json()) as { kinds: unknown[]; signers: Record<string, string[]> };
    expect(supported.kinds).toEqual([
      { x402Version: 2, scheme: "exact", network: "eip155:84532" },
      // The sandbox installs Permit2 and x402's proxies at their canonical addresses.
      { x402Version: 2, scheme: "upto", network: "eip155:84532", extra: { facilitatorAddress: info.facilitatorSigner } },
      { x402Version: 1, scheme: "exact", network: "base-sepolia" },
    ]);
    expect(supported.signers["eip155:*"]).toEqual([info.facilitatorSigner]);
    expect(info.asset).toEqual({ address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", name: "USDC", version: "2", decimals: 6 });
  });

  it("verifies and settles a payment signed by the demo payer over HTTP (v2 and v1)", async () => {
    const requirements = v2Requirements({ token: info.asset.address, payTo: info.payTo, amountAtomic: 10_000n });
    const payment = await signPayment({ payerKey: info.payer.privateKey, token: info.asset.address, chainId: info.chainId, payTo: info.payTo, valueAtomic: 10_000n });
    expect(await post("/verify", v2Body(payment, requirements))).toEqual({ status: 200, body: { isValid: true, payer: info.payer.address } });
    const settled = await post("/settle", v2Body(payment, requirements));
    expect(settled.body).toMatchObject({ success: true, network: "eip155:84532", payer: info.payer.address });
    const v1Payment = await signPayment({ payerKey: info.payer.privateKey, token: info.asset.address, chainId: info.chainId, payTo: info.payTo, valueAtomic: 5_000n });
    const v1 = await post("/settle", v1Body(v1Payment, { token: info.asset.address, payTo: info.payTo, amountAtomic: 5_000n }));
    expect(v1.body).toMatchObject({ success: true, network: "base-sepolia" });
  });

  it("stops the facilitator, the chain and Postgres on Ctrl-C", async () => {
    const rpcPort = Number(new URL(info.rpcUrl).port);
    expect(await portAnswers(rpcPort)).toBe(true);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(await portAnswers(rpcPort)).toBe(false);
    expect(await portAnswers(Number(new URL(info.facilitatorUrl).port))).toBe(false);
    const pgPid = await readFile(path.join(dataDir, "postgres", "postmaster.pid"), "utf8").catch(() => undefined);
    expect(pgPid).toBeUndefined(); // Postgres removes its pid file on a clean stop
  });
});
