/** `signers` prints a line per network and signer; `keys revoke` tells its targets apart; `keys list` is a table. */
import { describe, expect, it } from "vitest";
import { CliError, NotFoundError, UsageError } from "../../../src/cli/cli-error.js";
import { keysCommand, listKeys, revokeMatch, signersCommand } from "../../../src/cli/key-commands.js";
import { freePort } from "../../../src/sandbox/free-port.js";
import { generateApiKey } from "../../../src/store/api-keys-repo.js";
import type { ApiKeyRow } from "../../../src/store/schema.js";

const secret = "SECRETKEY123";
const signer = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

describe("signersCommand", () => {
  it("reports an unreachable RPC without printing its URL's secret, then fails with exit code 1", async () => {
    const closedPort = await freePort();
    const lines: string[] = [];
    const failure = await signersCommand(
      {
        DATABASE_URL: "postgres://x@127.0.0.1/db",
        SIGNER_PRIVATE_KEYS: signer,
        NETWORKS: "base-sepolia",
        RPC_URLS_84532: `http://user:${secret}@127.0.0.1:${closedPort}/v2/${secret}?apikey=${secret}`,
        RPC_RETRY_COUNT: "0",
      },
      (line) => lines.push(line),
    ).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(CliError);
    expect((failure as CliError).exitCode).toBe(1);
    expect((failure as CliError).message).toBe("signers: no answer from the RPC of eip155:84532");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^eip155:84532 {2}0x\w{40} {2}unreachable: /);
    expect(lines[0]).not.toContain(secret);
  });

  it("prints its usage for --help without reading any configuration", async () => {
    const lines: string[] = [];
    await signersCommand({}, (line) => lines.push(line), ["--help"]);
    expect(lines.join("\n")).toMatch(/^x402-facilitator signers/);
  });
});

describe("keys revoke targets", () => {
  const key = generateApiKey();
  const id = "0b7e8a52-3f3c-4c1e-9d55-2f7d3c2e9a10";

  it("tells an id, a whole key and a prefix (with or without the listing's ellipsis) apart", () => {
    expect(revokeMatch(id)).toEqual({ id });
    expect(revokeMatch(id.toUpperCase())).toEqual({ id });
    expect(revokeMatch(key)).toEqual({ key });
    expect(revokeMatch(`${key.slice(0, 12)}…`)).toEqual({ keyPrefix: key.slice(0, 12) });
    expect(revokeMatch(`${key.slice(0, 12)}...`)).toEqual({ keyPrefix: key.slice(0, 12) });
    expect(revokeMatch(key.slice(0, 7))).toEqual({ keyPrefix: key.slice(0, 7) });
    // Longer than what is stored and not the whole key: matched by hash, which will not match.
    expect(revokeMatch(key.slice(0, 20))).toEqual({ key: key.slice(0, 20) });
  });

  it("refuses what can name no key, without echoing more of a key than a listing shows", () => {
    expect(() => revokeMatch("x402_")).toThrow(UsageError);
    expect(() => revokeMatch("abc")).toThrow(/neither a key id \(a UUID\) nor a key/);
    const pasted = key.slice(5);
    let message = "";
    try {
      revokeMatch(pasted);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(`"${pasted.slice(0, 12)}…"`);
    expect(message).not.toContain(pasted.slice(0, 13));
    expect(() => revokeMatch(`${key.slice(0, 20)}…`)).toThrow(/only the first 12 characters of a key are stored/);
  });

  it("keys help, keys -h and keys --help print the usage; an unknown action is a usage error; neither needs a database", async () => {
    for (const args of [["help"], ["-h"], ["--help"], ["revoke", "--help"]]) {
      const lines: string[] = [];
      await keysCommand(args, {}, (line) => lines.push(line));
      expect(lines.join("\n")).toMatch(/^x402-facilitator keys <action>/);
    }
    await expect(keysCommand(["frob"], {}, () => {})).rejects.toThrow(UsageError);
    await expect(keysCommand([], {}, () => {})).rejects.toThrow(/keys needs an action/);
    await expect(keysCommand(["revoke"], {}, () => {})).rejects.toThrow(/usage: keys revoke/);
    expect(new NotFoundError("x").exitCode).toBe(1);
    expect(new UsageError("x").exitCode).toBe(2);
  });
});

describe("keys list", () => {
  const row = (overrides: Partial<ApiKeyRow>): ApiKeyRow => ({
    id: "0b7e8a52-3f3c-4c1e-9d55-2f7d3c2e9a10",
    name: "proxy",
    keyHash: "00",
    keyPrefix: "x402_abcdefg",
    role: "client",
    allowedPayTo: null,
    allowedNetworks: null,
    allowedAssets: null,
    rateLimitPerMinute: null,
    dailyGasBudgetWei: null,
    createdAt: new Date("2025-01-02T03:04:05.678Z"),
    revokedAt: null,
    ...overrides,
  });

  it("prints a header and aligned columns", () => {
    const lines: string[] = [];
    listKeys(
      [
        row({}),
        row({
          id: "1b7e8a52-3f3c-4c1e-9d55-2f7d3c2e9a10",
          name: "ops\nforged line",
          role: "admin",
          allowedPayTo: ["0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"],
          allowedNetworks: ["eip155:8453", "eip155:84532"],
          rateLimitPerMinute: 600,
          dailyGasBudgetWei: "5000000000000000",
          revokedAt: new Date("2025-02-03T04:05:06.789Z"),
        }),
      ],
      (line) => lines.push(line),
    );
    expect(lines).toHaveLength(3);
    const columns = lines.map((line) => line.split(/ {2,}/));
    expect(columns[0]).toEqual(["id", "name", "prefix", "role", "pay-to", "networks", "assets", "rate limit", "gas budget", "created", "revoked"]);
    expect(columns[1]).toEqual(["0b7e8a52-3f3c-4c1e-9d55-2f7d3c2e9a10", "proxy", "x402_abcdefg…", "client", "any", "any", "any", "default", "unlimited", "2025-01-02T03:04:05Z", "-"]);
    expect(columns[2]).toEqual([
      "1b7e8a52-3f3c-4c1e-9d55-2f7d3c2e9a10",
      "ops?forged line",
      "x402_abcdefg…",
      "admin",
      "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
      "eip155:8453,eip155:84532",
      "any",
      "600/min",
      "0.005 ETH/day",
      "2025-01-02T03:04:05Z",
      "2025-02-03T04:05:06Z",
    ]);
    // Every column starts at the same offset on every line.
    expect(lines[1]!.indexOf("x402_")).toBe(lines[0]!.indexOf("prefix"));
    expect(lines[2]!.indexOf("600/min")).toBe(lines[0]!.indexOf("rate limit"));
  });

  it("says so when there is no key", () => {
    const lines: string[] = [];
    listKeys([], (line) => lines.push(line));
    expect(lines).toEqual(["no API keys (keys create --name NAME makes one)"]);
  });
});
