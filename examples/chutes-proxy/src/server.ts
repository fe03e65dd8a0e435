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
 *
 * Every request that carries a payment logs one line when its payment is decided: `paid` (payer,
 * amount, tx hash, verify ms, settle ms), `payment refused` (reason), `not settled` (the upstream
 * failed), or, at error level, `facilitator failed` (unreachable, timed out, or it refused this
 * proxy's API key).
 */
import { performance } from "node:perf_hooks";
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { SettleResponse } from "@x402/core/types";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyServerOptions } from "fastify";
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
  const facilitator =
    options.facilitator ?? createFacilitator({ url: config.facilitatorUrl, timeoutMs: config.facilitatorTimeoutMs, apiKey: config.facilitatorApiKey });
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
    if (read.kind === "invalid") {
      request.log.info({ amount: price.amount, reason: read.reason }, `payment refused: ${read.reason}: ${read.message}`);
      return paymentRequired(reply, offer, `${read.reason}: ${read.message}`);
    }
    const payment = read.payment;

    const key = authorizationKey(payment);
    if (key !== undefined && inFlight.has(key)) {
      request.log.info({ amount: price.amount, reason: "duplicate_payment" }, "payment refused: duplicate_payment");
      return paymentRequired(reply, offer, "duplicate_payment: this payment is already being used by another request");
    }
    if (key !== undefined) inFlight.add(key);
    try {
      return await servePaid(request.log, reply, offer, payment, chat);
    } finally {
      if (key !== undefined) inFlight.delete(key);
    }
  });

  async function servePaid(log: FastifyBaseLogger, reply: FastifyReply, offer: Offer, payment: Payment, chat: ChatRequest) {
    const line: PaidLine = { x402Version: payment.version, network: offer.v2.network, asset: offer.v2.asset, amount: offer.v2.amount, stream: chat.stream === true };
    const verifyStarted = performance.now();
    const verified = await facilitator.verify(payment);
    line.verifyMs = elapsedMs(verifyStarted);
    if (!verified.ok) return refuse(log, line, reply, offer, payment, verified);
    line.payer = verified.payer;
    const settle = async () => {
      const settleStarted = performance.now();
      const settled = await facilitator.settle(payment);
      line.settleMs = elapsedMs(settleStarted);
      return settled;
    };

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
    if (!upstream.ok) {
      log.info({ ...line, upstreamStatus: upstream.status }, `not settled: ${upstream.message}`);
      return reply.code(upstream.status).send(openAiError(upstream.message, "upstream_error"));
    }
    const response = upstream.response;
    if (response.status >= 400) {
      log.info({ ...line, upstreamStatus: response.status }, `not settled: the upstream answered ${response.status}`);
      return passThrough(reply, response); // not settled: the buyer keeps their money
    }
    const contentType = response.headers.get("content-type");

    if (!chat.stream) {
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        const message = `upstream failed mid-answer: ${(error as Error).message}`;
        log.info({ ...line, upstreamStatus: 502 }, `not settled: ${message}`);
        return reply.code(502).send(openAiError(message, "upstream_error"));
      }
      const settled = await settle();
      if (!settled.ok) return refuse(log, line, reply, offer, payment, settled);
      logPaid(log, line, settled.settle);
      return reply
        .code(response.status)
        .header(payment.receiptHeader, encodeReceipt(settled.settle))
        .type(contentType ?? "application/json")
        .send(text);
    }

    // Streaming: settle before the first byte reaches the buyer; upstream chunks wait (backpressure) meanwhile.
    const settled = await settle();
    if (!settled.ok) {
      await response.body?.cancel().catch(() => undefined);
      return refuse(log, line, reply, offer, payment, settled);
    }
    logPaid(log, line, settled.settle);
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

/** The fields of a paid request's one log line. */
interface PaidLine {
  x402Version: 1 | 2;
  network: string;
  asset: string;
  /** Atomic units of the asset. */
  amount: string;
  stream: boolean;
  payer?: string;
  verifyMs?: number;
  settleMs?: number;
}

const elapsedMs = (started: number) => Math.round(performance.now() - started);

function logPaid(log: FastifyBaseLogger, line: PaidLine, settle: SettleResponse) {
  const fields = { ...line, payer: settle.payer ?? line.payer, transaction: settle.transaction };
  log.info(fields, `paid: ${fields.amount} from ${fields.payer ?? "?"} tx ${fields.transaction} (verify ${line.verifyMs} ms, settle ${line.settleMs} ms)`);
}

function refuse(log: FastifyBaseLogger, line: PaidLine, reply: FastifyReply, offer: Offer, payment: Payment, refusal: Refusal) {
  const fields = { ...line, reason: refusal.reason, ...(refusal.settle?.transaction ? { transaction: refusal.settle.transaction } : {}) };
  // 502: the facilitator failed or refused our key — the operator has to act; a 402 is the buyer's payment.
  if (refusal.status === 502) log.error(fields, `facilitator failed: ${refusal.message}`);
  else log.info(fields, `payment refused: ${refusal.reason}: ${refusal.message}`);
  if (refusal.settle) reply.header(payment.receiptHeader, encodeReceipt(refusal.settle));
  if (refusal.status === 402) return paymentRequired(reply, offer, `${refusal.reason}: ${refusal.message}`);
  // The details (the facilitator's own error text, which may quote its URL) are for the operator's
  // log above; the buyer learns that the payment was not used and that it is not their fault.
  return reply.code(refusal.status).send(openAiError("the payment service is unavailable; your payment was not used, retry later", "payment_error", refusal.reason));
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
