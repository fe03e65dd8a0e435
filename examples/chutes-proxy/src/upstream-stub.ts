/**
 * A stub OpenAI-compatible upstream, to run the proxy end to end without a Chutes key:
 *   npm run example:upstream-stub        # http://127.0.0.1:4022 (UPSTREAM_STUB_HOST, UPSTREAM_STUB_PORT)
 * then start the proxy with CHUTES_BASE_URL=http://127.0.0.1:4022 and any CHUTES_API_KEY.
 *
 *   GET  /v1/models              one model (STUB_MODEL)
 *   POST /v1/chat/completions    a fixed completion (STUB_COMPLETION) with its `usage`; with "stream": true
 *                                an SSE stream of STREAM_PIECES, then (with `stream_options.include_usage`)
 *                                a `choices: []` chunk with the `usage`, then `data: [DONE]`. The usage
 *                                counts the prompt as ceil(characters / 5) tokens (a tokenizer other than
 *                                the proxy's chars/4 estimate) and the answer as COMPLETION_TOKENS.
 *                                A message containing
 *                                  "UPSTREAM_500"      → 500 (a failed upstream call is not settled)
 *                                  "STUB_NO_USAGE"     → no `usage` anywhere (upto then charges the cap)
 *                                  "STUB_STREAM_HOLD"  → a stream that sends its first piece, then waits
 *                                                        until the client goes away
 *                                  "STUB_STREAM_BREAK" → a stream that sends its first piece, then drops
 *                                                        the connection (an upstream failing mid-stream)
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
/** A message containing this makes the stub leave `usage` out (of the completion, and of the stream). */
export const NO_USAGE_TRIGGER = "STUB_NO_USAGE";
/** A message containing this makes a stream send one piece, then hang until the client disconnects. */
export const STREAM_HOLD_TRIGGER = "STUB_STREAM_HOLD";
/** A message containing this makes a stream send one piece, then drop the connection. */
export const STREAM_BREAK_TRIGGER = "STUB_STREAM_BREAK";
/** The stub's tokenizer: this many prompt characters per token (the proxy estimates 4). */
export const STUB_CHARS_PER_TOKEN = 5;
/** Tokens of STUB_COMPLETION, and of STREAM_PIECES joined (one per piece). */
export const COMPLETION_TOKENS = 4;

/** The `usage` the stub reports for a request body. */
export function stubUsage(body: Record<string, unknown>): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const messages = Array.isArray(body.messages) ? (body.messages as Array<{ content?: unknown }>) : [];
  const chars = messages.reduce((sum, m) => sum + (typeof m?.content === "string" ? m.content.length : JSON.stringify(m?.content ?? "").length), 0);
  const prompt = Math.ceil(chars / STUB_CHARS_PER_TOKEN);
  return { prompt_tokens: prompt, completion_tokens: COMPLETION_TOKENS, total_tokens: prompt + COMPLETION_TOKENS };
}
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
    const text = JSON.stringify(body.messages ?? null);
    const usage = text.includes(NO_USAGE_TRIGGER) ? undefined : stubUsage(body);
    if (body.stream === true) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      const send = (chunk: Record<string, unknown>) => res.write(`data: ${JSON.stringify({ id: "chatcmpl-stub", object: "chat.completion.chunk", model, ...chunk })}\n\n`);
      if (text.includes(STREAM_BREAK_TRIGGER)) {
        send({ choices: [{ index: 0, delta: { content: STREAM_PIECES[0] }, finish_reason: null }] });
        options.onRequest?.(request, 200);
        await new Promise((resolve) => setTimeout(resolve, 20));
        res.destroy(); // no end chunk: the proxy's fetch sees the body fail
        return;
      }
      if (text.includes(STREAM_HOLD_TRIGGER)) {
        send({ choices: [{ index: 0, delta: { content: STREAM_PIECES[0] }, finish_reason: null }] });
        options.onRequest?.(request, 200);
        await new Promise<void>((resolve) => res.once("close", resolve)); // until the client (or close()) ends it
        return;
      }
      for (const piece of STREAM_PIECES) {
        send({ choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] });
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
      if (usage && streamOptions?.include_usage === true) send({ choices: [], usage });
      res.end("data: [DONE]\n\n");
      options.onRequest?.(request, 200);
      return;
    }
    return json(200, {
      id: "chatcmpl-stub",
      object: "chat.completion",
      model,
      choices: [{ index: 0, message: { role: "assistant", content: STUB_COMPLETION }, finish_reason: "stop" }],
      ...(usage ? { usage } : {}),
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
