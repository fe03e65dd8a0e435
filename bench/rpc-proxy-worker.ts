/**
 * The counting JSON-RPC proxy, in its own process (forked by bench/rpc-proxy.ts) so that neither the
 * orchestrator's timing nor a facilitator's CPU pays for it. Each listener sits between one
 * facilitator and Anvil: it counts every JSON-RPC call it forwards by method (each call of a batch
 * array separately) and the HTTP requests that carried them, and passes bytes through untouched.
 *
 * Cheap on purpose: plain node:http both ways, one keep-alive agent per upstream (no socket limit:
 * Anvil serves a sync send for up to a block, and a burst holds many at once), the request body
 * parsed once to count, the response piped back unparsed.
 *
 * Bounds: request bodies over BODY_MAX_BYTES are refused (413); every upstream request is cut at
 * UPSTREAM_TIMEOUT_MS (504); at most LISTENERS_MAX listeners; method names are truncated and at
 * most METHODS_MAX distinct ones are kept per listener (the rest counted as "(other)").
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ProxyCounts, ProxyReply, ProxyRequest } from "./rpc-proxy-protocol.js";

const BODY_MAX_BYTES = 16 * 1024 * 1024;
const UPSTREAM_TIMEOUT_MS = 60_000;
const LISTENERS_MAX = 32;
const METHODS_MAX = 200;
const METHOD_NAME_MAX = 64;

interface Listener {
  server: http.Server;
  agent: http.Agent;
  counts: ProxyCounts;
}

const listeners = new Map<number, Listener>();

function countCall(counts: ProxyCounts, method: unknown): void {
  let name = typeof method === "string" ? method.slice(0, METHOD_NAME_MAX) : "(no method)";
  if (counts.byMethod[name] === undefined && Object.keys(counts.byMethod).length >= METHODS_MAX) name = "(other)";
  counts.byMethod[name] = (counts.byMethod[name] ?? 0) + 1;
  counts.calls += 1;
}

/** Counts the calls of one request body: a single call, or a batch array (each element a call). */
function countBody(counts: ProxyCounts, body: Buffer): void {
  counts.httpRequests += 1;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    counts.unparsable += 1;
    return;
  }
  if (Array.isArray(parsed)) {
    counts.batches += 1;
    for (const call of parsed) countCall(counts, (call as { method?: unknown } | null)?.method);
  } else {
    countCall(counts, (parsed as { method?: unknown } | null)?.method);
  }
}

async function open(upstreamUrl: string): Promise<number> {
  if (listeners.size >= LISTENERS_MAX) throw new Error(`more than ${LISTENERS_MAX} proxy listeners`);
  const upstream = new URL(upstreamUrl);
  if (upstream.protocol !== "http:") throw new Error(`upstream must be http: ${upstreamUrl}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });
  const counts: ProxyCounts = { httpRequests: 0, batches: 0, calls: 0, unparsable: 0, upstreamErrors: 0, byMethod: {} };
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_MAX_BYTES && !refused) {
        refused = true;
        response.writeHead(413).end();
        request.destroy();
        return;
      }
      if (!refused) chunks.push(chunk);
    });
    request.on("end", () => {
      if (refused) return;
      const body = Buffer.concat(chunks);
      countBody(counts, body);
      const forward = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          path: `${upstream.pathname}${upstream.search}` || "/",
          method: request.method,
          agent,
          headers: { "content-type": request.headers["content-type"] ?? "application/json", "content-length": String(body.length) },
          timeout: UPSTREAM_TIMEOUT_MS,
        },
        (answer) => {
          response.writeHead(answer.statusCode ?? 502, { "content-type": answer.headers["content-type"] ?? "application/json" });
          answer.pipe(response);
        },
      );
      const fail = (status: number) => {
        counts.upstreamErrors += 1;
        if (!response.headersSent) response.writeHead(status).end();
        else response.destroy();
      };
      forward.on("timeout", () => {
        forward.destroy();
        fail(504);
      });
      forward.on("error", () => fail(502));
      forward.end(body);
    });
    request.on("error", () => response.destroy());
  });
  // Facilitators keep their RPC connections alive (viem's fetch): hold idle ones longer than they do.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 70_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  listeners.set(port, { server, agent, counts });
  return port;
}

async function close(port: number): Promise<void> {
  const listener = listeners.get(port);
  if (!listener) return;
  listeners.delete(port);
  await new Promise<void>((resolve) => {
    listener.server.close(() => resolve());
    listener.server.closeAllConnections();
  });
  listener.agent.destroy();
}

process.on("message", (message: ProxyRequest) => {
  const reply = (body: Omit<ProxyReply, "id">) => process.send!({ id: message.id, ...body } satisfies ProxyReply);
  const work: Promise<Omit<ProxyReply, "id">> =
    message.op === "open"
      ? open(message.upstreamUrl).then((port) => ({ port }))
      : message.op === "close"
        ? close(message.port).then(() => ({}))
        : Promise.resolve({
            counts: structuredClone(listeners.get(message.port)?.counts ?? { httpRequests: 0, batches: 0, calls: 0, unparsable: 0, upstreamErrors: 0, byMethod: {} }),
          });
  work.then(reply, (error: unknown) => reply({ error: (error as Error).message }));
});
// The IPC channel closing means the orchestrator is gone.
process.on("disconnect", () => process.exit(0));
process.send!({ id: 0 } satisfies ProxyReply);
