import { describe, expect, it } from "vitest";
import { addressOf, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { createTestDatabase } from "../../helpers/database.js";
import { startTestFacilitator } from "../../helpers/facilitator.js";
import { freePort } from "../../../src/sandbox/free-port.js";

const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

const fx = usePaymentFixture({ label: "metrics", payerBalanceAtomic: 1_000_000n });

/** The value of one sample line in Prometheus text format, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf("}"));
    if (wanted.every((pair) => labelText.split(",").includes(pair))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

/** The value of an unlabelled sample line (`name value`), or undefined when absent. */
function unlabelled(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe("GET /metrics", () => {
  it("counts verify and settle outcomes with latency, and exposes signer balances and unfinished rows", async () => {
    const requirements = v2Requirements({ token: fx.chain.token, payTo, amountAtomic });
    const payment = await signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic });
    const body = v2Body(payment, requirements);
    const post = (route: string, payload: unknown) => postJson(fx.facilitator.app, route, payload);
    expect((await post("/verify", body)).body).toMatchObject({ isValid: true });
    expect((await post("/settle", body)).body).toMatchObject({ success: true });
    expect((await post("/settle", body)).body).toMatchObject({ errorReason: "duplicate_settlement" });
    const foreign = v2Body(payment, v2Requirements({ token: fx.chain.token, payTo, amountAtomic, network: "eip155:999999" }));
    expect((await post("/verify", foreign)).body).toMatchObject({ invalidReason: "invalid_network" });

    const response = await fx.facilitator.app.inject({ method: "GET", url: "/metrics" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toMatch(/text\/plain/);
    const text = response.body;
    expect(sample(text, "x402_verify_total", { network: "eip155:84532", outcome: "valid" })).toBe(1);
    expect(sample(text, "x402_settle_total", { network: "eip155:84532", outcome: "success" })).toBe(1);
    expect(sample(text, "x402_settle_total", { network: "eip155:84532", outcome: "duplicate_settlement" })).toBe(1);
    // Request input never becomes a label: an unserved network is "other".
    expect(sample(text, "x402_verify_total", { network: "other", outcome: "invalid_network" })).toBe(1);
    expect(text).not.toContain("eip155:999999");
    expect(sample(text, "x402_settle_duration_seconds_count", { network: "eip155:84532" })).toBe(2);
    // The +Inf bucket holds every observation (both /settle answers); one /verify was of this
    // network, the foreign one is counted under "other".
    expect(sample(text, "x402_settle_duration_seconds_bucket", { network: "eip155:84532", le: "+Inf" })).toBe(2);
    expect(sample(text, "x402_verify_duration_seconds_count", { network: "eip155:84532" })).toBe(1);
    const balance = sample(text, "x402_signer_balance_wei", { network: "eip155:84532", signer: addressOf(keys.facilitator) });
    expect(balance).toBeGreaterThan(0);
    expect(sample(text, "x402_settlements_unfinished", { status: "submitted" })).toBe(0);
    // Process metrics (prom-client's defaults under the x402_ prefix): present, typed, with live values.
    expect(text).toMatch(/^# TYPE x402_process_cpu_seconds_total counter$/m);
    expect(unlabelled(text, "x402_process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(unlabelled(text, "x402_process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024);
    expect(unlabelled(text, "x402_process_start_time_seconds")).toBeLessThanOrEqual(Date.now() / 1000);
    expect(unlabelled(text, "x402_process_start_time_seconds")).toBeGreaterThan(Date.now() / 1000 - 24 * 3600);
    expect(text).toMatch(/^x402_nodejs_eventloop_lag_seconds /m);
    expect(text).not.toContain("x402_process_process_");
  });
});

describe("x402_rpc_errors_total", () => {
  it("counts connection failures of an RPC URL that is down, labelled by scheme://host and kind", async () => {
    const database = await createTestDatabase("metrics_rpc_down");
    const deadPort = await freePort();
    const facilitator = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [`http://127.0.0.1:${deadPort}/secret-api-key`], token: fx.chain.token, limits: { rpcRetryCount: 0 } });
    try {
      const payment = await signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic });
      const verified = await postJson(facilitator.app, "/verify", v2Body(payment, v2Requirements({ token: fx.chain.token, payTo, amountAtomic })));
      expect(verified.status).toBe(503);
      const text = (await facilitator.app.inject({ method: "GET", url: "/metrics" })).body;
      expect(sample(text, "x402_rpc_errors_total", { network: "eip155:84532", url: `http://127.0.0.1:${deadPort}`, kind: "connection" })).toBeGreaterThanOrEqual(1);
      expect(text).not.toContain("secret-api-key");
    } finally {
      await facilitator.close();
      await database.drop();
    }
  });
});
