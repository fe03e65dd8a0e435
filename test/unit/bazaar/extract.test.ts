import { describe, expect, it } from "vitest";
import type { Address } from "viem";
import { extractBazaarEntry, isValidIconUrl, isValidRouteTemplate, isValidServiceName, sanitizeTags } from "../../../src/bazaar/extract.js";
import { mergeAccepts } from "../../../src/store/bazaar-repo.js";
import type { PaymentRequest } from "../../../src/protocol/types.js";

const payTo: Address = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const asset: Address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";

function payment(x402Version: 1 | 2 = 2): PaymentRequest {
  const requirements = { scheme: "exact", network: "eip155:84532", amountAtomic: 10_000n, asset, payTo, extraName: "USDC", extraVersion: "2" };
  return {
    x402Version,
    requirements,
    accepted: requirements,
    authorization: { from: payTo, to: payTo, valueAtomic: 10_000n, validAfterSeconds: 0n, validBeforeSeconds: 1n, nonce: `0x${"00".repeat(32)}` },
    transferMethod: "eip3009",
    signature: "0x",
    chainId: 84532,
  };
}

const extension = (input: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ info: { input }, schema: { type: "object" }, ...extra });

function body(bazaar: unknown, resource: unknown = { url: "https://api.example.com/items/7?x=1#f" }) {
  return {
    paymentPayload: { x402Version: 2, resource, extensions: { bazaar } },
    paymentRequirements: { scheme: "exact", network: "eip155:84532", amount: "10000", asset, payTo, maxTimeoutSeconds: 60, extra: { name: "USDC", version: "2" } },
  };
}

describe("extractBazaarEntry", () => {
  it("keys an HTTP entry by payTo (lowercase), origin + path, and method; accepts are the requirements as sent", () => {
    const result = extractBazaarEntry(body(extension({ type: "http", method: "GET" })), payment(), 16_384);
    expect(result).toMatchObject({
      ok: true,
      entry: {
        payTo: payTo.toLowerCase(),
        resource: "https://api.example.com/items/7",
        type: "http",
        action: "GET",
        accept: { scheme: "exact", network: "eip155:84532", amount: "10000", asset, payTo, maxTimeoutSeconds: 60, extra: { name: "USDC", version: "2" } },
        extensionKeys: ["bazaar"],
      },
    });
  });

  it("uses a valid routeTemplate as the path, and the concrete path for an invalid one", () => {
    const resourceOf = (routeTemplate: string) => {
      const result = extractBazaarEntry(body(extension({ type: "http", method: "GET" }, { routeTemplate })), payment(), 16_384);
      return result.ok ? result.entry.resource : undefined;
    };
    expect(resourceOf("/items/:id")).toBe("https://api.example.com/items/:id");
    expect(resourceOf("/items/%2e%2e/admin")).toBe("https://api.example.com/items/7");
    expect(resourceOf("https://evil.example/x")).toBe("https://api.example.com/items/7");
  });

  it("keys an MCP tool by its name (toolName, or the spec table's tool)", () => {
    const mcp = (input: Record<string, unknown>) => extractBazaarEntry(body(extension({ type: "mcp", inputSchema: { type: "object" }, ...input })), payment(), 16_384);
    expect(mcp({ toolName: "analyse" })).toMatchObject({ ok: true, entry: { type: "mcp", action: "analyse" } });
    expect(mcp({ tool: "analyse" })).toMatchObject({ ok: true, entry: { action: "analyse" } });
    expect(mcp({})).toMatchObject({ ok: false, reason: "malformed" });
    expect(mcp({ toolName: "x", transport: "carrier-pigeon" })).toMatchObject({ ok: false, reason: "malformed" });
  });

  it("skips what the spec rules out, and what is too large or too deep", () => {
    const skipped = (bazaar: unknown, resource?: unknown, bytes = 16_384) => {
      const result = extractBazaarEntry(body(bazaar, resource), payment(), bytes);
      return result.ok ? "ok" : result.reason;
    };
    expect(skipped(extension({ type: "http", method: "TRACE" }))).toBe("malformed");
    expect(skipped(extension({ type: "http", method: "GET", bodyType: "json" }))).toBe("malformed");
    expect(skipped(extension({ type: "http", method: "GET" }), { url: "ftp://api.example.com/x" })).toBe("malformed");
    expect(skipped(extension({ type: "http", method: "GET" }), {})).toBe("malformed");
    expect(skipped({ info: { input: { type: "http", method: "GET" } }, schema: { $defs: { a: { $ref: "file:///etc/passwd" } } } })).toBe("malformed");
    expect(skipped({ info: { input: { type: "http", method: "GET" } }, schema: { $ref: "#/$defs/a", $defs: { a: {} } } })).toBe("ok");
    expect(skipped(extension({ type: "http", method: "GET", queryParams: { q: "x".repeat(600) } }), undefined, 512)).toBe("too_large");
    let deep: Record<string, unknown> = {};
    for (let depth = 0; depth < 100; depth += 1) deep = { a: deep };
    expect(skipped(extension({ type: "http", method: "GET", queryParams: deep }))).toBe("malformed");
  });

  it("is absent for v1 payments and payloads without the extension", () => {
    expect(extractBazaarEntry(body(extension({ type: "http", method: "GET" })), payment(1), 16_384)).toEqual({ ok: false, reason: "absent" });
    expect(extractBazaarEntry({ paymentPayload: { extensions: {} } }, payment(), 16_384)).toEqual({ ok: false, reason: "absent" });
  });
});

