/**
 * An HTTP proxy in front of one JSON-RPC URL whose behaviour tests switch at run time, to see what
 * the facilitator does when its RPC misbehaves (design.md §3-4: "a 429 is a retry on the next
 * transport, not an error to the caller"; RPC down is a 503 and nothing is half-done).
 *
 * Modes:
 * - pass             forward and answer.
 * - drop             read the request, then destroy the socket without answering (never forwarded).
 * - delay            hold the request `delayMs`, then forward (even if the client gave up: a slow node
 *                    still processes what it was sent).
 * - status429/503    answer that HTTP status with a JSON-RPC error body (never forwarded).
 * - blackhole        accept and never answer (never forwarded); held until the client hangs up or stop().
 * - forwardThenDrop  forward, wait for the node's answer, then destroy the socket: the node acted,
 *                    the client never learns it (a lost broadcast answer).
 * - methodNotFound   answer JSON-RPC -32601 "Method not found" (HTTP 200, never forwarded): an RPC
 *                    that does not serve the method (e.g. eth_sendRawTransactionSync).
 * - syncTimeout      an eth_sendRawTransactionSync whose wait ran out at the node: forwarded as
 *                    eth_sendRawTransaction (the node gets the transaction), answered with EIP-7966's
 *                    timeout error (code 4, the hash as data) when the node took it, else its refusal.
 * - syncOtherError   the same, answered with an error we cannot read as "in the pool" when the node
 *                    took it: geth's handler timeout (-32002 "request timed out"), as a gateway may send.
 *
 * A fault may be limited to requests carrying given JSON-RPC methods; a batch (array) is one HTTP
 * request with one answer, so it is faulted whole when any of its calls matches.
 *
 * It also keeps the params of the last `recentParamsMax` calls of each method (`lastParams`), so a
 * test can check what the facilitator asked the node (e.g. that every eth_call carried a gas limit).
 *
 * Everything is bounded: body size, upstream wait, delay, open sockets, recorded params; stop() ends
 * every held request and timer.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type FaultMode = "pass" | "drop" | "delay" | "status429" | "status503" | "blackhole" | "forwardThenDrop" | "methodNotFound" | "syncTimeout" | "syncOtherError" | "pastStateMissing";

export interface FaultRule {
  mode: FaultMode;
  /** For `delay`: how long each request is held before it is forwarded. */
  delayMs?: number;
  /** Fault only HTTP requests carrying one of these JSON-RPC methods; the others pass. */
  methods?: readonly string[];
}

export interface ProxyCounts {
  /** Calls seen per JSON-RPC method (a batch counts each of its calls). */
  received: Record<string, number>;
  /** Calls forwarded to the upstream node (pass, delay, forwardThenDrop). */
  forwarded: Record<string, number>;
  /** Calls that met a fault (their HTTP request was dropped, refused, held or its answer lost). */
  faulted: Record<string, number>;
}

