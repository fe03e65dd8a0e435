/**
 * Sanctions screening settings (src/screening/config.ts, the sanctionsOracle of config.ts) and the
 * denylist file format and reloads (src/screening/denylist.ts), on real files.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config.js";
import { ConfigError } from "../../../src/errors.js";
import { DenylistFile, loadDenylistFileSync, parseDenylist } from "../../../src/screening/denylist.js";
import { loadScreeningConfig } from "../../../src/screening/config.js";

const signer = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const base = { DATABASE_URL: "postgres://x@127.0.0.1/db", SIGNER_PRIVATE_KEYS: signer };
const a = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const b = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const oracle = "0x40C57923924B5c5c5455c48D93317139ADDaC8fb";

const tempFile = (name: string, content: string): string => {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "x402-screening-")), name);
  writeFileSync(file, content);
  return file;
};

describe("parseDenylist", () => {
  it("takes one address a line in any case, with # comments and blank lines, lowercased", () => {
    const text = `\uFEFF# OFAC crypto addresses\n${a}\n\n  ${b.toLowerCase()}   # trailing comment\r\n${a.toUpperCase().replace("0X", "0x")}\n#${b}\n`;
    expect([...parseDenylist(text)]).toEqual([a.toLowerCase(), b.toLowerCase()]);
    expect(parseDenylist("# nothing here\n\n").size).toBe(0);
  });

  it("names the first bad line", () => {
    expect(() => parseDenylist(`${a}\n# fine\n0x12 # short\n`)).toThrow('line 3: "0x12" is not an address');
    expect(() => parseDenylist(`${a} ${b}\n`)).toThrow(/^line 1: ".*" is not an address$/);
    expect(() => parseDenylist(`${"x".repeat(200)}\n`)).toThrow(`line 1: "${"x".repeat(60)}…" is not an address`);
  });
});

describe("SANCTIONS_DENYLIST_FILE and SANCTIONS_ORACLE_FAILURE", () => {
  it("default: no denylist, closed", () => {
    expect(loadScreeningConfig({})).toEqual({ oracleFailure: "closed" });
    expect(loadConfig({ ...base, NETWORKS: "base" }).screening).toEqual({ oracleFailure: "closed" });
  });

  it("reads the file at start", () => {
    const file = tempFile("denylist.txt", `${a}\n`);
    const config = loadScreeningConfig({ SANCTIONS_DENYLIST_FILE: file, SANCTIONS_ORACLE_FAILURE: "open" });
    expect(config.oracleFailure).toBe("open");
    expect(config.denylist?.path).toBe(file);
    expect([...config.denylist!.loaded.addresses]).toEqual([a.toLowerCase()]);
  });

  it("a bad file, a missing one or a directory stops the start with one line naming the variable", () => {
    const bad = tempFile("bad.txt", `${a}\nnot-an-address\n`);
    expect(() => loadConfig({ ...base, NETWORKS: "base", SANCTIONS_DENYLIST_FILE: bad })).toThrow(new ConfigError(`SANCTIONS_DENYLIST_FILE (${bad}): line 2: "not-an-address" is not an address`));
    expect(() => loadScreeningConfig({ SANCTIONS_DENYLIST_FILE: "/nonexistent/denylist.txt" })).toThrow(new ConfigError("SANCTIONS_DENYLIST_FILE (/nonexistent/denylist.txt): cannot be read: no such file"));
    expect(() => loadScreeningConfig({ SANCTIONS_DENYLIST_FILE: os.tmpdir() })).toThrow(new ConfigError(`SANCTIONS_DENYLIST_FILE (${os.tmpdir()}): not a regular file`));
  });

  it("SANCTIONS_ORACLE_FAILURE is closed or open", () => {
    expect(() => loadScreeningConfig({ SANCTIONS_ORACLE_FAILURE: "fail-open" })).toThrow(new ConfigError('SANCTIONS_ORACLE_FAILURE must be "closed" or "open", got "fail-open"'));
  });
});

describe("sanctionsOracle per network", () => {
  it("comes from FACILITATOR_CONFIG, and SANCTIONS_ORACLE_<chainId> overrides it", () => {
    const file = tempFile("facilitator.json", JSON.stringify({ networks: [{ network: "eip155:8453", sanctionsOracle: oracle.toLowerCase() }] }));
    const [fromFile] = loadConfig({ ...base, FACILITATOR_CONFIG: file }).networks;
    expect(fromFile).toMatchObject({ chainId: 8453, sanctionsOracle: oracle, sanctionsOracleFrom: "FACILITATOR_CONFIG eip155:8453 sanctionsOracle" });
    const [fromEnv] = loadConfig({ ...base, FACILITATOR_CONFIG: file, SANCTIONS_ORACLE_8453: a }).networks;
    expect(fromEnv).toMatchObject({ sanctionsOracle: a, sanctionsOracleFrom: "SANCTIONS_ORACLE_8453" });
    expect(loadConfig({ ...base, NETWORKS: "base" }).networks[0]!.sanctionsOracle).toBeUndefined();
  });

  it("an address that is not one names its setting", () => {
    expect(() => loadConfig({ ...base, NETWORKS: "base", SANCTIONS_ORACLE_8453: "0x1234" })).toThrow(new ConfigError('SANCTIONS_ORACLE_8453: "0x1234" is not an address'));
    const file = tempFile("facilitator.json", JSON.stringify({ networks: [{ network: "base", sanctionsOracle: "chainalysis" }] }));
    expect(() => loadConfig({ ...base, FACILITATOR_CONFIG: file })).toThrow(new ConfigError('FACILITATOR_CONFIG eip155:8453 sanctionsOracle: "chainalysis" is not an address'));
  });
});

describe("DenylistFile.check", () => {
  function watched(content: string) {
    const file = tempFile("denylist.txt", content);
    const events: string[] = [];
    const denylist = new DenylistFile(file, loadDenylistFileSync(file), {
      loaded: (entries) => events.push(`loaded ${entries}`),
      failed: (message, kept) => events.push(`failed ${message} (kept ${kept})`),
    });
    return { file, denylist, events };
  }

  it("re-reads a file rewritten in place with the same size right after it was read (its stat may not have changed)", async () => {
    const { file, denylist, events } = watched(`${a}\n`);
    writeFileSync(file, `${b}\n`); // same length, same second: mtime may well be identical
    expect(await denylist.check()).toBe("loaded");
    expect([denylist.has(a), denylist.has(b)]).toEqual([false, true]);
    expect(events).toEqual(["loaded 1"]);
  });

  it("keeps the last good list through a bad or vanished file and reports each failure once", async () => {
    const { file, denylist, events } = watched(`${a}\n${b}\n`);
    writeFileSync(file, "garbage\n");
    expect(await denylist.check()).toBe("failed");
    expect(await denylist.check()).toBe("failed");
    expect(denylist.has(a)).toBe(true);
    writeFileSync(file, `${a}\n${b}\n`); // back as it was: nothing to load, the failure is over
    expect(await denylist.check()).toBe("unchanged");
    writeFileSync(file, "garbage\n");
    expect(await denylist.check()).toBe("failed");
    expect(events).toEqual(['failed line 1: "garbage" is not an address (kept 2)', 'failed line 1: "garbage" is not an address (kept 2)']);
    rmSync(file);
    expect(await denylist.check()).toBe("failed");
    expect(events.at(-1)).toBe("failed cannot be read: no such file (kept 2)");
    expect(denylist.size).toBe(2);
  });
});
