import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMigrations } from "../../src/store/migrate.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../helpers/database.js";
import { runCli } from "../helpers/cli.js";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase("cli");
  await runMigrations(database.url); // a test inserts rows itself
});
afterAll(async () => {
  await database?.drop();
});

function cli(args: string[], env: Record<string, string | undefined> = {}) {
  return runCli(args, { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: "warn", AUTH: "api-keys", ...env });
}

async function createKey(name: string, ...flags: string[]) {
  const created = await cli(["keys", "create", "--name", name, ...flags]);
  expect(created.code).toBe(0);
  return { key: /key: (x402_\S+)/.exec(created.stdout)![1]!, id: /created \w+ key (\S+)/.exec(created.stdout)![1]!, created };
}

const activeIds = async () =>
  withPgClient(database.url, async (c) => (await c.query("select id from api_keys where revoked_at is null")).rows.map((row) => row.id as string));

describe("x402-facilitator CLI", () => {
  it("creates, lists and revokes API keys; the key is printed once and only its hash is stored", async () => {
    const { key, id, created } = await createKey("proxy-a", "--pay-to", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "--rate-limit", "120", "--daily-gas-budget-wei", "5000000000000000");
    expect(created.stderr).toBe(""); // AUTH=api-keys: no warning
    const row = await withPgClient(database.url, async (c) => (await c.query("select * from api_keys where id = $1", [id])).rows[0]);
    expect(row).toMatchObject({ name: "proxy-a", role: "client", rate_limit_per_minute: 120, allowed_pay_to: ["0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"] });
    expect(JSON.stringify(row)).not.toContain(key);

    const listed = await cli(["keys", "list"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(key);
    const lines = listed.stdout.trimEnd().split("\n");
    expect(lines[0]!.split(/ {2,}/)).toEqual(["id", "name", "prefix", "role", "pay-to", "networks", "assets", "rate limit", "gas budget", "created", "revoked"]);
    const line = lines.find((text) => text.startsWith(id))!.split(/ {2,}/);
    expect(line).toEqual([id, "proxy-a", `${key.slice(0, 12)}…`, "client", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "any", "any", "120/min", "0.005 ETH/day", expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), "-"]);

    const revoked = await cli(["keys", "revoke", id]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe(`revoked ${id} (proxy-a, ${key.slice(0, 12)}…)\n`);
    expect((await cli(["keys", "list"])).stdout.split("\n").find((text) => text.startsWith(id))).toMatch(/ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    // Revoking it again: not found (exit 1), not a configuration error.
    const again = await cli(["keys", "revoke", id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(new RegExp(`^x402-facilitator: no active key matches id ${id}: ${id} \\(proxy-a\\) was revoked at \\d{4}-`));
    expect(again.stderr).not.toContain("configuration error");
  });

  it("revokes by the key prefix as keys list prints it, by a shorter prefix, and by the whole key", async () => {
    const a = await createKey("by-listed-prefix");
    const b = await createKey("by-short-prefix");
    const c = await createKey("by-whole-key");
    expect((await cli(["keys", "revoke", `${a.key.slice(0, 12)}…`])).stdout).toContain(`revoked ${a.id} `);
    expect((await cli(["keys", "revoke", b.key.slice(0, 9)])).stdout).toContain(`revoked ${b.id} `);
    const whole = await cli(["keys", "revoke", c.key]);
    expect(whole.stdout).toContain(`revoked ${c.id} `);
    expect(whole.stdout + whole.stderr).not.toContain(c.key);
    const active = await activeIds();
    for (const { id } of [a, b, c]) expect(active).not.toContain(id);
  });

  it("refuses a prefix that fits several active keys, listing their ids, and revokes nothing", async () => {
    const shared = `x402_${randomBytes(4).toString("hex").slice(0, 5)}`;
    const ids = await withPgClient(database.url, async (client) => {
      const inserted = [];
      for (const suffix of ["1", "2"]) {
        const { rows } = await client.query("insert into api_keys (name, key_hash, key_prefix) values ($1, $2, $3) returning id", [`twin-${suffix}`, randomBytes(32).toString("hex"), `${shared}${suffix}x`]);
        inserted.push(rows[0].id as string);
      }
      return inserted;
    });
    const ambiguous = await cli(["keys", "revoke", shared]);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toBe(`x402-facilitator: keys revoke: prefix "${shared}" fits 2 active keys: ${ids[1]} (twin-2), ${ids[0]} (twin-1); give the id or more of the key\n`);
    expect(await activeIds()).toEqual(expect.arrayContaining(ids));
    // "_" would be a LIKE wildcard: a prefix is compared as text, so "x402_abcd_1" matches no "x402_abcde1x".
    const wildcard = await cli(["keys", "revoke", `${shared.slice(0, -1)}_1`]);
    expect(wildcard.code).toBe(1);
    expect((await cli(["keys", "revoke", `${shared}1x…`])).stdout).toContain(`revoked ${ids[0]} `);
    expect((await cli(["keys", "revoke", shared])).stdout).toContain(`revoked ${ids[1]} `);
  });

  it("answers a key that matches nothing with exit 1, and a malformed target with exit 2", async () => {
    const nothing = await cli(["keys", "revoke", "x402_zzzzzzz"]);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toBe('x402-facilitator: no key matches prefix "x402_zzzzzzz"\n');
    const unknownKey = await cli(["keys", "revoke", `x402_${randomBytes(32).toString("base64url")}`]);
    expect(unknownKey.code).toBe(1);
    expect(unknownKey.stderr).toMatch(/^x402-facilitator: no key matches key x402_\S{7}…\n$/);
    const malformed = await cli(["keys", "revoke", "not-a-key"]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toBe('x402-facilitator: keys revoke: "not-a-key" is neither a key id (a UUID) nor a key or the start of one (x402_…)\n');
  });

  it("warns on stderr when the configuration's AUTH is off or unset: the key is not asked for yet", async () => {
    for (const auth of ["off", undefined]) {
      const created = await cli(["keys", "create", "--name", `auth-${auth ?? "unset"}`], { AUTH: auth });
      expect(created.code).toBe(0);
      expect(created.stdout).toMatch(/key: x402_/);
      expect(created.stderr).toBe(`warning: AUTH is ${auth ? '"off"' : "unset"} (off): the server does not ask for this key until it runs with AUTH=api-keys\n`);
    }
  });

  it("prints the keys usage for keys --help, keys -h and keys help, exit 0, without a database", async () => {
    for (const flag of ["--help", "-h", "help"]) {
      const help = await cli(["keys", flag], { DATABASE_URL: undefined });
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^x402-facilitator keys <action>/);
      expect(help.stdout).toContain("keys revoke <id | key | key prefix>");
    }
    const top = await cli(["help"]);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain("payment   --rpc URL --token ADDR");
  });

  it("fails with a clear message and exit code 2 on bad input, without calling it a configuration error", async () => {
    const noName = await cli(["keys", "create"]);
    expect(noName.code).toBe(2);
    expect(noName.stderr).toBe("x402-facilitator: keys create needs --name (see x402-facilitator keys help)\n");
    const badAddress = await cli(["keys", "create", "--name", "x", "--pay-to", "0x12"]);
    expect(badAddress.code).toBe(2);
    expect(badAddress.stderr).toMatch(/--pay-to: "0x12" is not an address/);
    const badNetwork = await cli(["keys", "create", "--name", "x", "--networks", "mars"]);
    expect(badNetwork.code).toBe(2);
    expect(badNetwork.stderr).toBe('x402-facilitator: --networks: "mars" is neither an x402 v1 network name nor eip155:<chainId>\n');
    const noAction = await cli(["keys"]);
    expect(noAction.code).toBe(2);
    const unknown = await cli(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('x402-facilitator: unknown command "frobnicate" (see x402-facilitator help)\n');
    // A missing DATABASE_URL is still the configuration's fault.
    const noDatabase = await cli(["keys", "list"], { DATABASE_URL: undefined });
    expect(noDatabase.code).toBe(2);
    expect(noDatabase.stderr).toMatch(/^x402-facilitator: configuration error: DATABASE_URL/);
  });
});