export interface FaultyRpcProxy {
  url: string;
  /** Switches the behaviour for the requests that arrive from now on. */
  set(rule: FaultMode | FaultRule): void;
  rule(): FaultRule;
  /**
   * Once the first request carrying `method` has been handled (forwarded and answered, or faulted),
   * calls `then` once — e.g. to switch every proxy to blackhole right after the broadcast.
   */
  after(method: string, then: () => void): void;
  counts(): ProxyCounts;
  received(method: string): number;
  forwarded(method: string): number;
  faulted(method: string): number;
  /** Total calls received, all methods. */
  total(): number;
  /**
   * Signed transactions received: eth_sendRawTransaction calls, and eth_sendRawTransactionSync
   * calls that carried one (not the facilitator's empty-transaction probe, params ["0x"]).
   */
  transactionsReceived(): number;
  /**
   * The params of the last calls of `method` received (at most `recentParamsMax`, oldest first),
   * as sent: e.g. `[{ from, to, data, gas }, "latest"]` for an eth_call.
   */
  lastParams(method: string): unknown[][];
  /** Clears the counts and the recorded params. */
  resetCounts(): void;
  /** Resolves when a call of `method` has been received (at most `timeoutMs`). */
  waitFor(method: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface FaultyRpcProxyOptions {
  upstreamUrl: string;
  initial?: FaultMode | FaultRule;
  /** Longest time a forwarded request waits for the upstream node. */
  upstreamTimeoutMs?: number;
}

const bodyBytesMax = 1_000_000;
const delayMsMax = 30_000;
const socketsMax = 256;
const upstreamTimeoutMsDefault = 10_000;
const waitForTimeoutMsDefault = 5_000;
/** Params kept per method, and methods kept at all (a hostile or buggy client cannot grow them). */
export const recentParamsMax = 256;
const recordedMethodsMax = 64;

interface JsonRpcCall {
  id?: unknown;
  method?: unknown;
  params?: unknown;
}

export async function startFaultyRpcProxy(options: FaultyRpcProxyOptions): Promise<FaultyRpcProxy> {
  const upstream = new URL(options.upstreamUrl);
  const upstreamTimeoutMs = options.upstreamTimeoutMs ?? upstreamTimeoutMsDefault;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const afterHooks: Array<{ method: string; then: () => void }> = [];
  const waiters: Array<{ method: string; resolve: () => void; reject: (error: Error) => void }> = [];
  let current: FaultRule = normalizeRule(options.initial ?? "pass");
  let counts: ProxyCounts = emptyCounts();
  let transactions = 0;
  let recentParams = new Map<string, unknown[][]>();
  let stopped = false;

  const record = (calls: JsonRpcCall[]) => {
    for (const call of calls) {
      if (typeof call.method !== "string") continue;
      const firstParam = Array.isArray(call.params) ? call.params[0] : undefined;
      if (call.method === "eth_sendRawTransaction" || (call.method === "eth_sendRawTransactionSync" && typeof firstParam === "string" && firstParam !== "0x")) transactions += 1;
      let list = recentParams.get(call.method);
      if (!list) {
        if (recentParams.size >= recordedMethodsMax) continue;
        list = [];
        recentParams.set(call.method, list);
      }
      list.push(Array.isArray(call.params) ? structuredClone(call.params) : []);
      if (list.length > recentParamsMax) list.shift();
    }
  };

  const bump = (table: Record<string, number>, methods: string[]) => {
    for (const method of methods) table[method] = (table[method] ?? 0) + 1;
  };

  const handled = (methods: string[]) => {
    for (const hook of [...afterHooks]) {
      if (!methods.includes(hook.method)) continue;
      afterHooks.splice(afterHooks.indexOf(hook), 1);
      hook.then();
    }
  };

  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  const forward = (body: Buffer, onAnswer: (status: number, headers: http.IncomingHttpHeaders, answer: Buffer) => void, onFailure: () => void) => {
    const request = http.request(
      {
        agent,
        host: upstream.hostname,
        port: upstream.port,
        path: `${upstream.pathname}${upstream.search}`,
        method: "POST",
        headers: { "content-type": "application/json", "content-length": body.length },
        timeout: upstreamTimeoutMs,
      },
      (response) => {
        readBounded(response, (answer) => (answer ? onAnswer(response.statusCode ?? 502, response.headers, answer) : onFailure()));
      },
    );
    request.on("timeout", () => request.destroy(new Error("upstream timeout")));
    request.on("error", onFailure);
    request.end(body);
  };

  const server = http.createServer((req, res) => {
    readBounded(req, (body) => {
      if (stopped) return req.socket.destroy();
      if (!body) return answerStatus(res, 413, { calls: [], batch: false });
      const parsed = parseCalls(body);
      const methods = parsed.calls.map((call) => (typeof call.method === "string" ? call.method : "<invalid>"));
      bump(counts.received, methods);
      record(parsed.calls);
      for (const waiter of [...waiters]) {
        if (methods.includes(waiter.method)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
      const rule = current;
      const faulted = rule.mode !== "pass" && (!rule.methods || methods.some((method) => rule.methods!.includes(method)));
      const mode: FaultMode = faulted ? rule.mode : "pass";
      if (faulted) bump(counts.faulted, methods);

      const relay = (dropAnswer: boolean) => {
        if (stopped) return req.socket.destroy();
        bump(counts.forwarded, methods);
        forward(
          body,
          (status, headers, answer) => {
            handled(methods);
            if (dropAnswer) return req.socket.destroy();
            res.writeHead(status, { "content-type": headers["content-type"] ?? "application/json" });
            res.end(answer);
          },
          () => {
            handled(methods);
            if (!res.headersSent) answerStatus(res, 502, parsed);
          },
        );
      };

      switch (mode) {
        case "pass":
          return relay(false);
        case "forwardThenDrop":
          return relay(true);
        case "delay":
          return later(Math.min(rule.delayMs ?? 1_000, delayMsMax), () => relay(false));
        case "drop":
          handled(methods);
          return req.socket.destroy();
        case "status429":
          handled(methods);
          return answerStatus(res, 429, parsed);
        case "status503":
          handled(methods);
          return answerStatus(res, 503, parsed);
        case "methodNotFound":
          handled(methods);
          return answerMethodNotFound(res, parsed);
        case "syncOtherError":
        case "syncTimeout": {
          if (parsed.batch || parsed.calls[0]?.method !== "eth_sendRawTransactionSync") return relay(false);
          bump(counts.forwarded, methods);
          const call = parsed.calls[0]!;
          const plain = Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: call.id ?? null, method: "eth_sendRawTransaction", params: call.params }));
          return forward(
            plain,
            (status, headers, answer) => {
              handled(methods);
              const upstreamAnswer = parseAnswer(answer);
              const body =
                typeof upstreamAnswer?.result === "string"
                  ? JSON.stringify({
                      jsonrpc: "2.0",
                      id: call.id ?? null,
                      error: rule.mode === "syncOtherError" ? { code: -32002, message: "request timed out" } : { code: 4, message: "The transaction was added to the mempool but wasn't processed in 2s.", data: upstreamAnswer.result },
                    })
                  : answer;
              res.writeHead(status, { "content-type": headers["content-type"] ?? "application/json" });
              res.end(body);
            },
            () => {
              handled(methods);
              if (!res.headersSent) answerStatus(res, 502, parsed);
            },
          );
        }
        case "pastStateMissing": {
          const missing = parsed.calls.map(isPastStateCall);
          if (!missing.some(Boolean)) return relay(false);
          const rest = parsed.calls.filter((_, index) => !missing[index]);
          const reply = (answers: unknown[]) => {
            handled(methods);
            const byId = new Map(answers.map((answer) => [(answer as { id?: unknown })?.id, answer]));
            const ordered = parsed.calls.map((call, index) =>
              missing[index] ? { jsonrpc: "2.0", id: call.id ?? null, error: { code: -32000, message: "missing trie node 0000000000000000000000000000000000000000000000000000000000000000 (path ) <nil>" } } : byId.get(call.id),
            );
            if (res.headersSent || res.destroyed) return;
            res.writeHead(200, { "content-type": "application/json" });
            res.end(JSON.stringify(parsed.batch ? ordered : ordered[0]));
          };
          if (rest.length === 0) return reply([]);
          bump(counts.forwarded, methods);
          return forward(
            Buffer.from(JSON.stringify(rest)),
            (_status, _headers, answer) => {
              const parsedAnswer = parseJson(answer);
              reply(Array.isArray(parsedAnswer) ? parsedAnswer : []);
            },
            () => {
              handled(methods);
              if (!res.headersSent) answerStatus(res, 502, parsed);
            },
          );
        }
        case "blackhole":
          // Held: the socket stays open until the client gives up or stop() destroys it.
          handled(methods);
          return;
      }
    });
  });

  server.on("connection", (socket) => {
    if (sockets.size >= socketsMax || stopped) return socket.destroy();
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 60_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    set: (rule) => {
      current = normalizeRule(rule);
    },
    rule: () => current,
    after: (method, then) => {
      afterHooks.push({ method, then });
    },
    counts: () => structuredClone(counts),
    received: (method) => counts.received[method] ?? 0,
    forwarded: (method) => counts.forwarded[method] ?? 0,
    faulted: (method) => counts.faulted[method] ?? 0,
    total: () => Object.values(counts.received).reduce((sum, n) => sum + n, 0),
    transactionsReceived: () => transactions,
    lastParams: (method) => structuredClone(recentParams.get(method) ?? []),
    resetCounts: () => {
      counts = emptyCounts();
      transactions = 0;
      recentParams = new Map();
    },
    waitFor: (method, timeoutMs = waitForTimeoutMsDefault) =>
      new Promise<void>((resolve, reject) => {
        if ((counts.received[method] ?? 0) > 0) return resolve();
        const timer = setTimeout(() => waiter.reject(new Error(`no ${method} reached the proxy within ${timeoutMs} ms`)), timeoutMs);
        const waiter = {
          method,
          resolve: () => (clearTimeout(timer), resolve()),
          reject: (error: Error) => {
            clearTimeout(timer);
            if (waiters.includes(waiter)) waiters.splice(waiters.indexOf(waiter), 1);
            reject(error);
          },
        };
        waiters.push(waiter);
      }),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      afterHooks.length = 0;
      for (const waiter of [...waiters]) waiter.reject(new Error("the fault proxy stopped"));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

function normalizeRule(rule: FaultMode | FaultRule): FaultRule {
  const normalized = typeof rule === "string" ? { mode: rule } : { ...rule };
  if (normalized.mode === "delay" && !(typeof normalized.delayMs === "number" && normalized.delayMs >= 0)) {
    throw new Error("delay needs a delayMs >= 0");
  }
  return normalized;
}

function emptyCounts(): ProxyCounts {
  return { received: {}, forwarded: {}, faulted: {} };
}

/** Reads a whole message up to bodyBytesMax; calls back with undefined when too big or broken. */
function readBounded(stream: http.IncomingMessage, done: (body: Buffer | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (body: Buffer | undefined) => {
    if (finished) return;
    finished = true;
    done(body);
  };
  stream.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > bodyBytesMax) {
      stream.removeAllListeners("data");
      stream.resume();
      return finish(undefined);
    }
    chunks.push(chunk);
  });
  stream.on("end", () => finish(Buffer.concat(chunks)));
  stream.on("error", () => finish(undefined));
  stream.on("aborted", () => finish(undefined));
}

/** The calls of a JSON-RPC request; `batch` when it came as an array (the answer must be one too). */
function parseCalls(body: Buffer): { calls: JsonRpcCall[]; batch: boolean } {
  try {
    const parsed: unknown = JSON.parse(body.toString("utf8"));
    const list = Array.isArray(parsed) ? parsed : [parsed];
    return { calls: list.map((call) => (call && typeof call === "object" ? (call as JsonRpcCall) : {})), batch: Array.isArray(parsed) };
  } catch {
    return { calls: [{}], batch: false };
  }
}

/** An eth_call asked at a block number (a hex quantity), not at a tag such as "latest" or "pending". */
function isPastStateCall(call: JsonRpcCall): boolean {
  const block = Array.isArray(call.params) ? call.params[1] : undefined;
  return call.method === "eth_call" && typeof block === "string" && /^0x[0-9a-f]+$/i.test(block);
}

function parseJson(answer: Buffer): unknown {
  try {
    return JSON.parse(answer.toString("utf8"));
  } catch {
    return undefined;
  }
}

function parseAnswer(answer: Buffer): { result?: unknown } | undefined {
  try {
    const parsed: unknown = JSON.parse(answer.toString("utf8"));
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as { result?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

/** HTTP 200 with JSON-RPC's "method not found" for every call (of a batch: each, ids kept). */
function answerMethodNotFound(res: http.ServerResponse, { calls, batch }: { calls: JsonRpcCall[]; batch: boolean }): void {
  const errorOf = (call: JsonRpcCall) => ({ jsonrpc: "2.0", id: call.id ?? null, error: { code: -32601, message: "Method not found" } });
  const body = batch ? calls.map(errorOf) : errorOf(calls[0] ?? {});
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** An HTTP error status with a JSON-RPC error body (one error per call of a batch, ids kept). */
function answerStatus(res: http.ServerResponse, status: number, { calls, batch }: { calls: JsonRpcCall[]; batch: boolean }): void {
  const code = status === 429 ? 429 : -32603;
  const message = status === 429 ? "Too Many Requests: rate limited by the fault proxy" : `HTTP ${status} from the fault proxy`;
  const errorOf = (call: JsonRpcCall) => ({ jsonrpc: "2.0", id: call.id ?? null, error: { code, message } });
  const body = batch ? calls.map(errorOf) : errorOf(calls[0] ?? {});
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}
