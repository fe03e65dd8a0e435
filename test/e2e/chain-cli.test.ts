import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/sandbox/free-port.js";
import type { SandboxInfo } from "../../src/sandbox/sandbox.js";
import { MULTICALL3_ADDRESS as multicall3Address } from "../../src/sandbox/deploy.js";
import { addressOf, keys, startTestChain, type TestChain } from "../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../helpers/facilitator.js";
import { postJson } from "../helpers/http.js";
import { runCli } from "../helpers/cli.js";

/**
 * The CLI commands that read a chain, through the real process (`bin/x402-facilitator.js`) against
 * Anvil: `payment` prints a body a real facilitator verifies (v2 and v1, Base Sepolia's id and a
 * custom chain), `signers` reports balances and fails when an RPC does not answer.
 */
const run = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, "../..");
const customChainId = 424_242;
let baseSepolia: TestChain;
let custom: TestChain;
let database: TestDatabase;
const facilitators = new Map<TestChain, TestFacilitator>();
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);

beforeAll(async () => {
  [baseSepolia, custom, database] = await Promise.all([startTestChain(), startTestChain({ chainId: customChainId }), createTestDatabase("chain_cli")]);
  await Promise.all([baseSepolia.mint(payer, 1_000_000n), custom.mint(payer, 1_000_000n)]);
});
afterAll(async () => {
  await Promise.all([...facilitators.values()].map((facilitator) => facilitator.close()));
  await database?.drop();
  await Promise.all([baseSepolia?.stop(), custom?.stop()]);
});

function cli(args: string[], env: Record<string, string> = {}) {
  return runCli(args, { PATH: process.env.PATH!, LOG_LEVEL: "warn", ...env });
}

const payment = (chain: TestChain, ...extra: string[]) =>
  cli(["payment", "--rpc", chain.rpcUrl, "--token", chain.token, "--key", keys.payer, "--to", payTo, "--amount", "10000", ...extra]);

/** A real facilitator (real Postgres, this Anvil) serving the chain's TestUSDC, one per chain. */
async function facilitatorFor(chain: TestChain): Promise<TestFacilitator> {
  let facilitator = facilitators.get(chain);
  if (!facilitator) {
    facilitator = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [chain.rpcUrl], token: chain.token, chainId: chain.chainId });
    facilitators.set(chain, facilitator);
  }
  return facilitator;
}

describe("x402-facilitator payment", () => {
  it("prints a v2 body, domain and chain id read from the RPC, that a real facilitator verifies", async () => {
    const printed = await payment(baseSepolia);
    expect(printed).toMatchObject({ code: 0, stderr: "" });
    const body = JSON.parse(printed.stdout);
    const requirements = { scheme: "exact", network: "eip155:84532", amount: "10000", asset: baseSepolia.token, payTo, maxTimeoutSeconds: 300, extra: { name: "USDC", version: "2" } };
    expect(body).toMatchObject({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: requirements }, paymentRequirements: requirements });
    const verified = await postJson((await facilitatorFor(baseSepolia)).app, "/verify", body);
    expect(verified).toEqual({ status: 200, body: { isValid: true, payer } });
  });

  it("prints a v1 body with --v1 (the chain's v1 name) that verifies too, and honours --network and --valid-seconds", async () => {
    const printed = await payment(baseSepolia, "--v1", "--network", "eip155:84532", "--valid-seconds", "120");
    expect(printed.code).toBe(0);
    const body = JSON.parse(printed.stdout);
    expect(body).toMatchObject({
      x402Version: 1,
      paymentPayload: { x402Version: 1, scheme: "exact", network: "base-sepolia" },
      paymentRequirements: { scheme: "exact", network: "base-sepolia", maxAmountRequired: "10000", asset: baseSepolia.token, payTo, maxTimeoutSeconds: 120 },
    });
    const { validAfter, validBefore } = body.paymentPayload.payload.authorization;
    expect(Number(validBefore) - Number(validAfter)).toBe(600 + 120);
    expect(await postJson((await facilitatorFor(baseSepolia)).app, "/verify", body)).toEqual({ status: 200, body: { isValid: true, payer } });
  });

  it("works on a custom chain (v2); --v1 there is refused: the chain has no x402 v1 name", async () => {
    const printed = await payment(custom);
    expect(printed.code).toBe(0);
    const body = JSON.parse(printed.stdout);
    expect(body.paymentRequirements.network).toBe(`eip155:${customChainId}`);
    expect(await postJson((await facilitatorFor(custom)).app, "/verify", body)).toEqual({ status: 200, body: { isValid: true, payer } });

    const v1 = await payment(custom, "--v1");
    expect(v1).toMatchObject({ code: 2, stdout: "" });
    expect(v1.stderr).toBe(`x402-facilitator: --v1: chain ${customChainId} has no x402 v1 network name; x402 v2 (without --v1) names it eip155:${customChainId}\n`);
    const wrongNetwork = await payment(custom, "--network", "base");
    expect(wrongNetwork.code).toBe(2);
    expect(wrongNetwork.stderr).toMatch(/^x402-facilitator: --network base is chain 8453, but --rpc http:\/\/127\.0\.0\.1:\d+ serves chain 424242\n$/);
  });

  it("warns when the payer holds less than --amount, and still prints the body", async () => {
    const printed = await cli(["payment", "--rpc", custom.rpcUrl, "--token", custom.token, "--key", keys.stranger, "--to", payTo, "--amount", "5"]);
    expect(printed.code).toBe(0);
    expect(printed.stderr).toBe(`warning: the payer ${addressOf(keys.stranger)} holds 0 of the token's atomic units, less than --amount 5: /verify will say so\n`);
    expect(JSON.parse(printed.stdout).x402Version).toBe(2);
  });

  it("says in one line, exit 2, what is wrong: an unreachable RPC, no contract or no EIP-3009 token at --token, a bad key, a missing flag", async () => {
    const closed = `http://user:SECRET@127.0.0.1:${await freePort()}/v2/SECRET`;
    const cases: Array<[string[], RegExp | string]> = [
      [["--rpc", closed, "--token", custom.token, "--key", keys.payer, "--to", payTo, "--amount", "1"], /^--rpc http:\/\/127\.0\.0\.1:\d+: no answer: HTTP request failed\. \(ECONNREFUSED\)$/],
      [["--rpc", custom.rpcUrl, "--token", payTo, "--key", keys.payer, "--to", payTo, "--amount", "1"], `--token ${payTo}: no contract at this address on chain ${customChainId}`],
      [
        ["--rpc", custom.rpcUrl, "--token", multicall3Address, "--key", keys.payer, "--to", payTo, "--amount", "1"],
        `--token ${multicall3Address}: its EIP-712 domain cannot be read (neither name() and version() nor eip712Domain() answer on chain ${customChainId}): not an EIP-3009 token like USDC`,
      ],
      [["--rpc", custom.rpcUrl, "--token", custom.token, "--key", "0x1234", "--to", payTo, "--amount", "1"], "--key: not a private key (expected 32 bytes of hex)"],
      [["--rpc", custom.rpcUrl, "--token", custom.token, "--key", `0x${"0".repeat(64)}`, "--to", payTo, "--amount", "1"], "--key: not a valid secp256k1 private key (zero, or not below the curve order)"],
      [["--rpc", custom.rpcUrl, "--token", custom.token, "--key", keys.payer, "--to", payTo, "--amount", "1.5"], "--amount must be a positive integer (the token's atomic units)"],
      [["--rpc", custom.rpcUrl, "--token", custom.token, "--to", payTo], "payment needs --key, --amount (see x402-facilitator payment --help)"],
      [["--rpc", "ws://127.0.0.1:1", "--token", custom.token, "--key", keys.payer, "--to", payTo, "--amount", "1"], "--rpc: ws:// is not supported, give an http:// or https:// URL"],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(["payment", ...args])));
    results.forEach((result, index) => {
      const expected = cases[index]![1];
      expect(result.code, result.stderr).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr.endsWith("\n") && result.stderr.split("\n").length === 2, result.stderr).toBe(true);
      const line = result.stderr.trimEnd().replace(/^x402-facilitator: /, "");
      if (typeof expected === "string") expect(line).toBe(expected);
      else expect(line).toMatch(expected);
      expect(result.stderr).not.toContain("SECRET");
      expect(result.stderr).not.toContain(keys.payer.slice(2, 20));
    });
  });

  it("prints its usage for payment --help, exit 0", async () => {
    const help = await cli(["payment", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^x402-facilitator payment --rpc URL --token ADDR --key KEY --to ADDR --amount N/);
  });
});

