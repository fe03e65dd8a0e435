/**
 * An OpenAI-compatible, pay-per-request proxy in front of Chutes (Bittensor subnet 64), paid with x402
 * through a facilitator:
 *
 *   POST /v1/chat/completions   priced from the body (pricing.ts); 402 until paid, then
 *                               verify → upstream → settle → completion + receipt header
 *                               (stream: true → verify → upstream headers → settle → pipe the SSE stream)
 *   GET  /v1/models             passed through, free
 *   GET  /health                {"status":"ok"}
 *
 * Nothing is settled when the upstream fails (status >= 400, unreachable, timed out): the buyer keeps
 * their money and gets the upstream's error.
 */
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from "fastify";
import type { ProxyConfig } from "./config.js";
import { createFacilitator, type Facilitator, type Refusal } from "./facilitator.js";
import { parseChatRequest, parseUsdPrice, quote, type ChatRequest } from "./pricing.js";
import { callUpstream, openAiError } from "./upstream.js";
import { authorizationKey, buildOffer, encodeReceipt, paymentRequiredAnswer, readPayment, type Offer, type Payment } from "./x402.js";

export interface ProxyOptions {
  logger?: FastifyServerOptions["logger"];
  /** Defaults to the HTTP facilitator at `config.facilitatorUrl`. */
  facilitator?: Facilitator;
}

const BODY_LIMIT_BYTES = 4 * 1024 * 1024; // chat bodies with inline images get large
const COMPLETIONS_PATH = "/v1/chat/completions";

export function createProxy(config: ProxyConfig, options: ProxyOptions = {}): FastifyInstance {
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: BODY_LIMIT_BYTES });
  const facilitator = options.facilitator ?? createFacilitator(config.facilitatorUrl, config.facilitatorTimeoutMs);
  const pricePer1k = parseUsdPrice(config.pricePer1kTokens);
  /** Authorizations being served right now: one payment must not buy two upstream calls. */
  const inFlight = new Set<string>();

  app.get("/health", async () => ({ status: "ok" }));

  app.get("/v1/models", async (_request, reply) => {
    const upstream = await callUpstream(config, { method: "GET", path: "/v1/models" });
    if (!upstream.ok) return reply.code(upstream.status).send(openAiError(upstream.message, "upstream_error"));
    return passThrough(reply, upstream.response);
  });

  app.post(COMPLETIONS_PATH, async (request, reply) => {
    const parsed = parseChatRequest(request.body);
    if (!parsed.ok) return reply.code(400).send(openAiError(parsed.message, "invalid_request_error"));
    const chat = parsed.request;
    const price = quote(chat, pricePer1k, config.defaultMaxTokens);
    const description =
      `Chutes chat completion, ${price.estimatedTokens} estimated tokens ` +
      `(${price.promptTokens} prompt + ${price.maxOutputTokens} max output) at $${config.pricePer1kTokens} per 1K tokens`;
    const offer = buildOffer(config, price.amount, `${request.protocol}://${request.host}${request.url}`, description);

    const read = readPayment(request.headers, offer);
    if (read.kind === "none") return paymentRequired(reply, offer, "payment_required: send PAYMENT-SIGNATURE (x402 v2) or X-PAYMENT (x402 v1)");
    if (read.kind === "invalid") return paymentRequired(reply, offer, `${read.reason}: ${read.message}`);
    const payment = read.payment;

    const key = authorizationKey(payment);
    if (key !== undefined && inFlight.has(key)) {
      return paymentRequired(reply, offer, "duplicate_payment: this payment is already being used by another request");
    }
    if (key !== undefined) inFlight.add(key);
    try {
      return await servePaid(reply, offer, payment, chat);
    } finally {
      if (key !== undefined) inFlight.delete(key);
    }
  });

  async function servePaid(reply: FastifyReply, offer: Offer, payment: Payment, chat: ChatRequest) {
    const verified = await facilitator.verify(payment);
    if (!verified.ok) return refuse(reply, offer, payment, verified);

    const clientGone = new AbortController();
    reply.raw.on("close", () => {
      if (!reply.raw.writableFinished) clientGone.abort();
    });
    const upstream = await callUpstream(config, {
      method: "POST",
      path: COMPLETIONS_PATH,
      body: withOutputLimit(chat, config.defaultMaxTokens),
      accept: chat.stream ? "text/event-stream" : "application/json",
      signal: clientGone.signal,
    });
    if (!upstream.ok) return reply.code(upstream.status).send(openAiError(upstream.message, "upstream_error"));
    const response = upstream.response;
    if (response.status >= 400) return passThrough(reply, response); // not settled: the buyer keeps their money
    const contentType = response.headers.get("content-type");

    if (!chat.stream) {
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        return reply.code(502).send(openAiError(`upstream failed mid-answer: ${(error as Error).message}`, "upstream_error"));
      }
      const settled = await facilitator.settle(payment);
      if (!settled.ok) return refuse(reply, offer, payment, settled);
      return reply
        .code(response.status)
        .header(payment.receiptHeader, encodeReceipt(settled.settle))
        .type(contentType ?? "application/json")
        .send(text);
    }

    // Streaming: settle before the first byte reaches the buyer; upstream chunks wait (backpressure) meanwhile.
    const settled = await facilitator.settle(payment);
    if (!settled.ok) {
      await response.body?.cancel().catch(() => undefined);
      return refuse(reply, offer, payment, settled);
    }
    reply
      .code(response.status)
      .header(payment.receiptHeader, encodeReceipt(settled.settle))
      .header("cache-control", "no-cache")
      .type(contentType ?? "text/event-stream");
    if (!response.body) return reply.send("");
    return reply.send(Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>));
  }

  return app;
}

function paymentRequired(reply: FastifyReply, offer: Offer, error: string) {
  const answer = paymentRequiredAnswer(offer, error);
  return reply.code(402).headers(answer.headers).send(answer.body);
}

function refuse(reply: FastifyReply, offer: Offer, payment: Payment, refusal: Refusal) {
  if (refusal.settle) reply.header(payment.receiptHeader, encodeReceipt(refusal.settle));
  if (refusal.status === 402) return paymentRequired(reply, offer, `${refusal.reason}: ${refusal.message}`);
  return reply.code(refusal.status).send(openAiError(refusal.message, "payment_error", refusal.reason));
}

/** Same status, content type and body as the upstream's answer. */
async function passThrough(reply: FastifyReply, response: Response) {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    return reply.code(502).send(openAiError(`upstream failed mid-answer: ${(error as Error).message}`, "upstream_error"));
  }
  return reply
    .code(response.status)
    .type(response.headers.get("content-type") ?? "application/json")
    .send(text);
}

/** The price assumed at most `defaultMaxTokens` of output when the request set no limit: make the model keep to it. */
function withOutputLimit(chat: ChatRequest, defaultMaxTokens: number): ChatRequest {
  if (chat.max_tokens !== undefined || chat.max_completion_tokens !== undefined) return chat;
  return { ...chat, max_tokens: defaultMaxTokens };
}
