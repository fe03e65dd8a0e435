/**
 * A stub OpenAI-compatible upstream, to run the proxy end to end without a Chutes key:
 *   npm run example:upstream-stub        # http://127.0.0.1:4022 (UPSTREAM_STUB_HOST, UPSTREAM_STUB_PORT)
 * then start the proxy with CHUTES_BASE_URL=http://127.0.0.1:4022 and any CHUTES_API_KEY.
 *
 *   GET  /v1/models              one model (STUB_MODEL)
 *   POST /v1/chat/completions    a fixed completion (STUB_COMPLETION); with "stream": true an SSE stream
 *                                of STREAM_PIECES then `data: [DONE]`; a 500 when a message contains
 *                                "UPSTREAM_500" (to see that a failed upstream call is not settled)
 *   anything else                404; a request without `Authorization: Bearer …` gets 401, like Chutes
 *
 * The end-to-end test (test/e2e/chutes-proxy.test.ts) runs this same stub.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";

export const STUB_MODEL = "deepseek-ai/DeepSeek-V3-0324";
export const STUB_COMPLETION = "Hello from Chutes";
export const STREAM_PIECES = ["Hello", " from", " the", " stream"] as const;
/** A message containing this makes the stub answer 500. */
export const UPSTREAM_500_TRIGGER = "UPSTREAM_500";
export const STUB_DEFAULT_PORT = 4022;

export interface SeenRequest {
  method: string;
  url: string;
  authorization: string | undefined;
  body: Record<string, unknown> | undefined;
}

export interface StubUpstream {
  /** http://host:port, what CHUTES_BASE_URL should be. */
  url: string;
  /** Every request received, in order. */
  seen: SeenRequest[];
  close(): Promise<void>;
}

export interface StubUpstreamOptions {
  host?: string;
  /** 0 (default): any free port. */
  port?: number;
  /** Called once per request answered (the command prints it). */
  onRequest?: (request: SeenRequest, status: number) => void;
}

export async function startStubUpstream(options: StubUpstreamOptions = {}): Promise<StubUpstream> {
  const host = options.host ?? "127.0.0.1";
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => res.destroy()); // the client went away mid-request
  });
  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    let body: Record<string, unknown> | undefined;
    let malformed = false;
    try {
      const parsed: unknown = raw === "" ? undefined : JSON.parse(raw);
      if (parsed !== undefined && (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))) malformed = true;
      else body = parsed as Record<string, unknown> | undefined;
    } catch {
      malformed = true;
    }
    const request: SeenRequest = { method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization, body };
    seen.push(request);
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(value));
      options.onRequest?.(request, status);
    };

    if (!/^Bearer \S+/.test(request.authorization ?? "")) return json(401, { error: { message: "missing Authorization: Bearer <key>", type: "authentication_error" } });
    if (request.method === "GET" && request.url === "/v1/models") {
      return json(200, { object: "list", data: [{ id: STUB_MODEL, object: "model", owned_by: "chutes" }] });
    }
    if (request.method !== "POST" || request.url !== "/v1/chat/completions") return json(404, { error: { message: "not found", type: "invalid_request_error" } });
    if (malformed || !body) return json(400, { error: { message: "the body must be a JSON object", type: "invalid_request_error" } });
    if (JSON.stringify(body.messages ?? null).includes(UPSTREAM_500_TRIGGER)) {
      return json(500, { error: { message: "the model is overloaded", type: "server_error" } });
    }
    const model = body.model ?? STUB_MODEL;
    if (body.stream === true) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      for (const piece of STREAM_PIECES) {
        const chunk = { id: "chatcmpl-stub", object: "chat.completion.chunk", model, choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] };
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      res.end("data: [DONE]\n\n");
      options.onRequest?.(request, 200);
      return;
    }
    return json(200, {
      id: "chatcmpl-stub",
      object: "chat.completion",
      model,
      choices: [{ index: 0, message: { role: "assistant", content: STUB_COMPLETION }, finish_reason: "stop" }],
      usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** `npm run example:upstream-stub`: listen until Ctrl-C, one line per request. */
async function main(): Promise<void> {
  const rawPort = process.env.UPSTREAM_STUB_PORT?.trim() || String(STUB_DEFAULT_PORT);
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port > 65_535) {
    console.error(`upstream-stub: UPSTREAM_STUB_PORT must be an integer from 0 to 65535, got "${rawPort}"`);
    process.exit(1);
  }
  const stub = await startStubUpstream({
    host: process.env.UPSTREAM_STUB_HOST?.trim() || "127.0.0.1",
    port,
    onRequest: (request, status) => {
      const stream = request.body?.stream === true ? " stream" : "";
      console.log(`${request.method} ${request.url}${stream} → ${status}`);
    },
  });
  console.log(`upstream stub listening on ${stub.url}: start the proxy with CHUTES_BASE_URL=${stub.url} (any CHUTES_API_KEY)`);
  const stop = () => void stub.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(path.resolve(entry)).href) {
  main().catch((error: unknown) => {
    console.error("upstream-stub failed to start:", error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
