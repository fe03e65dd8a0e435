import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, http } from "viem";
import { batchSettlerAddress, batchSettlerArtifact } from "../../src/contracts/batch-settler.js";
import { startAnvil, type AnvilInstance } from "../../src/sandbox/anvil.js";
import { keys } from "../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";

/**
 * `x402-facilitator batch-settler deploy` on a chain without BatchSettler: one CREATE2 transaction
 * through the chain's own deterministic-deployment proxy (every Anvil has it, as Base does) leaves
 * exactly the committed runtime code at the address the facilitator computes — so batches work on
 * any chain the operator deploys it to.
 */
const run = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, "../..");
let anvil: AnvilInstance;
let database: TestDatabase;

beforeAll(async () => {
  anvil = await startAnvil({ chainId: 84532 });
  database = await createTestDatabase("batch_settler_cli");
});
afterAll(async () => {
  await anvil?.stop();
  await database?.drop();
});

async function cli(...args: string[]) {
  const env = { ...process.env, DATABASE_URL: database.url, NETWORKS: "base-sepolia", RPC_URLS_84532: anvil.rpcUrl, SIGNER_PRIVATE_KEYS: keys.facilitator, LOG_LEVEL: "warn" };
  try {
    const { stdout } = await run(process.execPath, ["bin/x402-facilitator.js", ...args], { cwd: repoRoot, env, timeout: 60_000 });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: `${failed.stdout}${failed.stderr}` };
  }
}

describe("x402-facilitator batch-settler", () => {
  it("reports it absent, deploys it at the deterministic address with the committed code, then reports it deployed", async () => {
    expect((await cli("batch-settler", "status")).stdout).toContain(`BatchSettler ${batchSettlerAddress}  absent`);
    const deployed = await cli("batch-settler", "deploy", "--network", "eip155:84532");
    expect(deployed.code).toBe(0);
    const client = createPublicClient({ transport: http(anvil.rpcUrl) });
    expect(await client.getCode({ address: batchSettlerAddress })).toBe(batchSettlerArtifact.deployedBytecode);
    expect((await cli("batch-settler", "deploy")).stdout).toContain("deployed");
    expect((await cli("batch-settler", "status")).stdout).toContain(`BatchSettler ${batchSettlerAddress}  deployed`);
    expect((await cli("batch-settler", "deploy", "--network", "base")).code).toBe(2); // not a configured network
  });
});
