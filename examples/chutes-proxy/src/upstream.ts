/** Calls to the OpenAI-compatible upstream (Chutes), each bounded by a timeout that also covers the body. */
import type { ProxyConfig } from "./config.js";

export interface UpstreamCall {
  method: "GET" | "POST";
  /** Path under the base URL, e.g. "/v1/chat/completions". */
  path: string;
  body?: unknown;
  accept?: string;
  /** Aborts the call early (the client went away). */
  signal?: AbortSignal;
}

export type UpstreamResult = { ok: true; response: Response } | { ok: false; status: 502 | 504; message: string };

export async function callUpstream(config: ProxyConfig, call: UpstreamCall): Promise<UpstreamResult> {
  const timeout = AbortSignal.timeout(config.upstreamTimeoutMs);
  const signal = call.signal ? AbortSignal.any([timeout, call.signal]) : timeout;
  const headers: Record<string, string> = { authorization: `Bearer ${config.chutesApiKey}`, accept: call.accept ?? "application/json" };
  if (call.body !== undefined) headers["content-type"] = "application/json";
  try {
    const response = await fetch(`${config.chutesBaseUrl}${call.path}`, {
      method: call.method,
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal,
      redirect: "follow",
    });
    return { ok: true, response };
  } catch (error) {
    if (timeout.aborted) return { ok: false, status: 504, message: `upstream did not answer within ${config.upstreamTimeoutMs} ms` };
    return { ok: false, status: 502, message: `upstream unreachable: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/** OpenAI-style error body, so OpenAI clients show the message. */
export const openAiError = (message: string, type: string, code?: string) => ({ error: { message, type, ...(code ? { code } : {}) } });
