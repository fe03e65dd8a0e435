import { describe, expect, it } from "vitest";
import type { Policy } from "../../../src/config.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { paymentBody } from "../../helpers/payments.js";

/**
 * A reverse proxy on the same host connects from 127.0.0.1: without care, every client behind it
 * is "loopback" (admin routes open with AUTH=off) and shares one per-IP rate-limit bucket.
 * Real Postgres and Anvil; app.inject sets the socket address (remoteAddress) as a proxy would.
 */
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;
const fx = usePaymentFixture({ label: "trust_proxy", payerBalanceAtomic: 1_000_000n });

const forwardingHeaders: Array<Record<string, string>> = [
  { "x-forwarded-for": "203.0.113.7" },
  { "x-forwarded-for": "127.0.0.1" }, // a remote client claiming to be local
  { forwarded: "for=203.0.113.7;proto=https" },
  { "x-real-ip": "203.0.113.7" },
];
const adminUrls = ["/settlements", "/dashboard"];

async function withFacilitator(policy: Partial<Policy>, limits: { rateLimitPerMinute?: number }, run: (facilitator: TestFacilitator) => Promise<void>) {
  const facilitator = await startTestFacilitator({
    databaseUrl: fx.database.url,
    rpcUrls: [fx.chain.rpcUrl],
    token: fx.chain.token,
    limits,
    policy: { auth: "off", allowedPayTo: [], amountMaxAtomic: undefined, ...policy },
  });
  try {
    await run(facilitator);
  } finally {
    await facilitator.close();
  }
}

const adminStatus = async (facilitator: TestFacilitator, url: string, remoteAddress: string, headers: Record<string, string> = {}) =>
  (await facilitator.app.inject({ method: "GET", url, remoteAddress, headers })).statusCode;

const verifyBody = async () =>
  paymentBody(fx.chain, { payerKey: keys.payer, payTo, amountAtomic });

describe("admin routes behind a reverse proxy (AUTH=off)", () => {
  it("without TRUST_PROXY: a loopback caller is admin only when nothing says it was proxied", async () => {
    await withFacilitator({}, {}, async (facilitator) => {
      for (const url of adminUrls) {
        expect(await adminStatus(facilitator, url, "127.0.0.1"), url).toBe(200);
        expect(await adminStatus(facilitator, url, "::1"), url).toBe(200);
        for (const headers of forwardingHeaders) expect(await adminStatus(facilitator, url, "127.0.0.1", headers), `${url} ${JSON.stringify(headers)}`).toBe(401);
      }
    });
  });

  it("with TRUST_PROXY: a forwarded client is never loopback, whatever address it claims", async () => {
    for (const trustProxy of [["loopback"], ["127.0.0.1", "10.0.0.0/8"]]) {
      await withFacilitator({ trustProxy }, {}, async (facilitator) => {
        for (const url of adminUrls) {
          expect(await adminStatus(facilitator, url, "127.0.0.1"), `${url} ${String(trustProxy)}`).toBe(200);
          for (const headers of forwardingHeaders) {
            expect(await adminStatus(facilitator, url, "127.0.0.1", headers), `${url} ${String(trustProxy)} ${JSON.stringify(headers)}`).toBe(401);
          }
          // A remote peer spoofing a loopback client past one trusted hop stays remote.
          expect(await adminStatus(facilitator, url, "10.0.0.5", { "x-forwarded-for": "127.0.0.1" })).toBe(401);
        }
      });
    }
  });
});

describe("per-IP rate limit behind a reverse proxy", () => {
  const verify = async (facilitator: TestFacilitator, client: string, body: unknown) =>
    (await facilitator.app.inject({ method: "POST", url: "/verify", payload: body as object, remoteAddress: "127.0.0.1", headers: { "x-forwarded-for": client } })).statusCode;

  it("with TRUST_PROXY each forwarded client has its own bucket", async () => {
    await withFacilitator({ trustProxy: ["loopback"] }, { rateLimitPerMinute: 1 }, async (facilitator) => {
      const body = await verifyBody();
      expect(await verify(facilitator, "198.51.100.1", body)).toBe(200);
      expect(await verify(facilitator, "198.51.100.2", body)).toBe(200);
      expect(await verify(facilitator, "198.51.100.1", body)).toBe(429);
    });
  });

  it("without TRUST_PROXY the forwarded address is not believed: the proxy's address is the bucket", async () => {
    await withFacilitator({}, { rateLimitPerMinute: 1 }, async (facilitator) => {
      const body = await verifyBody();
      expect(await verify(facilitator, "198.51.100.1", body)).toBe(200);
      expect(await verify(facilitator, "198.51.100.2", body)).toBe(429);
    });
  });
});
