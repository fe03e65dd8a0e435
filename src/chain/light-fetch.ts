import http from "node:http";
import https from "node:https";

/**
 * The `fetchFn` of the registry's viem http transports: a POST over node:http / node:https with a
 * keep-alive agent, answering the few parts of a Response that viem's HTTP JSON-RPC client reads
 * (ok, status, statusText, headers.get, text(); no body stream, so viem reads it with text()).
 *
 * Why not the global fetch: measured on this machine, one JSON-RPC round trip through fetch (undici's
 * WHATWG layer: Request/Response objects, web streams, header guards) costs the client ~0.4 ms of CPU
 * more than the same POST through node:http — under the bench's cold verify load that was a
 * third of the facilitator's CPU per verify. viem still builds, batches, times out and retries every
 * request exactly as before (its `timeout` aborts through `signal`); only the bytes' transport differs.
 *
 * Bounds: at most `socketsPerOriginMax` connections per origin (more requests wait for a free one;
 * viem's timeout still runs), idle connections closed after `idleSocketMs` (or sooner when the
 * server's Keep-Alive header says so), answers larger than `responseBytesMax` refused.
 */
export interface LightFetchOptions {
  socketsPerOriginMax: number;
  idleSocketMs: number;
  responseBytesMax: number;
}

/** viem's own default response bound, and undici's idle keep-alive time. */
export const defaultLightFetchOptions: LightFetchOptions = { socketsPerOriginMax: 64, idleSocketMs: 4_000, responseBytesMax: 10 * 1024 * 1024 };

/** What viem's getHttpRpcClient passes: a URL string and a plain init object. */
interface LightInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal | null;
}

export interface LightResponse {
  readonly ok: boolean;
  readonly status: number;
  readonly statusText: string;
  readonly headers: { get(name: string): string | null };
  readonly body: null;
  text(): Promise<string>;
  json(): Promise<unknown>;
}

export class ResponseTooLargeError extends Error {
  readonly code = "response_too_large";
}

export type LightFetch = (url: string, init?: LightInit) => Promise<LightResponse>;

export function createLightFetch(options: LightFetchOptions = defaultLightFetchOptions): { fetch: LightFetch; close(): void } {
  const agentOptions = { keepAlive: true, maxSockets: options.socketsPerOriginMax, timeout: options.idleSocketMs, scheduling: "lifo" as const };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
  const lightFetch: LightFetch = (url, init = {}) =>
    new Promise<LightResponse>((resolve, reject) => {
      const signal = init.signal ?? undefined;
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const target = new URL(url);
      const secure = target.protocol === "https:";
      const body = init.body ?? "";
      const request = (secure ? https : http).request(target, {
        method: init.method ?? "POST",
        agent: secure ? agents.https : agents.http,
        headers: { ...init.headers, "content-length": Buffer.byteLength(body) },
      });
      // Settled once: a destroyed request may still report its end or its error afterwards.
      let settled = false;
      const onAbort = () => fail(abortError(signal!));
      const finish = () => {
        settled = true;
        signal?.removeEventListener("abort", onAbort);
      };
      const fail = (error: Error) => {
        if (settled) return;
        finish();
        request.destroy();
        reject(error);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      request.on("error", fail);
      request.on("response", (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.responseBytesMax) fail(new ResponseTooLargeError(`RPC answer larger than ${options.responseBytesMax} bytes`));
          else chunks.push(chunk);
        });
        response.on("error", fail);
        response.on("end", () => {
          if (settled) return;
          finish();
          const status = response.statusCode ?? 0;
          const text = Buffer.concat(chunks, size).toString("utf8");
          const headers = response.headers;
          resolve({
            ok: status >= 200 && status < 300,
            status,
            statusText: response.statusMessage ?? "",
            headers: { get: (name) => headerValue(headers[name.toLowerCase()]) },
            body: null,
            text: async () => text,
            json: async () => JSON.parse(text) as unknown,
          });
        });
      });
      request.end(body);
    });
  return {
    fetch: lightFetch,
    close: () => {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(", ") : value;
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const error = new Error("the request was aborted");
  error.name = "AbortError";
  return error;
}
