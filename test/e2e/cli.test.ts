import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, withPgClient, type TestDatabase } from "../helpers/database.js";

const run = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, "../..");
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase("cli");
});
afterAll(async () => {
  await database?.drop();
});

async function cli(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, ["bin/x402-facilitator.js", ...args], {
      cwd: repoRoot,
      env: { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: "warn" },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("x402-facilitator CLI", () => {
  it("creates, lists and revokes API keys; the key is printed once and only its hash is stored", async () => {
    const created = await cli("keys", "create", "--name", "proxy-a", "--pay-to", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "--rate-limit", "120");
    expect(created.code).toBe(0);
    const key = /key: (x402_\S+)/.exec(created.stdout)?.[1];
    expect(key).toBeDefined();
    const id = /created client key (\S+)/.exec(created.stdout)![1]!;
    const row = await withPgClient(database.url, async (c) => (await c.query("select * from api_keys where id = $1", [id])).rows[0]);
    expect(row).toMatchObject({ name: "proxy-a", role: "client", rate_limit_per_minute: 120, allowed_pay_to: ["0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"] });
    expect(JSON.stringify(row)).not.toContain(key!);

    const listed = await cli("keys", "list");
    expect(listed.stdout).toContain(id);
    expect(listed.stdout).toContain("active");
    expect(listed.stdout).not.toContain(key!);

    expect((await cli("keys", "revoke", id)).stdout).toContain("revoked 1 key(s)");
    expect((await cli("keys", "list")).stdout).toMatch(/revoked \d{4}-/);
    const again = await cli("keys", "revoke", id);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/no active key matches/);
  });

  it("fails with a clear message and exit code 2 on bad input", async () => {
    const noName = await cli("keys", "create");
    expect(noName.code).toBe(2);
    expect(noName.stderr).toMatch(/needs --name/);
    const badAddress = await cli("keys", "create", "--name", "x", "--pay-to", "0x12");
    expect(badAddress.stderr).toMatch(/--pay-to: "0x12" is not an address/);
    const unknown = await cli("frobnicate");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command/);
  });
});
