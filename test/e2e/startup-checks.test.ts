import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/sandbox/free-port.js";
import { batchSettlerAddress } from "../../src/contracts/batch-settler.js";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { addressOf, keys, startTestChain, type TestChain } from "../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";

/**
 * Start-up self-checks, through the real process (`bin/x402-facilitator.js serve`): a wrong chain or
 * token domain stops it with one line and exit 2; an unreachable RPC URL is a warning /ready lists.
 */
const repoRoot = path.resolve(import.meta.dirname, "../..");
let chain: TestChain;
let database: TestDatabase;

beforeAll(async () => {
  chain = await startTestChain(); // chain 84532 (Base Sepolia's id), TestUSDC named "USDC" version "2"
  database = await createTestDatabase("startup_checks");
});
afterAll(async () => {
  await database?.drop();
  await chain?.stop();
});

function configFile(networks: object[]): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "x402-config-")), "facilitator.json");
  writeFileSync(file, JSON.stringify({ networks }));
  return file;
}

const asset = (overrides: object = {}) => ({ address: chain.token, name: "USDC", version: "2", decimals: 6, ...overrides });

interface Started {
  code: number | null;
  stderr: string;
  stdout: string;
  /** Set when the process listened: its URL (the test stops it). */
  url?: string;
}

/** Runs `serve` until it exits or logs that it listens (then the caller gets the URL and stops it). */
function serve(env: Record<string, string>, onListening?: (url: string) => Promise<void>): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/x402-facilitator.js", "serve"], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH!, DATABASE_URL: database.url, SIGNER_PRIVATE_KEYS: keys.facilitator, LOG_LEVEL: "info", LOG_FORMAT: "json", HOST: "127.0.0.1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let url: string | undefined;
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const listening = /"url":"(http:\/\/[^"]+)".*x402 facilitator listening/.exec(stdout);
      if (listening && !url) {
        url = listening[1]!;
        (onListening ?? (async () => undefined))(url).then(
          () => child.kill("SIGTERM"),
          (error: unknown) => {
            child.kill("SIGKILL");
            reject(error);
          },
        );
      }
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout, url });
    });
  });
}

/** The first JSON log line whose message contains `text`. */
function logLine(stdout: string, text: string): { level: number; msg: string } | undefined {
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { level: number; msg: string };
    if (entry.msg?.includes(text)) return entry;
  }
  return undefined;
}

