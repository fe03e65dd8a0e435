import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/sandbox/free-port.js";
import { addressOf, keys } from "../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { runCli } from "../helpers/cli.js";

/**
 * What an operator sees when the configuration is wrong: one line on stderr naming the variable
 * (URLs as user@host:port/db, never a password), exit code 2, never a stack. Through the real CLI.
 */
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase("startup_errors");
});
afterAll(async () => {
  await database?.drop();
});

function cli(args: string[], env: Record<string, string>) {
  return runCli(args, { PATH: process.env.PATH!, LOG_LEVEL: "warn", ...env });
}

/** The one stderr line, after asserting there is exactly one and that it is no stack. */
function oneLine(result: { code: number; stderr: string }): string {
  const lines = result.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).not.toMatch(/^\s+at /);
  return lines[0]!;
}

const serveEnv = { NETWORKS: "base-sepolia", RPC_URLS_84532: "http://127.0.0.1:9" };

describe("start-up errors are one line naming the variable", () => {
  it.each([
    ["all zero", `0x${"0".repeat(64)}`],
    ["the curve order or above", `0x${"f".repeat(64)}`],
  ])("a signer key that is %s", async (_what, key) => {
    const result = await cli(["serve"], { ...serveEnv, DATABASE_URL: database.url, SIGNER_PRIVATE_KEYS: `${keys.facilitator},${key}` });
    expect(result.code).toBe(2);
    expect(oneLine(result)).toBe("x402-facilitator: configuration error: SIGNER_PRIVATE_KEYS: key #2 is not a valid secp256k1 private key (zero, or not below the curve order)");
  });

  it("a DATABASE_URL that is not a URL", async () => {
    const result = await cli(["serve"], { ...serveEnv, DATABASE_URL: "notaurl", SIGNER_PRIVATE_KEYS: keys.facilitator });
    expect(result.code).toBe(2);
    expect(oneLine(result)).toBe("x402-facilitator: configuration error: DATABASE_URL is not a URL: expected a postgres:// URL with user, password, host, port and database");
  });

  it("an unreachable Postgres, named by host:port/db with the password masked", async () => {
    const port = await freePort();
    const result = await cli(["migrate"], { DATABASE_URL: `postgres://x402:s3cret-pw@127.0.0.1:${port}/x402` });
    expect(result.code).toBe(2);
    const line = oneLine(result);
    expect(line).toBe(`x402-facilitator: configuration error: DATABASE_URL (x402@127.0.0.1:${port}/x402): refused the connection: is Postgres running there?`);
    expect(result.stderr).not.toContain("s3cret-pw");
  });

  it("a database that does not exist on a running server", async () => {
    const url = new URL(database.url);
    url.pathname = "/no_such_database_x402";
    const result = await cli(["migrate"], { DATABASE_URL: url.toString() });
    expect(result.code).toBe(2);
    expect(oneLine(result)).toContain(`DATABASE_URL (${url.username ? `${url.username}@` : ""}${url.hostname}:${url.port || "5432"}/no_such_database_x402): database "no_such_database_x402" does not exist`);
    if (url.password) expect(result.stderr).not.toContain(url.password);
  });

  it("a SANCTIONS_DENYLIST_FILE with a line that is no address", async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), "x402-denylist-")), "denylist.txt");
    writeFileSync(file, `# sanctioned\n${addressOf(keys.stranger)}\n0x12 # too short\n`);
    const result = await cli(["serve"], { ...serveEnv, DATABASE_URL: database.url, SIGNER_PRIVATE_KEYS: keys.facilitator, SANCTIONS_DENYLIST_FILE: file });
    expect(result.code).toBe(2);
    expect(oneLine(result)).toBe(`x402-facilitator: configuration error: SANCTIONS_DENYLIST_FILE (${file}): line 3: "0x12" is not an address`);
  });

  it("an unknown CLI flag", async () => {
    const result = await cli(["keys", "create", "--name", "x", "--bogus"], { DATABASE_URL: database.url });
    expect(result.code).toBe(2);
    expect(oneLine(result)).toMatch(/^x402-facilitator: Unknown option '--bogus'.*\(see x402-facilitator help\)$/);
  });
});
