import { describe, expect, it } from "vitest";
import { addressOf, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";

const payer = addressOf(keys.payer);
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

describe("GET /metrics", () => {
  it("counts verify and settle outcomes with latency, and exposes signer balances and unfinished rows", async () => {
    const requirements = v2Requirements({ token: fx.chain.token, payTo, amountAtomic });
    const payment = await signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic });
    const body = v2Body(payment, requirements);
    await fx.facilitator.app.inject({ method: "POST", url: "/verify", payload: body });
    await fx.facilitator.app.inject({ method: "POST", url: "/settle", payload: body });
    await fx.facilitator.app.inject({ method: "POST", url: "/settle", payload: body }); // duplicate
    const foreign = v2Body(payment, v2Requirements({ token: fx.chain.token, payTo, amountAtomic, network: "eip155:999999" }));
    await fx.facilitator.app.inject({ method: "POST", url: "/verify", payload: foreign });

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
    const balance = sample(text, "x402_signer_balance_wei", { network: "eip155:84532", signer: addressOf(keys.facilitator) });
    expect(balance).toBeGreaterThan(0);
    expect(sample(text, "x402_settlements_unfinished", { status: "submitted" })).toBe(0);
    expect(text).toContain("x402_process_");
  });
});
