/**
 * An OpenAI-compatible, pay-per-request proxy in front of Chutes (Bittensor subnet 64), paid with x402
 * through a facilitator:
 *
 *   POST /v1/chat/completions   priced from the body (pricing.ts): the quote is the `upto` cap and the
 *                               `exact` price. 402 until paid, then
 *                               verify → upstream → settle → completion + receipt header
 *                               (upto settles the tokens the upstream's `usage` reports, ≤ the cap);
 *                               stream: true, exact: verify → upstream headers → settle → pipe the SSE
 *                               stream: true, upto:  verify → pipe the SSE → settle its last usage
 *                               chunk (the cap when the stream was cut short or has none); no receipt header
 *   GET  /v1/models             passed through, free
 *   GET  /health                {"status":"ok"}
 *
 * Nothing is settled when the upstream fails before answering (status >= 400, unreachable, timed
 * out): the buyer keeps their money and gets the upstream's error.
 *
 * Every request that carries a payment logs one line when its payment is decided: `paid` (payer,
 * amount, for upto the cap and what was charged for, tx hash, verify ms, settle ms), `payment
 * refused` (reason), `not settled` (the upstream failed), `unpaid after delivery` (a streamed upto
 * answer whose settlement failed: the seller's loss), or, at error level, `facilitator failed`
 * (unreachable, timed out, or it refused this proxy's API key).
 */
