import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../../src/logger.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";

/** Health checks and scrapes every few seconds must not drown the payment lines at info. */
const lines: string[] = [];
const destination = new Writable({
  write(chunk, _encoding, done) {
    lines.push(String(chunk));
    done();
  },
});
const f = usePaymentFixture({ label: "request_logging", facilitator: { log: createLogger("info", destination) } });

/** Fastify's request lines (incoming, completed) of the request to `url`, matched by request id. */
function requestLines(url: string): string[] {
  const entries = lines.map((line) => JSON.parse(line) as { msg: string; reqId?: string; req?: { url: string } });
  const reqId = entries.find((entry) => entry.req?.url === url)?.reqId;
  return entries.filter((entry) => reqId !== undefined && entry.reqId === reqId && /^(incoming request|request completed)$/.test(entry.msg)).map((entry) => entry.msg);
}

describe("request logging", () => {
  it("logs /health, /ready and /metrics at debug and payment routes at info", async () => {
    lines.length = 0;
    for (const url of ["/health", "/ready", "/metrics"]) expect((await f.facilitator.app.inject({ method: "GET", url })).statusCode).toBe(200);
    expect(lines.filter((line) => line.includes("incoming request") || line.includes("request completed"))).toEqual([]);

    await postJson(f.facilitator.app, "/verify", { x402Version: 2 });
    expect(requestLines("/verify")).toEqual(["incoming request", "request completed"]);
  });

  it("still logs a probe at debug when the level asks for it", async () => {
    const debugLines: string[] = [];
    const debug = createLogger("debug", new Writable({ write: (chunk, _e, done) => (debugLines.push(String(chunk)), done()) }));
    const child = debug.child({});
    // The controller writes through the request's logger: at debug, the probe's lines appear.
    const { ProbesAtDebugLogController } = await import("../../../src/http/request-logging.js");
    const controller = new ProbesAtDebugLogController();
    const request = { url: "/health", log: child } as never;
    controller.incomingRequest(request, { log: child, elapsedTime: 1 } as never);
    expect(debugLines.some((line) => line.includes('"level":20') && line.includes("incoming request"))).toBe(true);
  });
});
