import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { logLevelFrom } from "../../src/logger.js";
import { describeDatabaseUrl } from "../../src/store/database-url.js";
import { envEnd, envExampleLimits, envExamplePath, envStart, limitsTable, markedSection, readmePath, readmeTable } from "../../scripts/config-table.js";
import { defaultLimits, isSandboxEnv, limitSpecs, loadConfig, loadPolicy } from "../../src/config.js";
import { ConfigError } from "../../src/errors.js";
import { limitNames, type LimitSpec } from "../../src/limits.js";

const signer = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const base = { DATABASE_URL: "postgres://x@127.0.0.1/db", SIGNER_PRIVATE_KEYS: signer };

function writeConfig(content: unknown): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "x402-config-"));
  const file = path.join(dir, "facilitator.json");
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

describe("loadConfig", () => {
  it("serves Base when neither NETWORKS nor FACILITATOR_CONFIG names a network (docker compose up with only a key)", () => {
    expect(loadConfig({ ...base }).networks.map((network) => network.network)).toEqual(["eip155:8453"]);
  });

  it("accepts a Unix-socket DATABASE_URL (?host=) and names it without the password", () => {
    expect(loadConfig({ ...base, DATABASE_URL: "postgres:///x402?host=/var/run/postgresql&user=x402" }).databaseUrl).toContain("host=");
    expect(describeDatabaseUrl("postgres:///x402?host=/var/run/postgresql&user=x402&password=pw")).toBe("/var/run/postgresql:5432/x402");
    expect(() => loadConfig({ ...base, DATABASE_URL: "postgres:///x402" })).toThrow(/names no host/);
  });

  it.each(["verbose", "INFO "])("refuses LOG_LEVEL=%s naming the variable", (level) => {
    expect(() => logLevelFrom({ LOG_LEVEL: level })).toThrow(/^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/);
  });

  it.each([
    ["notaurl", /^DATABASE_URL is not a URL/],
    ["mysql://u@h:3306/db", /^DATABASE_URL must start with postgres:\/\/ or postgresql:\/\/, got mysql:/],
    ["postgres://u:pw@h:5432", /^DATABASE_URL \(u@h:5432\/\) names no database/],
  ])("refuses DATABASE_URL=%s naming the variable, never the password", (url, message) => {
    expect(() => loadConfig({ ...base, DATABASE_URL: url })).toThrow(message);
    expect(() => loadConfig({ ...base, DATABASE_URL: url })).not.toThrow(/pw/);
  });

  it("serves Base with its USDC by v1 name, with defaults for host, port and limits", () => {
    const config = loadConfig({ ...base, NETWORKS: "base" });
    expect(config.host).toBe("127.0.0.1");
    expect(config.port).toBe(4020);
    expect(config.networks).toEqual([
      expect.objectContaining({
        network: "eip155:8453",
        v1Name: "base",
        assets: [{ address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", name: "USD Coin", version: "2", decimals: 6, symbol: "USDC" }],
        explorerUrl: "https://basescan.org",
      }),
    ]);
    expect(config.limits.settleBudgetMs).toBe(20_000);
  });

  it("knows Base Sepolia's explorer; FACILITATOR_CONFIG sets one, keeps the built-in, or removes it with null", () => {
    expect(loadConfig({ ...base, NETWORKS: "base-sepolia" }).networks[0]!.explorerUrl).toBe("https://sepolia.basescan.org");
    const explorerOf = (entry: Record<string, unknown>) => loadConfig({ ...base, FACILITATOR_CONFIG: writeConfig({ networks: [entry] }) }).networks[0]!.explorerUrl;
    const asset = { address: "0x5fbdb2315678afecb367f032d93f642f64180aa3", name: "USD Coin", version: "2", decimals: 6 };
    expect(explorerOf({ network: "eip155:31337", rpcUrls: ["http://127.0.0.1:8545"], assets: [asset], explorerUrl: "https://explorer.example/chain/" })).toBe("https://explorer.example/chain");
    expect(explorerOf({ network: "eip155:31337", rpcUrls: ["http://127.0.0.1:8545"], assets: [asset] })).toBeUndefined();
    expect(explorerOf({ network: "base", rpcUrls: ["http://127.0.0.1:8545"] })).toBe("https://basescan.org");
    expect(explorerOf({ network: "base", explorerUrl: null })).toBeUndefined();
    expect(explorerOf({ network: "base", explorerUrl: "http://127.0.0.1:4000" })).toBe("http://127.0.0.1:4000");
  });

  it.each([
    ["javascript:alert(1)", /explorerUrl: "javascript:alert\(1\)" is not an http\(s\) URL/],
    ["data:text/html,x", /is not an http\(s\) URL/],
    ["basescan.org", /is not a URL/],
    ["https://basescan.org/?ref=x", /plain base URL/],
    ["https://basescan.org/#x", /plain base URL/],
    ["https://user:SECRET@basescan.org", /must not carry credentials/],
  ])("refuses explorerUrl %s", (url, message) => {
    const file = writeConfig({ networks: [{ network: "base", explorerUrl: url }] });
    expect(() => loadConfig({ ...base, FACILITATOR_CONFIG: file })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, FACILITATOR_CONFIG: file })).toThrow(message);
    expect(() => loadConfig({ ...base, FACILITATOR_CONFIG: file })).not.toThrow(/SECRET/);
  });

  it("accepts CAIP-2 names and RPC_URLS_<chainId> for failover", () => {
    const config = loadConfig({ ...base, NETWORKS: "eip155:84532", RPC_URLS_84532: "http://a:1, http://b:2" });
    expect(config.networks[0]).toMatchObject({ chainId: 84532, v1Name: "base-sepolia", rpcUrls: ["http://a:1", "http://b:2"], rpcUrlsFrom: "RPC_URLS_84532" });
  });

  it("adds networks from FACILITATOR_CONFIG in the documented shape", () => {
    const file = writeConfig({
      networks: [{ network: "eip155:31337", v1Name: null, rpcUrls: ["http://127.0.0.1:8545"], assets: [{ address: "0x5fbdb2315678afecb367f032d93f642f64180aa3", name: "USD Coin", version: "2", decimals: 6 }] }],
    });
    const config = loadConfig({ ...base, FACILITATOR_CONFIG: file });
    expect(config.networks).toEqual([
      { network: "eip155:31337", chainId: 31337, v1Name: null, rpcUrls: ["http://127.0.0.1:8545"], assets: [{ address: "0x5FbDB2315678afecb367f032d93F642f64180aa3", name: "USD Coin", version: "2", decimals: 6 }], rpcUrlsFrom: "FACILITATOR_CONFIG eip155:31337 rpcUrls", assetsFrom: "FACILITATOR_CONFIG" },
    ]);
  });

  it.each([
    [{ SIGNER_PRIVATE_KEYS: signer, NETWORKS: "base" }, /DATABASE_URL is required/],
    [{ DATABASE_URL: base.DATABASE_URL, NETWORKS: "base" }, /SIGNER_PRIVATE_KEYS is required/],
    [{ ...base, NETWORKS: "base", SIGNER_PRIVATE_KEYS: "0x1234" }, /key #1 is not 32 bytes/],
    [{ ...base, NETWORKS: "mars" }, /"mars" is neither/],
    [{ ...base, NETWORKS: "eip155:10" }, /eip155:10 has no configuration/],
    [{ ...base, NETWORKS: "base", RPC_URLS_8453: "ftp://x" }, /not an http\(s\) URL/],
    [{ ...base, NETWORKS: "base", PORT: "99999" }, /PORT must be an integer from 0 to 65535/],
    [{ ...base, NETWORKS: "base", SETTLE_BUDGET_MS: "soon" }, /SETTLE_BUDGET_MS must be an integer/],
    [{ ...base, NETWORKS: " , " }, /NETWORKS is empty/],
  ])("fails fast with a clear message (%#)", (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  describe("never prints an RPC URL's secret in a configuration error", () => {
    const secret = "SECRETKEY123";
    const messageOf = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
      throw new Error("expected a ConfigError");
    };

    it.each([
      ["a URL of another scheme", `ftp://rpc.example.com/v2/${secret}`],
      ["a URL without its scheme", `base-mainnet.g.alchemy.com/v2/${secret}`],
      ["a URL with userinfo", `htps://user:${secret}@rpc.example.com`],
    ])("names %s by its place and scheme://host only", (_name, url) => {
      const message = messageOf({ ...base, NETWORKS: "base", RPC_URLS_8453: `https://ok.example, ${url}` });
      expect(message).toMatch(/RPC_URLS_8453: URL #2 .*is not an http\(s\) URL/);
      expect(message).not.toContain(secret);
    });

    it("in FACILITATOR_CONFIG's rpcUrls, or in a file that is not valid JSON", () => {
      const badUrl = writeConfig({ networks: [{ network: "eip155:8453", rpcUrls: [`wss://rpc.example.com/${secret}`] }] });
      expect(messageOf({ ...base, FACILITATOR_CONFIG: badUrl })).not.toContain(secret);
      const badJson = writeConfig(`${secret}`);
      const message = messageOf({ ...base, FACILITATOR_CONFIG: badJson });
      expect(message).toMatch(/not valid JSON/);
      expect(message).not.toContain(secret);
    });
  });

  it("rejects a malformed FACILITATOR_CONFIG naming the field", () => {
    expect(() => loadConfig({ ...base, FACILITATOR_CONFIG: writeConfig({ networks: [{ network: 1 }] }) })).toThrow(/\/networks\/0\/network/);
    expect(() => loadConfig({ ...base, FACILITATOR_CONFIG: writeConfig("{") })).toThrow(/cannot read/);
    const wrongV1 = writeConfig({ networks: [{ network: "eip155:8453", v1Name: "base-sepolia" }] });
    expect(() => loadConfig({ ...base, FACILITATOR_CONFIG: wrongV1 })).toThrow(/not the x402 v1 name/);
  });

  it("runs the sandbox only when nothing is configured", () => {
    expect(isSandboxEnv({})).toBe(true);
    expect(isSandboxEnv({ DATABASE_URL: "postgres://x" })).toBe(false);
  });
});

describe("TRUST_PROXY", () => {
  const trustProxy = (value: string | undefined) => loadConfig({ ...base, NETWORKS: "base", TRUST_PROXY: value }).policy?.trustProxy;

  it("is off unless set: forwarded headers are not believed", () => {
    expect(trustProxy(undefined)).toBe(false);
    expect(trustProxy("")).toBe(false);
    expect(trustProxy("off")).toBe(false);
    expect(trustProxy("0")).toBe(false); // zero hops trusted
  });

  it("takes a comma-separated list of proxy addresses, CIDR ranges and proxy-addr's names", () => {
    expect(trustProxy("127.0.0.1")).toEqual(["127.0.0.1"]);
    expect(trustProxy(" 10.0.0.0/8, ::1 ,fd00::/8,loopback ")).toEqual(["10.0.0.0/8", "::1", "fd00::/8", "loopback"]);
  });

  it.each([
    ["true", /TRUST_PROXY.*every/],
    ["*", /TRUST_PROXY.*every/],
    ["0.0.0.0/0", /TRUST_PROXY.*every/],
    ["::/0", /TRUST_PROXY.*every/],
    // A hop count cannot tell the proxy from a client that reached the port itself (Fastify 5.12 ignores it).
    ["1", /TRUST_PROXY="1": a hop count.*name the proxies' addresses/],
    ["2", /TRUST_PROXY="2": a hop count/],
    ["-1", /TRUST_PROXY/],
    ["1.5", /TRUST_PROXY/],
    ["nginx", /TRUST_PROXY: "nginx"/],
    ["10.0.0.0/33", /TRUST_PROXY: "10.0.0.0\/33"/],
    ["10.0.0.1/8x", /TRUST_PROXY/],
    ["fd00::/129", /TRUST_PROXY/],
    ["256.0.0.1", /TRUST_PROXY: "256.0.0.1"/],
  ])("refuses %s with a ConfigError naming TRUST_PROXY", (value, message) => {
    expect(() => trustProxy(value)).toThrow(ConfigError);
    expect(() => trustProxy(value)).toThrow(message);
  });
});

describe("SEND_MODE", () => {
  const sendMode = (value: string | undefined) => loadConfig({ ...base, NETWORKS: "base", SEND_MODE: value }).sendMode;

  it("is auto unless set", () => {
    expect(sendMode(undefined)).toBe("auto");
    expect(sendMode("")).toBe("auto");
  });

  it.each(["auto", "sync", "async"])("takes %s", (value) => {
    expect(sendMode(value)).toBe(value);
  });

  it.each(["SYNC", "on", "true", "eip7966"])("refuses %j with a ConfigError naming SEND_MODE", (value) => {
    expect(() => sendMode(value)).toThrow(/^SEND_MODE must be auto, sync or async/);
  });
});

describe("BUILDER_CODE", () => {
  const builderCode = (value: string | undefined) => loadConfig({ ...base, NETWORKS: "base", BUILDER_CODE: value }).builderCode;

  it("is none unless set", () => {
    expect(builderCode(undefined)).toBeUndefined();
    expect(builderCode("  ")).toBeUndefined();
  });

  it("takes an ERC-8021 code: 1-32 of a-z, 0-9 and _", () => {
    expect(builderCode("bc_my_facilitator")).toBe("bc_my_facilitator");
    expect(builderCode(" x ")).toBe("x");
    expect(builderCode("a".repeat(32))).toBe("a".repeat(32));
  });

  it.each(["MyFacilitator", "my-facilitator", "my facilitator", "caf\u00e9", "a".repeat(33), "0x1234;drop"])("refuses %j with a ConfigError naming BUILDER_CODE", (value) => {
    expect(() => builderCode(value)).toThrow(ConfigError);
    expect(() => builderCode(value)).toThrow(/^BUILDER_CODE must be 1-32 characters of a-z, 0-9 and _/);
  });
});

describe("limits, declared once in src/limits.ts", () => {
  const withEnv = (env: Record<string, string>) => loadConfig({ ...base, NETWORKS: "base", ...env }).limits;

  it("are the defaults when no variable is set, and the defaults are within their ranges", () => {
    expect(withEnv({})).toEqual(defaultLimits);
    for (const name of limitNames) {
      const spec: LimitSpec = limitSpecs[name];
      if (spec.unit === "addresses") continue;
      expect(spec.min <= spec.default && spec.default <= spec.max, `${spec.env} default ${spec.default}`).toBe(true);
    }
  });

  it("keep the variable names and defaults operators depend on", () => {
    expect(Object.fromEntries(limitNames.map((name) => [limitSpecs[name].env, defaultLimits[name]]))).toEqual({
      BODY_LIMIT_BYTES: 65_536, REQUEST_TIMEOUT_MS: 30_000, SETTLE_BUDGET_MS: 20_000, DUPLICATE_WAIT_MS: 20_000,
      RPC_TIMEOUT_MS: 5_000, RPC_RETRY_COUNT: 1, RPC_BATCH_SIZE: 64, GAS_PER_SETTLEMENT_MAX: 300_000n,
      GAS_PER_DEPLOYING_SETTLEMENT_MAX: 1_000_000n, ERC6492_ALLOWED_FACTORIES: [], MIN_AMOUNT_ATOMIC: 1n,
      PAYER_CODE_COOLDOWN_MS: 3_600_000, PAYER_ONE_AT_A_TIME_MS: 3_600_000, SANCTIONS_DENYLIST_RELOAD_MS: 10_000, MAX_FEE_PER_GAS_WEI: 100_000_000_000n, MIN_SIGNER_BALANCE_WEI: 0n,
      IN_FLIGHT_PER_SIGNER_MAX: 16, IN_FLIGHT_PER_PAYER_MAX: 32, SETTLE_BATCH_MAX: 32, BATCH_GAS_MAX: 10_000_000n, STUCK_AFTER_MS: 30_000,
      FEE_BUMPS_MAX: 3, FEE_BUMP_PERCENT: 25, NONCE_GAP_HEAL_AFTER_MS: 5_000, DB_POOL_MAX: 20,
      DB_STATEMENT_TIMEOUT_MS: 5_000, RATE_LIMIT_PER_MINUTE: 6_000, RECONCILE_INTERVAL_MS: 2_000,
      BAZAAR_ENTRIES_MAX: 100_000, BAZAAR_ENTRIES_PER_PAY_TO_MAX: 100, BAZAAR_ENTRY_MAX_BYTES: 16_384, BAZAAR_ENTRY_TTL_MS: 604_800_000,
      DISCOVERY_RATE_LIMIT_PER_MINUTE: 600, HEAP_GROWTH_PERCENT: 50, READINESS_TIMEOUT_MS: 2_000,
    });
  });

  it("are named for their variable, unit last (MIN_SIGNER_BALANCE_WEI ↔ minSignerBalanceWei)", () => {
    for (const name of limitNames) {
      const spec: LimitSpec = limitSpecs[name];
      expect(name.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase()).toBe(spec.env);
      if (spec.unit !== "count") expect(name.toLowerCase()).toContain(spec.unit === "addresses" ? "factories" : spec.unit);
    }
  });

  describe.each(limitNames.filter((name) => limitSpecs[name].unit !== "addresses"))("%s", (name) => {
    const spec = limitSpecs[name] as Exclude<LimitSpec, { unit: "addresses" }>;

    it("parses its default, its minimum and its maximum as written", () => {
      for (const value of [spec.default, spec.min, spec.max]) expect(withEnv({ [spec.env]: String(value) })[name]).toBe(value);
    });

    it.each([
      ["below its minimum", () => String(BigInt(spec.min) - 1n)],
      ["above its maximum", () => String(BigInt(spec.max) + 1n)],
      ["not an integer", () => "1.5"],
      ["in hex", () => "0x10"],
      ["not a number", () => "soon"],
    ])("refuses a value %s with a ConfigError naming the variable", (_case, value) => {
      const raw = value();
      expect(() => withEnv({ [spec.env]: raw })).toThrow(ConfigError);
      expect(() => withEnv({ [spec.env]: raw })).toThrow(`${spec.env} must be an integer from ${spec.min} to ${spec.max}, got "${raw}"`);
    });
  });

  it("ERC6492_ALLOWED_FACTORIES takes a lowercased address list and names the variable for a bad entry", () => {
    const factory = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    expect(withEnv({ ERC6492_ALLOWED_FACTORIES: ` ${factory}, ` }).erc6492AllowedFactories).toEqual([factory.toLowerCase()]);
    expect(() => withEnv({ ERC6492_ALLOWED_FACTORIES: `${factory},0x12` })).toThrow('ERC6492_ALLOWED_FACTORIES: "0x12" is not an address');
    expect(() => withEnv({ ERC6492_ALLOWED_FACTORIES: Array(257).fill(factory).join(",") })).toThrow("ERC6492_ALLOWED_FACTORIES: at most 256 addresses");
  });

  it("README.md's limits table is the one scripts/config-table.ts generates (npm run config:table)", () => {
    expect(readmeTable(readFileSync(readmePath, "utf8"))?.join("\n")).toBe(limitsTable().join("\n"));
  });

  it(".env.example's limits section is the one scripts/config-table.ts generates (npm run config:table)", () => {
    expect(markedSection(readFileSync(envExamplePath, "utf8"), envStart, envEnd)?.join("\n")).toBe(envExampleLimits().join("\n"));
  });
});

describe("ALLOWED_PAY_TO", () => {
  it("is lowercased, and an entry that is no address names the variable", () => {
    expect(loadPolicy({ ALLOWED_PAY_TO: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC, 0x70997970C51812dc3A010C7d01b50e0d17dc79C8" }).allowedPayTo).toEqual([
      "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
      "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
    ]);
    expect(loadPolicy({}).allowedPayTo).toEqual([]);
    expect(() => loadPolicy({ ALLOWED_PAY_TO: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC,nope" })).toThrow('ALLOWED_PAY_TO: "nope" is not an address');
  });
});
