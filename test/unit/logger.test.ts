/**
 * The logger is the last place a secret-bearing URL could leave the process: whatever a caller
 * passes (an Error with its cause chain under `err` or `error`, a String(error), a message, any
 * other field), the written line keeps scheme + host of a URL only.
 */
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { HttpRequestError, TimeoutError } from "viem";
import { ConfigError, DependencyUnavailableError } from "../../src/errors.js";
import { createLogger, logFormatFrom } from "../../src/logger.js";

const secret = "SECRETKEY123";
const url = `https://base-mainnet.g.alchemy.com/v2/${secret}?apikey=${secret}`;

function capturingLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: createLogger("trace", destination), lines };
}

describe("createLogger", () => {
  const viemError = new HttpRequestError({ url, body: { method: "eth_call" }, details: "fetch failed" });
  const wrapped = new DependencyUnavailableError("rpc", "RPC unavailable while simulating", { cause: new TimeoutError({ url, body: {} }) });

  it.each([
    ["an Error under err", () => ({ err: viemError })],
    ["an Error with a cause chain under err", () => ({ err: wrapped })],
    ["an Error under error", () => ({ error: viemError })],
    ["String(error) under error", () => ({ error: String(viemError) })],
    ["error.message under another key", () => ({ reason: viemError.message })],
    ["a URL nested in an object", () => ({ nested: { deeper: [{ rpc: url }] } })],
  ])("writes no secret when given %s", (_name, fields) => {
    const { log, lines } = capturingLogger();
    log.error(fields(), "request failed");
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(secret);
    expect(lines[0]).toContain("https://base-mainnet.g.alchemy.com/…");
    expect(() => JSON.parse(lines[0]!)).not.toThrow();
  });

  it("redacts the message, including printf-style arguments", () => {
    const { log, lines } = capturingLogger();
    log.warn(`could not reach ${url}`);
    log.warn("could not reach %s", url);
    expect(lines.join("")).not.toContain(secret);
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual(["could not reach https://base-mainnet.g.alchemy.com/…", "could not reach https://base-mainnet.g.alchemy.com/…"]);
  });

  it("keeps an Error readable: type, message and cause survive redaction", () => {
    const { log, lines } = capturingLogger();
    log.error({ err: wrapped }, "request failed");
    const entry = JSON.parse(lines[0]!);
    expect(entry.err.type).toBe("DependencyUnavailableError");
    expect(entry.err.message).toBe("RPC unavailable while simulating");
    expect(entry.err.cause.type).toBe("TimeoutError");
    expect(entry.err.cause.url).toBe("https://base-mainnet.g.alchemy.com/…");
  });

  it("still redacts signer keys by path", () => {
    const { log, lines } = capturingLogger();
    log.info({ privateKey: "0xdead", config: { databaseUrl: "postgres://u:p@h/db" } }, "config");
    expect(lines[0]).not.toContain("0xdead");
    expect(lines[0]).not.toContain("u:p@");
  });

  it("writes a notice instead of a line too long to redact", () => {
    const { log, lines } = capturingLogger();
    log.info({ body: "x".repeat(1_100_000) }, `then ${url}`);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.length).toBeLessThan(300);
    expect(JSON.parse(lines[0]!).msg).toMatch(/not written: longer than/);
  });
});

describe("LOG_FORMAT", () => {
  it("is pretty on a terminal and JSON otherwise when unset; a wrong value names the variable", () => {
    expect(logFormatFrom({}, true)).toBe("pretty");
    expect(logFormatFrom({}, false)).toBe("json");
    expect(logFormatFrom({ LOG_FORMAT: "json" }, true)).toBe("json");
    expect(logFormatFrom({ LOG_FORMAT: "pretty" }, false)).toBe("pretty");
    expect(() => logFormatFrom({ LOG_FORMAT: "yaml" })).toThrow(new ConfigError('LOG_FORMAT must be "json" or "pretty", got "yaml"'));
  });

  it("pretty prints a readable line, with the same redaction as JSON", () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger("info", destination, "pretty");
    log.warn({ rpc: url, settlementId: "s-1" }, "broadcast outcome unknown");
    const text = lines.join("");
    expect(text).toMatch(/WARN.*broadcast outcome unknown/);
    expect(text).toContain("settlementId");
    expect(text).not.toMatch(/^\{/); // not JSON
    expect(text).not.toContain(secret);
  });
});
