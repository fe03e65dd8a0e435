import type { FastifyInstance } from "fastify";
import type { OutgoingHttpHeaders } from "node:http";

/**
 * A JSON answer of the app: `{ status, body }`. `headers` is there for the few tests that read one
 * (Retry-After) but not enumerable, so `toEqual({ status, body })` compares just the answer.
 */
export interface JsonAnswer<T = Record<string, any>> {
  status: number;
  body: T;
  readonly headers: OutgoingHttpHeaders;
}

/**
 * POSTs `body` as JSON to `route` of an in-process app (Fastify inject, no socket) and parses the
 * answer. The one implementation behind every test's `post`/`settle`/`verify` wrapper.
 */
export async function postJson<T = Record<string, any>>(app: Pick<FastifyInstance, "inject">, route: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonAnswer<T>> {
  const response = await app.inject({ method: "POST", url: route, payload: body as object, headers });
  const answer = { status: response.statusCode, body: response.json() as T };
  return Object.defineProperty(answer, "headers", { value: response.headers, enumerable: false }) as JsonAnswer<T>;
}
