/** Messages between bench/run.ts and the load generator process (bench/load-worker.ts). */

export interface VerifyJob {
  kind: "verify";
  url: string;
  /** JSON request bodies, sent in turn (verify does not consume a payment, so they are reused). */
  bodies: string[];
  connections: number;
  durationSeconds: number;
  /**
   * Cold mode: send exactly this many requests (durationSeconds is then ignored), each body at most
   * once — every request a payment the facilitator has never seen. Must leave `connections` bodies spare.
   */
  requestCount?: number;
  /** Per-request timeout. */
  timeoutSeconds: number;
}

export interface VerifyRun {
  /** Responses received (any status). */
  requests: number;
  durationSeconds: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; mean: number; max: number };
  /** HTTP 200 with "isValid":true. */
  validAnswers: number;
  /** Answered, but not HTTP 200 with isValid:true. */
  otherAnswers: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Requests that had to reuse a body (bodies ran out); 0 in a proper cold run. */
  bodiesReused: number;
}

export interface SettleJob {
  kind: "settle";
  url: string;
  /** One distinct pre-signed payment per request; all are sent at once. */
  bodies: string[];
  timeoutMs: number;
  /**
   * Open one keep-alive connection per payment before the burst (GET /supported, all at once), so
   * the burst itself is written on established connections: every payment arrives within a few ms,
   * and a connect queue (the server's accept backlog) does not spread the arrivals.
   */
  preconnect: boolean;
}

export interface SettleAnswer {
  /** From this request's start to its answer. */
  ms: number;
  /** From the burst's start to this request being written out whole (its arrival, on loopback). */
  sentMs: number;
  status: number;
  success: boolean;
  transaction: string;
  /** errorReason, or "http_<status>", "timeout", "network_error: …". */
  reason: string;
}

export interface SettleRun {
  /** The burst's start, epoch ms (performance.timeOrigin + performance.now()). */
  startedAtEpochMs: number;
  /** Connections open before the burst (preconnect), reused by it. */
  preconnected: number;
  wallMs: number;
  answers: SettleAnswer[];
}

export type LoadJob = VerifyJob | SettleJob;
export type JobRequest = { id: number; job: LoadJob };
export type JobReply = { id: number; result?: VerifyRun | SettleRun; error?: string };