import { performance } from "node:perf_hooks";
import { pipeline, Readable } from "node:stream";
import { finished } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { SettleResponse } from "@x402/core/types";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyServerOptions } from "fastify";
import type { ProxyConfig } from "./config.js";
import { createFacilitator, type Facilitator, type Refusal } from "./facilitator.js";
import { chargeForUsage, parseChatRequest, parseUsage, parseUsdPrice, quote, type ChatRequest, type Usage } from "./pricing.js";
import { StreamUsage, usageTap } from "./stream-usage.js";
import { FacilitatorTerms } from "./terms.js";
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
  /** upto's facilitatorAddress and the EIP-2612 extension, from /supported: read before listening. */
  const terms = new FacilitatorTerms(facilitator, config.network.caip2, config.upto, {
    info: (message) => app.log.info(message),
    warn: (message) => app.log.warn(message),
  });
  app.addHook("onReady", () => terms.load());

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
    terms.refreshIfDue();
    const offerTerms = terms.current;
    const description =
      `Chutes chat completion, ${price.estimatedTokens} estimated tokens ` +
      `(${price.promptTokens} prompt + ${price.maxOutputTokens} max output) at $${config.pricePer1kTokens} per 1K tokens` +
      (offerTerms.upto ? "; upto: this is the cap, the tokens used are charged" : "");
    const offer = buildOffer(config, price.amount, `${request.protocol}://${request.host}${request.url}`, description, offerTerms);

    const read = readPayment(request.headers, offer);
    if (read.kind === "none") return paymentRequired(reply, offer, "payment_required: send PAYMENT-SIGNATURE (x402 v2) or X-PAYMENT (x402 v1)");
    if (read.kind === "invalid") {
      request.log.info({ amount: price.amount, reason: read.reason }, `payment refused: ${read.reason}: ${read.message}`);
      return paymentRequired(reply, offer, `${read.reason}: ${read.message}`);
    }
    const payment = read.payment;

    const key = authorizationKey(payment);
    if (key === undefined) {
      const message = "the payment carries no authorization (EIP-3009 `authorization` or Permit2 `permit2Authorization` with `from` and `nonce`)";
      request.log.info({ amount: price.amount, reason: "invalid_payload" }, `payment refused: invalid_payload: ${message}`);
      return paymentRequired(reply, offer, `invalid_payload: ${message}`);
    }
    if (inFlight.has(key)) {
      request.log.info({ amount: price.amount, reason: "duplicate_payment" }, "payment refused: duplicate_payment");
      return paymentRequired(reply, offer, "duplicate_payment: this payment is already being used by another request");
    }
    // Held until the payment is settled (after the stream, for a streamed upto answer): until then the
    // chain has not spent the nonce, and the facilitator would verify the same signature again.
    inFlight.add(key);
    try {
      return await servePaid(request.log, reply, offer, payment, chat);
    } finally {
      inFlight.delete(key);
    }
  });

  async function servePaid(log: FastifyBaseLogger, reply: FastifyReply, offer: Offer, payment: Payment, chat: ChatRequest) {
    const upto = payment.version === 2 && payment.requirements.scheme === "upto";
    const signedAmount = payment.version === 2 ? payment.requirements.amount : payment.requirements.maxAmountRequired;
    const capAtomic = BigInt(signedAmount);
    const line: PaidLine = {
      x402Version: payment.version,
      scheme: upto ? "upto" : "exact",
      network: offer.exact.network,
      asset: offer.exact.asset,
      amount: signedAmount,
      ...(upto ? { maxAmount: signedAmount } : {}),
      stream: chat.stream === true,
    };
    const verifyStarted = performance.now();
    const verified = await facilitator.verify(payment);
    line.verifyMs = elapsedMs(verifyStarted);
    if (!verified.ok) return refuse(log, line, reply, offer, payment, verified);
    line.payer = verified.payer;
    /** Settles the exact price, or an upto payment's charge. */
    const settle = async (charge?: Charge) => {
      const settleStarted = performance.now();
      const settled = await facilitator.settle(payment, charge?.amountAtomic);
      line.settleMs = elapsedMs(settleStarted);
      return settled;
    };
    const chargeFor = (usage: Usage | undefined, whyCap: string): Charge =>
      usage ? { amountAtomic: chargeForUsage(usage, pricePer1k, capAtomic), usage } : { amountAtomic: capAtomic, whyCap };

    const clientGone = new AbortController();
    reply.raw.on("close", () => {
      if (!reply.raw.writableFinished) clientGone.abort();
    });
    const upstream = await callUpstream(config, {
      method: "POST",
      path: COMPLETIONS_PATH,
      body: forwardedBody(chat, config.defaultMaxTokens, { includeUsage: upto && chat.stream === true }),
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
      // Settled before the buyer gets a byte, for both schemes: a failed settlement withholds the answer.
      const charge = upto ? chargeFor(usageOfCompletion(text), "the upstream's answer has no usage") : undefined;
      const settled = await settle(charge);
      if (!settled.ok) return refuse(log, line, reply, offer, payment, settled);
      logPaid(log, line, settled.settle, charge);
      return reply
        .code(response.status)
        .header(payment.receiptHeader, encodeReceipt(settled.settle))
        .type(contentType ?? "application/json")
        .send(text);
    }

    if (!upto) {
      // exact, streaming: settle before the first byte reaches the buyer; upstream chunks wait (backpressure) meanwhile.
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

    // upto, streaming: the charge is known when the stream ends (its last chunk's usage), so the SSE is
    // piped first and settled after; no receipt header can follow the body (it is logged). A stream cut
    // short (the client left, the upstream failed or timed out) or without usage is charged the cap.
    const meter = new StreamUsage();
    const tap = usageTap(meter);
    /** The upstream's body failed on its own (not because the client left): it broke, or passed UPSTREAM_TIMEOUT_MS. */
    let upstreamBroke = false;
    if (response.body) {
      const source = Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>);
      // Heard before the proxy's answer is destroyed for it (which then reads as the client leaving).
      source.once("error", () => {
        if (!clientGone.signal.aborted) upstreamBroke = true;
      });
      pipeline(source, tap, () => undefined);
    } else tap.end();
    reply.code(response.status).header("cache-control", "no-cache").type(contentType ?? "text/event-stream");
    void reply.send(tap);
    await finished(reply.raw).catch(() => undefined); // a client that left is a premature close: settled all the same
    const whyCap = upstreamBroke
      ? "the upstream's stream broke off or timed out"
      : clientGone.signal.aborted
        ? "the client disconnected mid-stream"
        : !meter.complete
          ? "the stream was cut short"
          : "the stream has no usage chunk";
    const charge = chargeFor(meter.complete ? meter.usage : undefined, whyCap);
    const settled = await settle(charge);
    if (settled.ok) logPaid(log, line, settled.settle, charge);
    else logUnpaidAfterDelivery(log, line, charge, settled);
    return reply;
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
  scheme: "exact" | "upto";
  network: string;
  asset: string;
  /** Atomic units of the asset: the exact price; for upto the cap, and on the `paid` line the charge. */
  amount: string;
  /** upto: the cap the buyer signed. */
  maxAmount?: string;
  stream: boolean;
  payer?: string;
  verifyMs?: number;
  settleMs?: number;
}

const elapsedMs = (started: number) => Math.round(performance.now() - started);

/** What an upto payment is charged: for its usage, or the cap (and why). */
interface Charge {
  amountAtomic: bigint;
  usage?: Usage;
  whyCap?: string;
}

const chargeFields = (charge: Charge) => ({
  amount: charge.amountAtomic.toString(),
  chargedFor: charge.usage ? "usage" : "cap",
  ...(charge.usage ? { promptTokens: charge.usage.promptTokens, completionTokens: charge.usage.completionTokens } : { capReason: charge.whyCap }),
});

const chargeText = (line: PaidLine, charge: Charge) =>
  `${charge.amountAtomic} of cap ${line.maxAmount} ` +
  (charge.usage ? `(${charge.usage.promptTokens} prompt + ${charge.usage.completionTokens} completion tokens)` : `(charged the cap: ${charge.whyCap})`);

function logPaid(log: FastifyBaseLogger, line: PaidLine, settle: SettleResponse, charge?: Charge) {
  const fields = { ...line, ...(charge ? chargeFields(charge) : {}), payer: settle.payer ?? line.payer, transaction: settle.transaction };
  const what = charge ? chargeText(line, charge) : fields.amount;
  log.info(fields, `paid: ${what} from ${fields.payer ?? "?"} tx ${fields.transaction} (verify ${line.verifyMs} ms, settle ${line.settleMs} ms)`);
}

/**
 * A streamed upto answer was delivered and its settlement failed: the seller's loss (the upstream
 * was paid for, the buyer was not charged). A 402 is the payment's (funds or allowance gone since
 * verify); a 502 is the facilitator's, and the operator's to act on.
 */
function logUnpaidAfterDelivery(log: FastifyBaseLogger, line: PaidLine, charge: Charge, refusal: Refusal) {
  const fields = { ...line, ...chargeFields(charge), reason: refusal.reason, ...(refusal.settle?.transaction ? { transaction: refusal.settle.transaction } : {}) };
  const message = `unpaid after delivery: settling ${chargeText(line, charge)} failed: ${refusal.reason}: ${refusal.message}`;
  if (refusal.status === 502) log.error(fields, message);
  else log.warn(fields, message);
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

/**
 * The body sent upstream: the buyer's, with `max_tokens = defaultMaxTokens` when it set no limit (the
 * price assumed at most that much output: make the model keep to it), and for a streamed upto
 * payment `stream_options.include_usage` (the usage chunk the charge is read from).
 */
function forwardedBody(chat: ChatRequest, defaultMaxTokens: number, { includeUsage }: { includeUsage: boolean }): ChatRequest {
  let body = chat;
  if (chat.max_tokens === undefined && chat.max_completion_tokens === undefined) body = { ...body, max_tokens: defaultMaxTokens };
  if (includeUsage) {
    const options = chat.stream_options !== null && typeof chat.stream_options === "object" && !Array.isArray(chat.stream_options) ? chat.stream_options : {};
    body = { ...body, stream_options: { ...options, include_usage: true } };
  }
  return body;
}

/** `usage` of a non-streamed completion, if the body is JSON and has one. */
function usageOfCompletion(text: string): Usage | undefined {
  try {
    return parseUsage((JSON.parse(text) as { usage?: unknown } | null)?.usage);
  } catch {
    return undefined;
  }
}