describe("bazaar.md's field rules", () => {
  it("routeTemplate: a safe path with :params, no traversal or scheme at any percent-encoding depth", () => {
    for (const valid of ["/users/:userId", "/weather/:country/:city", "/api/v1.0/items", "/a%20b"]) expect(isValidRouteTemplate(valid), valid).toBe(true);
    for (const invalid of ["", "users/:id", "/users/../admin", "/users/%2e%2e/admin", "/users/%252e%252e/admin", "/x/http%3A%2F%2Fevil", "/a b", "/a?b", "/%E0%A4%A"]) {
      expect(isValidRouteTemplate(invalid), invalid).toBe(false);
    }
  });

  it("serviceName and tags: printable ASCII, at most 32 characters; at most 5 tags, deduplicated case-insensitively", () => {
    expect(isValidServiceName("Example Weather")).toBe(true);
    expect(isValidServiceName("")).toBe(false);
    expect(isValidServiceName("x".repeat(33))).toBe(false);
    expect(isValidServiceName("Café")).toBe(false);
    expect(sanitizeTags(["a", "A", "b\n", 3, "c", "d", "e", "f", "g"])).toEqual(["a", "c", "d", "e", "f"]);
    expect(sanitizeTags(["", "\u0000"])).toBeUndefined();
  });

  it("iconUrl: http(s) with a DNS name; no IP literal in any spelling, loopback name or userinfo", () => {
    expect(isValidIconUrl("https://cdn.example.com/icon.png")).toBe(true);
    for (const invalid of [
      "javascript:alert(1)",
      "data:image/png;base64,AA",
      "https://127.0.0.1/i.png",
      "http://2130706433/i.png",
      "http://0x7f000001/i.png",
      "http://[::1]/i.png",
      "http://localhost/i.png",
      "http://ｌｏｃａｌｈｏｓｔ/i.png",
      "http://user@cdn.example.com/i.png",
      "https://cdn.example.com/\u0007",
    ]) {
      expect(isValidIconUrl(invalid), invalid).toBe(false);
    }
  });
});

describe("mergeAccepts", () => {
  it("puts the latest payment option first, replacing the one for the same scheme, network and asset, at most max", () => {
    const option = (network: string, amount: string) => ({ scheme: "exact", network, amount, asset, payTo });
    expect(mergeAccepts([option("eip155:8453", "1"), option("eip155:84532", "1")], option("eip155:84532", "2"), 8)).toEqual([option("eip155:84532", "2"), option("eip155:8453", "1")]);
    expect(mergeAccepts([option("a:1", "1"), option("a:2", "1")], option("a:3", "1"), 2)).toEqual([option("a:3", "1"), option("a:1", "1")]);
  });
});
