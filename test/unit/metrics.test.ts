import { describe, expect, it } from "vitest";
import { createMetrics } from "../../src/metrics.js";

describe("Metrics.render", () => {
  it("logs a scrape collector that fails and still renders, the other collectors' gauges set", async () => {
    const metrics = createMetrics();
    const failure = new Error("Postgres unavailable");
    metrics.onScrape(async () => {
      throw failure;
    });
    metrics.onScrape(async (gauges) => {
      gauges.settlementsInFlight.set({ signer: "0xabc" }, 3);
    });
    const warnings: Array<{ object: object; message?: string }> = [];
    const text = await metrics.render({ warn: (object, message) => warnings.push({ object, message }) });
    expect(text).toContain('x402_settlements_in_flight{signer="0xabc"} 3');
    expect(warnings).toEqual([{ object: { err: failure }, message: "a metrics scrape collector failed: its gauges keep their last values" }]);
  });
});
