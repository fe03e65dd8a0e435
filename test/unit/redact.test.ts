/**
 * RPC URLs carry API keys in their path, query or userinfo (Alchemy /v2/KEY, QuickNode /KEY/,
 * Infura /v3/KEY, ?apikey=KEY, https://user:KEY@host). Whatever text reaches a log, an HTTP answer
 * or a stored error message keeps scheme + host (+ port) of a URL and nothing after it.
 */
import { describe, expect, it } from "vitest";
import { HttpRequestError, RpcRequestError, TimeoutError } from "viem";
import { DependencyUnavailableError } from "../../src/errors.js";
import { redactError, redactedFirstLine, redactedMessage, redactTextMaxChars, redactUrl, redactUrls, statusLineMaxChars } from "../../src/redact.js";

const secret = "SECRETKEY123";

describe("redactUrls", () => {
  it.each([
    ["Alchemy (key in the path)", `https://base-mainnet.g.alchemy.com/v2/${secret}`, "https://base-mainnet.g.alchemy.com/…"],
    ["QuickNode (key as a path segment, trailing slash)", `https://x.quiknode.pro/${secret}/`, "https://x.quiknode.pro/…"],
    ["Infura https", `https://mainnet.infura.io/v3/${secret}`, "https://mainnet.infura.io/…"],
    ["Infura wss", `wss://mainnet.infura.io/ws/v3/${secret}`, "wss://mainnet.infura.io/…"],
    ["ws with a port", `ws://127.0.0.1:8546/${secret}`, "ws://127.0.0.1:8546/…"],
    ["a query key", `https://rpc.ankr.com/eth?apikey=${secret}`, "https://rpc.ankr.com/…"],
    ["a query key on the bare host", `https://rpc.example.com?apikey=${secret}`, "https://rpc.example.com/…"],
    ["a fragment", `https://rpc.example.com/#${secret}`, "https://rpc.example.com/…"],
    ["userinfo user:password", `https://user:${secret}@rpc.example.com`, "https://rpc.example.com/…"],
    ["userinfo with an empty user, a port and a path", `https://:${secret}@rpc.example.com:8443/v3/${secret}`, "https://rpc.example.com:8443/…"],
    ["an IPv6 host", `http://[::1]:8545/v2/${secret}`, "http://[::1]:8545/…"],
    ["an upper-case scheme", `HTTPS://RPC.EXAMPLE.COM/V2/${secret}`, "HTTPS://RPC.EXAMPLE.COM/…"],
    ["a Postgres URL with a password", `postgres://app:${secret}@db.internal:5432/x402`, "postgres://db.internal:5432/…"],
  ])("keeps scheme and host of %s", (_name, url, expected) => {
    expect(redactUrls(url)).toBe(expected);
  });

  it("leaves a URL without path, query or userinfo as it is: it holds no secret", () => {
    expect(redactUrls("https://mainnet.base.org")).toBe("https://mainnet.base.org");
    expect(redactUrls("listening on http://127.0.0.1:4021/")).toBe("listening on http://127.0.0.1:4021/");
  });

  it("redacts every URL in free text and keeps the text around them", () => {
    const text = `HTTP request failed.\n\nURL: https://a.example/v2/${secret}\nRequest body: {"method":"eth_call"}\nthen wss://b.example/ws/${secret}, twice`;
    expect(redactUrls(text)).toBe(
      'HTTP request failed.\n\nURL: https://a.example/…\nRequest body: {"method":"eth_call"}\nthen wss://b.example/…, twice',
    );
  });

  it("stops a URL at quotes, brackets and backslashes, so JSON and quoted text stay well-formed", () => {
    expect(redactUrls(`{"url":"https://a.example/v2/${secret}"}`)).toBe('{"url":"https://a.example/…"}');
    expect(redactUrls(`"https://a.example/${secret}\\nURL: https://b.example/${secret}"`)).toBe('"https://a.example/…\\nURL: https://b.example/…"');
    expect(redactUrls(`<https://a.example/${secret}>`)).toBe("<https://a.example/…>");
    expect(JSON.parse(redactUrls(JSON.stringify({ message: `URL: https://a.example/v2/${secret}\nnext` })))).toEqual({ message: "URL: https://a.example/…\nnext" });
  });

  it("finds a URL glued to the word before it", () => {
    expect(redactUrls(`URL:https://a.example/${secret}`)).toBe("URL:https://a.example/…");
    expect(redactUrls(`xhttps://a.example/${secret}`)).not.toContain(secret);
  });

  it("leaves file:// URLs of stack frames readable: they are local paths, not keys", () => {
    const frame = "    at Object.request (file:///app/node_modules/viem/_esm/utils/rpc/http.js:92:23)";
    expect(redactUrls(frame)).toBe(frame);
  });

  it("leaves text without URLs unchanged", () => {
    const text = "execution reverted: FiatTokenV2: invalid signature (eip155:84532, 0xabc/def)";
    expect(redactUrls(text)).toBe(text);
  });

  it(`scans at most ${redactTextMaxChars} characters and drops the rest, so a secret past the bound is never passed on unread`, () => {
    const long = `${"x".repeat(redactTextMaxChars - 10)} https://a.example/v2/${secret} and https://b.example/${secret}`;
    const redacted = redactUrls(long);
    expect(redacted).not.toContain(secret);
    expect(redacted.length).toBeLessThan(redactTextMaxChars + 100);
    expect(redacted).toMatch(/more characters not shown\]$/);
  });

  it("takes a smaller bound from the caller", () => {
    // 30 characters of URL, a space, 9 of the 100 y: 40 kept, 91 dropped.
    expect(redactUrls(`https://a.example/${secret} ${"y".repeat(100)}`, 40)).toBe(`https://a.example/… ${"y".repeat(9)}… [91 more characters not shown]`);
  });
});