describe("start-up self-checks (the real process)", () => {
  it("refuses an RPC URL that serves another chain, naming the variable and the chain it answers", async () => {
    const started = await serve({ NETWORKS: "base", RPC_URLS_8453: chain.rpcUrl });
    expect(started.code).toBe(2);
    const lines = started.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(`x402-facilitator: configuration error: RPC_URLS_8453 #1 (${new URL(chain.rpcUrl).host}) answers chain 84532, not 8453 (eip155:8453)`);
  });

  it("refuses an asset whose EIP-712 domain differs from the configured name/version, quoting both", async () => {
    const started = await serve({ FACILITATOR_CONFIG: configFile([{ network: "eip155:84532", rpcUrls: [chain.rpcUrl], assets: [asset({ name: "USD Coin" })] }]) });
    expect(started.code).toBe(2);
    const lines = started.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`FACILITATOR_CONFIG eip155:84532 asset ${chain.token}: configured EIP-712 domain name "USD Coin" version "2", the token's is name "USDC" version "2"`);
  });

  it("refuses an asset address without a contract", async () => {
    const nowhere = "0x000000000000000000000000000000000000dEaD";
    const started = await serve({ FACILITATOR_CONFIG: configFile([{ network: "eip155:84532", rpcUrls: [chain.rpcUrl], assets: [asset({ address: nowhere })] }]) });
    expect(started.code).toBe(2);
    expect(started.stderr.trim().split("\n")).toEqual([`x402-facilitator: configuration error: FACILITATOR_CONFIG eip155:84532 asset ${nowhere}: no contract at this address on chain 84532`]);
  });

  it("starts with an unreachable RPC URL among good ones: a warning, and /ready lists it while the network is ready", async () => {
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    let ready: { status: number; body: Record<string, unknown> } | undefined;
    const started = await serve(
      { PORT: String(await freePort()), FACILITATOR_CONFIG: configFile([{ network: "eip155:84532", rpcUrls: [chain.rpcUrl, deadUrl], assets: [asset()] }]) },
      async (url) => {
        const response = await fetch(`${url}/ready`);
        ready = { status: response.status, body: (await response.json()) as Record<string, unknown> };
      },
    );
    expect(started.url).toBeDefined();
    expect(started.stdout).toContain(`FACILITATOR_CONFIG eip155:84532 rpcUrls #2 (${new URL(deadUrl).host}) unreachable`);
    expect(ready!.status).toBe(200);
    expect(ready!.body).toMatchObject({ status: "ready", networks: { "eip155:84532": "ok" } });
    expect(started.stdout).not.toContain("cannot pay gas"); // the signer is funded
    expect(logLine(started.stdout, "BatchSettler")).toBeUndefined(); // deployed on this chain: nothing to say
    expect(ready!.body.rpcUrls).toEqual([expect.stringContaining(`FACILITATOR_CONFIG eip155:84532 rpcUrls #2 (${new URL(deadUrl).host}) unreachable`)]);
  });

  it("notes a missing BatchSettler at info when batching is on by default, and warns only when SETTLE_BATCH_MAX was set", async () => {
    const code = await chain.publicClient.getCode({ address: batchSettlerAddress });
    await chain.testClient.setCode({ address: batchSettlerAddress, bytecode: "0x" });
    try {
      const config = configFile([{ network: "eip155:84532", rpcUrls: [chain.rpcUrl], assets: [asset()] }]);
      const byDefault = await serve({ PORT: String(await freePort()), FACILITATOR_CONFIG: config }, async () => undefined);
      expect(logLine(byDefault.stdout, "BatchSettler is not deployed")).toMatchObject({ level: 30 });
      expect(logLine(byDefault.stdout, "BatchSettler is not deployed")!.msg).not.toContain("SETTLE_BATCH_MAX is set");
      const asked = await serve({ PORT: String(await freePort()), FACILITATOR_CONFIG: config, SETTLE_BATCH_MAX: "8" }, async () => undefined);
      expect(logLine(asked.stdout, "BatchSettler is not deployed")).toMatchObject({ level: 40, msg: expect.stringContaining("although SETTLE_BATCH_MAX is set") });
      const off = await serve({ PORT: String(await freePort()), FACILITATOR_CONFIG: config, SETTLE_BATCH_MAX: "1" }, async () => undefined);
      expect(logLine(off.stdout, "BatchSettler")).toBeUndefined();
    } finally {
      await chain.testClient.setCode({ address: batchSettlerAddress, bytecode: code! });
    }
  });

  it("warns at start about a signer that cannot pay gas, and about one below MIN_SIGNER_BALANCE_WEI", async () => {
    const unfunded = generatePrivateKey();
    const result = await serve(
      { PORT: String(await freePort()), SIGNER_PRIVATE_KEYS: `${keys.facilitator},${unfunded}`, MIN_SIGNER_BALANCE_WEI: "10000000000000000000000000", FACILITATOR_CONFIG: configFile([{ network: "eip155:84532", rpcUrls: [chain.rpcUrl], assets: [asset()] }]) },
      async () => undefined,
    );
    expect(result.url).toBeDefined();
    expect(result.stdout).toContain(`signer ${privateKeyToAccount(unfunded).address} holds no ETH on eip155:84532: it cannot pay gas for settlements until funded`);
    expect(result.stdout).toMatch(new RegExp(`signer ${addressOf(keys.facilitator)} holds [0-9.]+ ETH on eip155:84532, below MIN_SIGNER_BALANCE_WEI \\(10000000 ETH\\)`));
  });
});
