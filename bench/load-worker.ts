/**
 * The load generator, in its own process so that its CPU is neither the facilitators' nor the
 * orchestrator's: forked by bench/load-client.ts, takes jobs over IPC and answers each with its
 * measurements.
 *
 * - verify: autocannon (fixed duration, N connections, pipelining 1), bodies rotated per request;
 *   or, cold, a fixed number of requests each with a body never sent before. A response counts as
 *   valid only if it is HTTP 200 with "isValid":true.
 * - settle: every body sent at once (node:http, one keep-alive connection per payment, opened
 *   before the burst), each timed on its own (one payment settles once, so a duration-based loop
 *   does not fit), with the moment each request was written out (its arrival).
 */
import autocannon from "autocannon";
import http from "node:http";
import type { JobReply, JobRequest, SettleAnswer, SettleJob, SettleRun, VerifyJob, VerifyRun } from "./load-protocol.js";

async function runVerify(job: VerifyJob): Promise<VerifyRun> {
  if (job.bodies.length === 0) throw new Error("verify job without bodies");
  if (job.requestCount !== undefined && job.requestCount + job.connections > job.bodies.length) {
    throw new Error(`cold verify: ${job.requestCount} requests need ${job.requestCount + job.connections} distinct bodies, got ${job.bodies.length}`);
  }
  let next = 0;
  const result = await autocannon({
    url: job.url,
    connections: job.connections,
    pipelining: 1,
    ...(job.requestCount === undefined ? { duration: job.durationSeconds } : { amount: job.requestCount }),
    timeout: job.timeoutSeconds,
    headers: { "content-type": "application/json" },
    requests: [
      {
        method: "POST",
        path: "/verify",
        setupRequest: (request) => {
          const body = job.bodies[next % job.bodies.length]!;
          next += 1;
          return { ...request, body };
        },
      },
    ],
    // Counted in result.mismatches: anything but a positive verdict.
    verifyBody: (body: string) => body.includes('"isValid":true'),
  } as autocannon.Options);
  const answered = result.requests.total;
  const mismatches = (result as unknown as { mismatches?: number }).mismatches ?? 0;
  const non2xx = result.non2xx;
  return {
    requests: answered,
    durationSeconds: result.duration,
    requestsPerSecond: answered / result.duration,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, mean: result.latency.average, max: result.latency.max },
    validAnswers: Math.max(0, result["2xx"] - mismatches),
    otherAnswers: Math.min(answered, mismatches + non2xx),
    non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    bodiesReused: job.requestCount === undefined ? 0 : Math.max(0, next - job.bodies.length),
  };
}

/** One HTTP/1.1 answer: status and body text. */
function request(agent: http.Agent, url: URL, method: "GET" | "POST", body: string | undefined, timeoutMs: number, onSent?: () => void): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method,
        agent,
        headers: body === undefined ? {} : { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
        timeout: timeoutMs,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        response.on("error", reject);
      },
    );
    // Written out whole to the kernel: on loopback, the request has arrived.
    if (onSent) outgoing.on("finish", onSent);
    outgoing.on("timeout", () => outgoing.destroy(Object.assign(new Error("timeout"), { name: "TimeoutError" })));
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}

async function settleOne(agent: http.Agent, url: URL, body: string, timeoutMs: number, burstStartMs: number): Promise<SettleAnswer> {
  const started = performance.now();
  let sentMs = Number.NaN;
  try {
    const response = await request(agent, url, "POST", body, timeoutMs, () => (sentMs = performance.now() - burstStartMs));
    const ms = performance.now() - started;
    let parsed: { success?: unknown; transaction?: unknown; errorReason?: unknown; error?: unknown } = {};
    try {
      parsed = JSON.parse(response.text) as typeof parsed;
    } catch {
      // not JSON: reported by status
    }
    const success = response.status === 200 && parsed.success === true;
    const reason = success
      ? ""
      : response.status !== 200
        ? `http_${response.status}${typeof parsed.error === "string" ? `: ${parsed.error.slice(0, 80)}` : ""}`
        : String(parsed.errorReason ?? "unknown").slice(0, 120);
    return { ms, sentMs, status: response.status, success, transaction: typeof parsed.transaction === "string" ? parsed.transaction : "", reason };
  } catch (error) {
    const ms = performance.now() - started;
    const name = (error as Error).name;
    const reason = name === "TimeoutError" || name === "AbortError" ? "timeout" : `network_error: ${(error as Error).message}`.slice(0, 120);
    return { ms, sentMs, status: 0, success: false, transaction: "", reason };
  }
}

/** Connections to open for a burst at most (a burst larger than this reuses them, or opens more). */
const PRECONNECT_MAX = 2_000;
const PRECONNECT_TIMEOUT_MS = 20_000;

async function runSettle(job: SettleJob): Promise<SettleRun> {
  // One socket per payment: none waits for another's answer. Idle ones closed after the burst.
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: PRECONNECT_MAX });
  const base = new URL(job.url);
  try {
    let preconnected = 0;
    if (job.preconnect) {
      // All at once, so each takes a socket of its own; they stay open (keep-alive) for the burst.
      const count = Math.min(job.bodies.length, PRECONNECT_MAX);
      await Promise.all(Array.from({ length: count }, () => request(agent, new URL("/supported", base), "GET", undefined, PRECONNECT_TIMEOUT_MS)));
      preconnected = Object.values(agent.freeSockets).reduce((sum, sockets) => sum + (sockets?.length ?? 0), 0);
    }
    const settleUrl = new URL("/settle", base);
    const startedAtEpochMs = performance.timeOrigin + performance.now();
    const t0 = performance.now();
    const answers = await Promise.all(job.bodies.map((body) => settleOne(agent, settleUrl, body, job.timeoutMs, t0)));
    return { startedAtEpochMs, preconnected, wallMs: performance.now() - t0, answers };
  } finally {
    agent.destroy();
  }
}

process.on("message", (message: JobRequest) => {
  const { id, job } = message;
  const work = job.kind === "verify" ? runVerify(job) : runSettle(job);
  work.then(
    (result) => process.send!({ id, result } satisfies JobReply),
    (error: unknown) => process.send!({ id, error: (error as Error).stack ?? String(error) } satisfies JobReply),
  );
});
// The IPC channel closing means the orchestrator is gone.
process.on("disconnect", () => process.exit(0));
process.send!({ id: 0 } satisfies JobReply);