describe("redactUrl", () => {
  it("is scheme and host only (the metrics label form)", () => {
    expect(redactUrl(`https://user:${secret}@base-mainnet.g.alchemy.com:443/v2/${secret}?k=${secret}`)).toBe("https://base-mainnet.g.alchemy.com");
    expect(redactUrl("not a url")).toBe("invalid-url");
  });
});

describe("redactError", () => {
  const url = `https://user:${secret}@base-mainnet.g.alchemy.com/v2/${secret}?apikey=${secret}`;
  const viemErrors = {
    HttpRequestError: new HttpRequestError({ url, body: { method: "eth_call" }, details: `fetch failed for ${url}`, status: 503 }),
    TimeoutError: new TimeoutError({ url, body: { method: "eth_call" } }),
    RpcRequestError: new RpcRequestError({ url, body: { method: "eth_call" }, error: { code: -32603, message: `upstream ${url} failed` } }),
  };

  it.each(Object.entries(viemErrors))("keeps no secret of a viem %s in a cause chain, but keeps what an operator needs", (_name, viemError) => {
    // The raw error does carry it: viem writes `URL: …` into message, metaMessages and `.url`.
    expect(JSON.stringify({ ...viemError, message: viemError.message })).toContain(secret);
    const wrapped = new DependencyUnavailableError("rpc", "RPC unavailable while reading chain state", { cause: viemError });
    const serialized = redactError(wrapped) as Record<string, any>;
    const text = JSON.stringify(serialized);
    expect(text).not.toContain(secret);
    expect(serialized.type).toBe("DependencyUnavailableError");
    expect(serialized.message).toBe("RPC unavailable while reading chain state");
    expect(serialized.code).toBe("service_unavailable");
    expect(serialized.cause.type).toBe(viemError.name);
    expect(serialized.cause.message).toContain("URL: https://base-mainnet.g.alchemy.com/…");
    expect(serialized.cause.url).toBe("https://base-mainnet.g.alchemy.com/…");
    expect(serialized.cause.stack).toContain("at ");
  });

  it("ends a cyclic cause chain and bounds its depth", () => {
    const a = new Error(`a https://a.example/${secret}`);
    const b = new Error("b", { cause: a });
    (a as { cause?: unknown }).cause = b;
    const text = JSON.stringify(redactError(a));
    expect(text).not.toContain(secret);
    let deep: Error = new Error("root");
    for (let index = 0; index < 100; index += 1) deep = new Error(`level ${index}`, { cause: deep });
    expect(JSON.stringify(redactError(deep)).match(/"cause"/g)!.length).toBeLessThanOrEqual(8);
  });

  it("redacts the errors of an AggregateError (a fallback transport's failures)", () => {
    const aggregate = new AggregateError([new Error(`one https://a.example/${secret}`), new Error(`two https://b.example/${secret}`)], "all failed");
    const serialized = redactError(aggregate) as Record<string, any>;
    expect(JSON.stringify(serialized)).not.toContain(secret);
    expect(serialized.errors).toHaveLength(2);
  });

  it("redacts a string and passes through other non-errors", () => {
    expect(redactError(`Error: https://a.example/${secret}`)).toBe("Error: https://a.example/…");
    expect(redactError(42)).toBe(42);
  });
});

describe("redactedMessage", () => {
  it("is the redacted message of an error, or the redacted text of anything else", () => {
    expect(redactedMessage(new TimeoutError({ url: `https://a.example/v2/${secret}`, body: {} }))).not.toContain(secret);
    expect(redactedMessage(`boom https://a.example/${secret}`)).toBe("boom https://a.example/…");
    expect(redactedMessage(undefined)).toBe("undefined");
  });
});

describe("redactedFirstLine", () => {
  it(`is the first line of the redacted message, at most ${statusLineMaxChars} characters, a URL the cut falls in redacted whole`, () => {
    expect(redactedFirstLine(new Error(`HTTP request failed.\nURL: https://a.example/${secret}`))).toBe("HTTP request failed.");
    expect(redactedFirstLine(new Error(`fetch https://a.example/v2/${secret} failed`))).toBe("fetch https://a.example/… failed");
    const long = redactedFirstLine(new Error(`${"x".repeat(statusLineMaxChars - 10)} https://a.example/v2/${secret} and more`));
    expect(long).toHaveLength(statusLineMaxChars);
    expect(long).not.toContain("v2/");
    expect(redactedFirstLine("plain text")).toBe("plain text");
  });
});

describe("redactUrls cost", () => {
  // A backtracking pattern would hang here for minutes (the suite's per-test timeout is the bound);
  // no wall-clock assertion: the suite must pass on a loaded machine.
  it("returns on text built to make a regex backtrack, with no URL text left in it", () => {
    const inputs = [
      "a".repeat(redactTextMaxChars), // a long word: every position could start a scheme
      `https://h/${".".repeat(redactTextMaxChars - 12)}x`, // a long run of trailing-punctuation look-alikes
      "https://".repeat(redactTextMaxChars / 8),
      `${"x:".repeat(redactTextMaxChars / 2)}`,
    ];
    for (const input of inputs) expect(redactUrls(input)).not.toMatch(/https:\/\/h\/\./);
  });
});