describe("scripts/sandbox-payment.ts (the same body-building, the sandbox's demo payer)", () => {
  it("prints v2 and v1 bodies a real facilitator verifies", async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "x402-sandbox-payment-"));
    const info: Partial<SandboxInfo> = {
      chainId: baseSepolia.chainId,
      network: "eip155:84532",
      v1Network: "base-sepolia",
      asset: { address: baseSepolia.token, name: "USDC", version: "2", decimals: 6 },
      payer: { address: payer, privateKey: keys.payer },
      payTo,
    };
    writeFileSync(path.join(dataDir, "sandbox.json"), JSON.stringify(info));
    const facilitator = await facilitatorFor(baseSepolia);
    for (const version of ["v2", "v1"]) {
      const { stdout } = await run(process.execPath, ["--import", "tsx", "scripts/sandbox-payment.ts", "10000", version], { cwd: repoRoot, env: { ...process.env, DATA_DIR: dataDir }, timeout: 30_000 });
      const body = JSON.parse(stdout);
      expect(body.x402Version).toBe(version === "v2" ? 2 : 1);
      expect(await postJson(facilitator.app, "/verify", body)).toEqual({ status: 200, body: { isValid: true, payer } });
    }
  });
});

describe("x402-facilitator signers", () => {
  const serveEnv = { DATABASE_URL: "postgres://x@127.0.0.1/db", SIGNER_PRIVATE_KEYS: keys.facilitator, RPC_RETRY_COUNT: "0" };
  const signer = addressOf(keys.facilitator);

  it("prints each signer's nonce and balance in ETH, exit 0", async () => {
    const result = await cli(["signers"], { ...serveEnv, NETWORKS: "base-sepolia", RPC_URLS_84532: baseSepolia.rpcUrl });
    expect(result).toEqual({ code: 0, stderr: "", stdout: `eip155:84532  ${signer}  nonce 0 (pending 0)  balance 10000 ETH\n` });
  });

  it("prints every line it can and exits 1 when an RPC does not answer", async () => {
    const result = await cli(["signers"], { ...serveEnv, NETWORKS: "base-sepolia,base", RPC_URLS_84532: baseSepolia.rpcUrl, RPC_URLS_8453: `http://127.0.0.1:${await freePort()}` });
    expect(result.code).toBe(1);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines).toContain(`eip155:84532  ${signer}  nonce 0 (pending 0)  balance 10000 ETH`);
    expect(lines.find((line) => line.startsWith("eip155:8453 "))).toMatch(new RegExp(`^eip155:8453  ${signer}  unreachable: `));
    expect(result.stderr).toBe("x402-facilitator: signers: no answer from the RPC of eip155:8453\n");
  });
});
