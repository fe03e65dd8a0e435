import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Policy } from "../../../src/config.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { paymentBody } from "../../helpers/payments.js";
import { postJson } from "../../helpers/http.js";

/**
 * The dashboard's way in for a browser behind a proxy: POST /dashboard/login trades an admin key for
 * a session cookie. Real Postgres (sessions are rows there) and a real Anvil settlement to show;
 * app.inject plays the browser, setting the headers a browser sets (Origin, Sec-Fetch-Site, Accept).
 */
const payTo = addressOf(keys.payTo);
const apiKeysPolicy: Policy = { auth: "api-keys", allowedPayTo: [], amountMaxAtomic: undefined };
const fx = usePaymentFixture({
  label: "dashboard_login",
  payerBalanceAtomic: 100_000_000n,
  facilitator: { policy: apiKeysPolicy, explorerUrl: "https://sepolia.basescan.org" },
});

const host = "127.0.0.1:4020";
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const formHeaders = { "content-type": "application/x-www-form-urlencoded", host, origin: `http://${host}` };

/** Each test logs in from its own address: the login rate limit is per client IP. */
let nextAddress = 10;
const freshAddress = () => `198.51.100.${nextAddress++}`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
  setCookie: string | undefined;
}

async function call(app: TestFacilitator["app"], method: "GET" | "POST", url: string, options: { headers?: Record<string, string>; payload?: string; remoteAddress?: string } = {}): Promise<Answer> {
  const response = await app.inject({ method, url, headers: options.headers, payload: options.payload, remoteAddress: options.remoteAddress ?? "198.51.100.1" });
  const cookie = response.headers["set-cookie"];
  return { status: response.statusCode, headers: response.headers, body: response.body, setCookie: Array.isArray(cookie) ? cookie.join("\n") : cookie };
}

async function login(key: string, options: { app?: TestFacilitator["app"]; headers?: Record<string, string>; remoteAddress?: string } = {}): Promise<Answer> {
  return call(options.app ?? fx.facilitator.app, "POST", "/dashboard/login", { headers: { ...formHeaders, ...options.headers }, payload: form({ key }), remoteAddress: options.remoteAddress ?? freshAddress() });
}

/** The token from `x402_dashboard=<token>; …`. */
function tokenOf(setCookie: string | undefined): string {
  const match = /^x402_dashboard=([^;]*);/.exec(setCookie ?? "");
  expect(match, setCookie).not.toBeNull();
  return match![1]!;
}

const asBrowser = (token: string) => ({ cookie: `theme=dark; x402_dashboard=${token}`, accept: "text/html,application/xhtml+xml", host });

let admin: { key: string; id: string };
let client: { key: string };
let txHash: string;

beforeAll(async () => {
  const created = await fx.facilitator.services.apiKeys.create({ name: "ops <b>&'\"", role: "admin" });
  admin = { key: created.key, id: created.row.id };
  client = { key: (await fx.facilitator.services.apiKeys.create({ name: "shop", role: "client" })).key };
  const body = await paymentBody(fx.chain, { payerKey: keys.payer, payTo, amountAtomic: 12_340_000n });
  const settled = await postJson<{ success: boolean; transaction: string }>(fx.facilitator.app, "/settle", body, { authorization: `Bearer ${client.key}` });
  expect(settled.body.success).toBe(true);
  txHash = settled.body.transaction;
});

describe("GET /dashboard/login and the way there", () => {
  it("serves the form, framed by nobody, cached by nobody", async () => {
    const answer = await call(fx.facilitator.app, "GET", "/dashboard/login");
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toMatch(/^text\/html/);
    expect(answer.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    expect(answer.headers["content-security-policy"]).toContain("form-action 'self'");
    expect(answer.headers["cache-control"]).toBe("no-store");
    expect(answer.body).toMatch(/<form method="post" action="\/dashboard\/login">/);
    expect(answer.body).toMatch(/<input id="key" name="key" type="password"/);
  });

  it("sends a browser without credentials to the form; an API client still gets 401 JSON", async () => {
    const browser = await call(fx.facilitator.app, "GET", "/dashboard", { headers: { accept: "text/html" } });
    expect(browser.status).toBe(303);
    expect(browser.headers.location).toBe("/dashboard/login");
    const api = await call(fx.facilitator.app, "GET", "/dashboard");
    expect(api.status).toBe(401);
    expect(JSON.parse(api.body)).toMatchObject({ error: "unauthorized" });
    // A wrong Bearer key is an error, never a redirect, whatever the Accept header says.
    const wrongBearer = await call(fx.facilitator.app, "GET", "/dashboard", { headers: { accept: "text/html", authorization: "Bearer x402_nope" } });
    expect(wrongBearer.status).toBe(401);
  });
});

describe("POST /dashboard/login", () => {
  it("trades an admin key for a session cookie (HttpOnly, SameSite=Strict, Path=/dashboard, not the key) and the dashboard opens with it", async () => {
    const answer = await login(admin.key);
    expect(answer.status).toBe(303);
    expect(answer.headers.location).toBe("/dashboard");
    const cookie = answer.setCookie!;
    const attributes = cookie.split(";").map((part) => part.trim());
    expect(attributes).toEqual(expect.arrayContaining(["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age=43200"]));
    expect(attributes).not.toContain("Secure"); // plain http, no trusted proxy saying https
    const token = tokenOf(cookie);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(cookie).not.toContain(admin.key);
    expect(cookie).not.toContain(admin.key.slice(5, 20));
    // Postgres holds the token's hash, never the token, tied to the key.
    const rows = await withPgClient(fx.database.url, async (pg) => (await pg.query("select token_hash, api_key_id, expires_at > now() + interval '11 hours' as long_enough from dashboard_sessions")).rows);
    expect(rows).toContainEqual({ token_hash: createHash("sha256").update(token).digest("hex"), api_key_id: admin.id, long_enough: true });
    expect(JSON.stringify(rows)).not.toContain(token);

    const page = await call(fx.facilitator.app, "GET", "/dashboard", { headers: asBrowser(token) });
    expect(page.status).toBe(200);
    expect(page.body).toContain("12.34 USDC");
    expect(page.body).toContain("Base Sepolia (eip155:84532)");
    expect(page.body).toContain(`href="https://sepolia.basescan.org/tx/${txHash}"`);
    expect(page.body).toContain(`href="https://sepolia.basescan.org/address/${addressOf(keys.payer).toLowerCase()}"`);
    expect(page.body).toMatch(/data-testid="signer-balance"[^>]*>\d+(\.\d{1,4})? ETH</);
    // Signed in as the key's name, escaped; a logout button.
    expect(page.body).toContain("signed in as ops &lt;b&gt;&amp;&#39;&quot;");
    expect(page.body).not.toContain("ops <b>");
    expect(page.body).toMatch(/<form method="post" action="\/dashboard\/logout"/);
    // The history stays Bearer-only.
    expect((await call(fx.facilitator.app, "GET", "/settlements", { headers: asBrowser(token) })).status).toBe(401);
    expect((await call(fx.facilitator.app, "GET", "/settlements", { headers: { authorization: `Bearer ${admin.key}` } })).status).toBe(200);
  });

  it.each([
    ["a wrong key", () => "x402_wrong", 401, /unknown or revoked/],
    ["an empty field", () => "   ", 401, /enter an admin API key/],
    ["a client key", () => client.key, 403, /not an admin key/],
  ])("re-shows the form with the reason for %s, and sets no cookie", async (_name, key, status, message) => {
    const answer = await login(key());
    expect(answer.status).toBe(status);
    expect(answer.headers["content-type"]).toMatch(/^text\/html/);
    expect(answer.body).toMatch(/<form method="post" action="\/dashboard\/login">/);
    expect(answer.body).toMatch(/data-testid="login-error">[^<]*/);
    expect(/data-testid="login-error">([^<]*)</.exec(answer.body)![1]).toMatch(message);
    expect(answer.setCookie).toBeUndefined();
  });

  it("answers malformed posts with the form and a 4xx, never a 500", async () => {
    const big = await call(fx.facilitator.app, "POST", "/dashboard/login", { headers: formHeaders, payload: form({ key: "x".repeat(5000) }), remoteAddress: freshAddress() });
    expect(big.status).toBe(413);
    expect(big.body).toContain('data-testid="login-error"');
    const long = await login("x".repeat(600));
    expect(long.status).toBe(400);
    expect(long.body).toContain('data-testid="login-error"');
    const text = await call(fx.facilitator.app, "POST", "/dashboard/login", { headers: { ...formHeaders, "content-type": "application/xml" }, payload: "<key/>", remoteAddress: freshAddress() });
    expect(text.status).toBe(415);
    expect(text.body).toContain('data-testid="login-error"');
  });

  it("refuses a login another site's page sent (Origin, Sec-Fetch-Site); takes one from the dashboard's own page, or from a client that is no browser", async () => {
    const crossSite: Array<Record<string, string>> = [{ origin: "https://evil.example" }, { origin: "null" }, { origin: `http://${host}`, "sec-fetch-site": "cross-site" }, { "sec-fetch-site": "same-site" }, { origin: `https://${host}` }];
    for (const headers of crossSite) {
      const answer = await login(admin.key, { headers });
      expect(answer.status, JSON.stringify(headers)).toBe(403);
      expect(answer.body).toMatch(/not sent from the dashboard&#39;s own page/);
      expect(answer.setCookie).toBeUndefined();
    }
    // Sec-Fetch-Site is the browser's own word: same-origin passes even where a proxy rewrote Host.
    expect((await login(admin.key, { headers: { origin: "https://dash.example", "sec-fetch-site": "same-origin" } })).status).toBe(303);
    const curl = await call(fx.facilitator.app, "POST", "/dashboard/login", { headers: { "content-type": "application/x-www-form-urlencoded" }, payload: form({ key: admin.key }), remoteAddress: freshAddress() });
    expect(curl.status).toBe(303);
  });

  it("limits login attempts per client address and says so in the form (429)", async () => {
    const address = freshAddress();
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 10; attempt += 1) statuses.push((await login("x402_guess", { remoteAddress: address })).status);
    expect(statuses).toEqual(Array(10).fill(401));
    const limited = await login(admin.key, { remoteAddress: address });
    expect(limited.status).toBe(429);
    expect(limited.headers["retry-after"]).toBeDefined();
    expect(limited.body).toMatch(/too many login attempts/);
    expect(limited.setCookie).toBeUndefined();
    expect((await login(admin.key, { remoteAddress: freshAddress() })).status).toBe(303); // another client is not held up
  });
});

describe("sessions end", () => {
  it("on logout: the row is gone, the cookie cleared, and the old token no longer opens the dashboard", async () => {
    const token = tokenOf((await login(admin.key)).setCookie);
    const logout = await call(fx.facilitator.app, "POST", "/dashboard/logout", { headers: { ...formHeaders, cookie: `x402_dashboard=${token}` }, payload: "" });
    expect(logout.status).toBe(303);
    expect(logout.headers.location).toBe("/dashboard/login");
    expect(logout.setCookie).toMatch(/^x402_dashboard=; .*Max-Age=0/);
    const left = await withPgClient(fx.database.url, async (pg) => (await pg.query("select count(*)::int as n from dashboard_sessions where token_hash = $1", [createHash("sha256").update(token).digest("hex")])).rows[0].n);
    expect(left).toBe(0);
    const after = await call(fx.facilitator.app, "GET", "/dashboard", { headers: { cookie: `x402_dashboard=${token}` } });
    expect(after.status).toBe(401);
    expect(JSON.parse(after.body).message).toMatch(/log in again/);
  });

  it("when the browser logs in again: the new login replaces the session its cookie held", async () => {
    const first = tokenOf((await login(admin.key)).setCookie);
    const second = tokenOf((await login(admin.key, { headers: { cookie: `x402_dashboard=${first}` } })).setCookie);
    expect(second).not.toBe(first);
    expect((await call(fx.facilitator.app, "GET", "/dashboard", { headers: { cookie: `x402_dashboard=${first}` } })).status).toBe(401);
    expect((await call(fx.facilitator.app, "GET", "/dashboard", { headers: { cookie: `x402_dashboard=${second}` } })).status).toBe(200);
  });

  it("refuses a cross-site logout", async () => {
    const token = tokenOf((await login(admin.key)).setCookie);
    const logout = await call(fx.facilitator.app, "POST", "/dashboard/logout", { headers: { ...formHeaders, origin: "https://evil.example", cookie: `x402_dashboard=${token}` }, payload: "" });
    expect(logout.status).toBe(403);
    expect((await call(fx.facilitator.app, "GET", "/dashboard", { headers: asBrowser(token) })).status).toBe(200);
  });

  it("when the admin key is revoked: the browser is sent back to the form with its cookie cleared", async () => {
    const doomed = await fx.facilitator.services.apiKeys.create({ name: "temp-ops", role: "admin" });
    const token = tokenOf((await login(doomed.key)).setCookie);
    expect((await call(fx.facilitator.app, "GET", "/dashboard", { headers: asBrowser(token) })).status).toBe(200);
    expect(await fx.facilitator.services.apiKeys.revoke(doomed.row.id)).toBe(1);
    const browser = await call(fx.facilitator.app, "GET", "/dashboard", { headers: asBrowser(token) });
    expect(browser.status).toBe(303);
    expect(browser.headers.location).toBe("/dashboard/login");
    expect(browser.setCookie).toMatch(/^x402_dashboard=; .*Max-Age=0/);
    const api = await call(fx.facilitator.app, "GET", "/dashboard", { headers: { cookie: `x402_dashboard=${token}` } });
    expect(api.status).toBe(401);
    expect((await login(doomed.key)).status).toBe(401);
  });

  it("when it expires (expiry is Postgres' clock: moved into the past here)", async () => {
    const token = tokenOf((await login(admin.key)).setCookie);
    await withPgClient(fx.database.url, (pg) => pg.query("update dashboard_sessions set expires_at = now() - interval '1 second' where token_hash = $1", [createHash("sha256").update(token).digest("hex")]));
    expect((await call(fx.facilitator.app, "GET", "/dashboard", { headers: { cookie: `x402_dashboard=${token}` } })).status).toBe(401);
  });

  it("a made-up or malformed cookie opens nothing; a Bearer key wins over a stale cookie", async () => {
    for (const value of ["A".repeat(43), "short", "x402_" + admin.key, `"${"B".repeat(43)}"`]) {
      expect((await call(fx.facilitator.app, "GET", "/dashboard", { headers: { cookie: `x402_dashboard=${value}` } })).status, value).toBe(401);
    }
    const both = await call(fx.facilitator.app, "GET", "/dashboard", { headers: { cookie: `x402_dashboard=${"A".repeat(43)}`, authorization: `Bearer ${admin.key}` } });
    expect(both.status).toBe(200);
    expect(both.body).not.toContain("signed in as"); // no session, so no logout button
  });
});

describe("auto-refresh", () => {
  it("refreshes every 10 s by default with our one script; ?refresh=0 turns it off; the script is served", async () => {
    const bearer = { authorization: `Bearer ${admin.key}` };
    const on = await call(fx.facilitator.app, "GET", "/dashboard", { headers: bearer });
    expect(on.body).toContain('data-refresh-seconds="10"');
    expect(on.body).toContain('<script src="/dashboard/refresh.js" defer></script>');
    expect(on.body).toMatch(/href="\/dashboard\?refresh=0"[^>]*>auto-refresh every 10 s · pause/);
    expect(on.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(on.headers["content-security-policy"]).not.toContain("unsafe-eval");
    expect(on.body).not.toMatch(/<script>/); // nothing inline
    const off = await call(fx.facilitator.app, "GET", "/dashboard?refresh=0", { headers: bearer });
    expect(off.body).not.toContain("<script");
    expect(off.body).toMatch(/href="\/dashboard\?refresh=10"[^>]*>auto-refresh off · resume/);
    expect((await call(fx.facilitator.app, "GET", "/dashboard?refresh=5", { headers: bearer })).body).toContain("auto-refresh every 5 s");
    expect((await call(fx.facilitator.app, "GET", "/dashboard?refresh=99999", { headers: bearer })).status).toBe(400);
    const script = await call(fx.facilitator.app, "GET", "/dashboard/refresh.js");
    expect(script.status).toBe(200);
    expect(script.headers["content-type"]).toMatch(/^text\/javascript/);
    expect(script.body).toContain("DOMParser");
  });
});

describe("behind a reverse proxy (TRUST_PROXY)", () => {
  let proxied: TestFacilitator;
  beforeAll(async () => {
    proxied = await startTestFacilitator({ databaseUrl: fx.database.url, rpcUrls: [fx.chain.rpcUrl], token: fx.chain.token, policy: { ...apiKeysPolicy, trustProxy: ["10.0.0.0/8"] } });
  });
  afterAll(async () => {
    await proxied?.close();
  });

  const viaProxy = (client: string, extra: Record<string, string> = {}) => ({
    "content-type": "application/x-www-form-urlencoded",
    host: "127.0.0.1:4020",
    "x-forwarded-for": client,
    "x-forwarded-proto": "https",
    "x-forwarded-host": "dash.example",
    origin: "https://dash.example",
    ...extra,
  });

  it("marks the cookie Secure when a trusted proxy says https, and checks Origin against the forwarded host", async () => {
    const answer = await call(proxied.app, "POST", "/dashboard/login", { headers: viaProxy("203.0.113.50"), payload: form({ key: admin.key }), remoteAddress: "10.0.0.2" });
    expect(answer.status).toBe(303);
    expect(answer.setCookie!.split(";").map((part) => part.trim())).toContain("Secure");
    const evil = await call(proxied.app, "POST", "/dashboard/login", { headers: viaProxy("203.0.113.51", { origin: "https://evil.example" }), payload: form({ key: admin.key }), remoteAddress: "10.0.0.2" });
    expect(evil.status).toBe(403);
  });

  it("believes X-Forwarded-Proto from trusted proxies only", async () => {
    // Not a trusted peer: its https claim is ignored (no Secure) and its forwarded host too (Origin must be the Host).
    const direct = await call(proxied.app, "POST", "/dashboard/login", { headers: viaProxy("203.0.113.52", { origin: "http://127.0.0.1:4020" }), payload: form({ key: admin.key }), remoteAddress: "192.0.2.9" });
    expect(direct.status).toBe(303);
    expect(direct.setCookie!.split(";").map((part) => part.trim())).not.toContain("Secure");
  });

  it("counts login attempts per forwarded client, not per proxy", async () => {
    for (let attempt = 0; attempt < 10; attempt += 1) {
      await call(proxied.app, "POST", "/dashboard/login", { headers: viaProxy("203.0.113.60"), payload: form({ key: "x402_guess" }), remoteAddress: "10.0.0.2" });
    }
    expect((await call(proxied.app, "POST", "/dashboard/login", { headers: viaProxy("203.0.113.60"), payload: form({ key: admin.key }), remoteAddress: "10.0.0.2" })).status).toBe(429);
    expect((await call(proxied.app, "POST", "/dashboard/login", { headers: viaProxy("203.0.113.61"), payload: form({ key: admin.key }), remoteAddress: "10.0.0.2" })).status).toBe(303);
  });
});
