import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { FacilitatorError, IdempotencyKeyBusyError, InvalidRequestError } from "../errors.js";
import { idempotencyWaitMarginMs } from "../limits.js";
import { checkPolicy } from "./policy.js";
import { normalize, type Envelope } from "../protocol/normalize.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import { renderSettle, renderVerify } from "../protocol/render.js";
import { RequestEnvelopeSchema, SettleErrorResponseSchema, SettleResponseSchema, VerifyErrorResponseSchema, VerifyResponseSchema } from "../protocol/schemas.js";
import type { PaymentRequest, SettleAnswer } from "../protocol/types.js";
import { paymentIdentifierExtension, paymentIdentifierOf } from "../protocol/payment-identifier.js";
import type { Services } from "../services.js";
import { anonymousIdempotencyScope, idempotencyNotifyKey, idempotencyStateOf, type IdempotencyBegin, type IdempotencyKeyId } from "../store/idempotency-repo.js";

/** Idempotency keys are opaque to us; bound them like every other input. */
const idempotencyKeyPattern = /^[\x21-\x7e]{1,255}$/;

export async function paymentRoutes(app: FastifyInstance, options: { services: Services; rateLimitPerMinute: number }): Promise<void> {
  const { services } = options;
  // Counted per API key when the caller has one, else per IP; each route has its own counters.
  const rateLimit = {
    max: (request: FastifyRequest) => request.apiKey?.rateLimitPerMinute ?? options.rateLimitPerMinute,
    keyGenerator: (request: FastifyRequest) => (request.apiKey ? `key:${request.apiKey.id}` : `ip:${request.ip}`),
    timeWindow: 60_000,
  };

  app.post(
    "/verify",
    { schema: { body: RequestEnvelopeSchema, response: { 200: VerifyResponseSchema, "4xx": VerifyErrorResponseSchema, "5xx": VerifyErrorResponseSchema } }, config: { rateLimit, routeKind: "verify" } },
    async (request) => {
      const startedMs = performance.now();
      const normalized = normalize(request.body as Envelope, services.networkServed);
      if (!normalized.ok) {
        logOutcome(request, "verify", normalized.payer, normalized.network, normalized.rejection.reason, startedMs);
        services.metrics.observeVerify(networkLabel(services, normalized.version, normalized.network), normalized.rejection.reason, elapsedSeconds(startedMs));
        return renderVerify(false, normalized.payer, normalized.rejection.reason, normalized.rejection.message);
      }
      const payer = normalized.request.authorization.from;
      request.payment = { payer, network: normalized.request.requirements.network };
      const refused = checkPolicy(normalized.request, services.policy, request.apiKey);
      if (refused) throw new FacilitatorError(refused.reason, refused.message);
      const result = await services.verify(normalized.request);
      const reason = result.valid ? undefined : result.rejection.reason;
      logOutcome(request, "verify", payer, normalized.request.requirements.network, reason ?? "valid", startedMs);
      services.metrics.observeVerify(normalized.request.requirements.network, reason ?? "valid", elapsedSeconds(startedMs));
      return result.valid ? renderVerify(true, payer) : renderVerify(false, payer, result.rejection.reason, result.rejection.message);
    },
  );

  app.post(
    "/settle",
    { schema: { body: RequestEnvelopeSchema, response: { 200: SettleResponseSchema, "4xx": SettleErrorResponseSchema, "5xx": SettleErrorResponseSchema } }, config: { rateLimit, routeKind: "settle" } },
    async (request) => {
      const key = idempotencyKeyOf(request);
      const startedMs = performance.now();
      // Who may settle this, first: a recorded answer is only for a caller the policy lets through now.
      const admitted = await admitSettle(services, request, startedMs);
      if (!admitted.ok) return admitted.answer;
      if (key === undefined) return settleOnce(services, request, admitted.payment, startedMs);
      const id: IdempotencyKeyId = { scope: request.apiKey?.id ?? anonymousIdempotencyScope, route: "settle", key: key.key };
      return settleIdempotently(services, request, id, key.source, admitted.payment, startedMs);
    },
  );
}

/** Where the request's idempotency key came from: the answers to a conflict differ (422 vs the extension's 409). */
type KeySource = "header" | "payment-identifier";

/**
 * The request's one idempotency key: the `Idempotency-Key` header, or the v2 payload's
 * payment-identifier id (`paymentPayload.extensions["payment-identifier"].info.id`), or both when
 * they are equal. They share one key space and one record: an id is stored as it is, so a request
 * with the header `X`, one with the id `X` and one with both are the same key (the body binds them
 * all the same way). Two different keys in one request are refused (400 idempotency_keys_differ):
 * neither may silently win. Checked before anything else, like the header's format always was.
 */
function idempotencyKeyOf(request: FastifyRequest): { key: string; source: KeySource } | undefined {
  const header = request.headers["idempotency-key"];
  if (header !== undefined && (typeof header !== "string" || !idempotencyKeyPattern.test(header))) {
    throw new InvalidRequestError(ReasonCode.invalidPayload, "Idempotency-Key must be 1-255 printable ASCII characters");
  }
  const identifier = paymentIdentifierOf((request.body as Envelope).paymentPayload);
  if (!identifier.ok) throw new InvalidRequestError(ReasonCode.invalidPayload, identifier.message);
  if (identifier.id === undefined) return header === undefined ? undefined : { key: header, source: "header" };
  if (header !== undefined && header !== identifier.id) {
    throw new FacilitatorError(ReasonCode.idempotencyKeysDiffer, `Idempotency-Key and the ${paymentIdentifierExtension} id differ: send one of them, or the same value in both`);
  }
  return { key: identifier.id, source: "payment-identifier" };
}

type Admission = { ok: true; payment: PaymentRequest } | { ok: false; answer: SettleAnswer };

/**
 * Everything that decides whether this caller may settle this payment, before any record or chain
 * work: the body's shape (a rejection is answered, not recorded: it is the same on every retry),
 * the operator's and the key's policy (403). The key's gas budget is reserved later, by the engine,
 * only when a transaction is about to be signed: a recorded answer or a duplicate spends nothing.
 */
async function admitSettle(services: Services, request: FastifyRequest, startedMs: number): Promise<Admission> {
  const normalized = normalize(request.body as Envelope, services.networkServed);
  if (!normalized.ok) {
    logOutcome(request, "settle", normalized.payer, normalized.network, normalized.rejection.reason, startedMs);
    services.metrics.observeSettle(networkLabel(services, normalized.version, normalized.network), normalized.rejection.reason, elapsedSeconds(startedMs));
    const answer = renderSettle({ success: false, reason: normalized.rejection.reason, message: normalized.rejection.message, transaction: "" }, normalized.network, normalized.payer);
    return { ok: false, answer };
  }
  request.payment = { payer: normalized.request.authorization.from, network: normalized.request.requirements.network };
  const refused = checkPolicy(normalized.request, services.policy, request.apiKey);
  if (refused) throw new FacilitatorError(refused.reason, refused.message);
  return { ok: true, payment: normalized.request };
}

async function settleOnce(services: Services, request: FastifyRequest, payment: PaymentRequest, startedMs: number): Promise<SettleAnswer> {
  const payer = payment.authorization.from;
  // A key's daily gas budget is reserved by the engine before anything is signed (429 when full).
  const budget = request.apiKey?.dailyGasBudgetWei;
  const outcome = await services.engine.settle(payment, { apiKeyId: request.apiKey?.id, dailyGasBudgetWei: budget === null || budget === undefined ? undefined : BigInt(budget) });
  logOutcome(request, "settle", payer, payment.requirements.network, outcome.success ? "success" : outcome.reason, startedMs, outcome.transaction);
  services.metrics.observeSettle(payment.requirements.network, outcome.success ? "success" : (outcome.reason ?? "failure"), elapsedSeconds(startedMs));
  // Bazaar discovery: only queued here (bounded, never throws); catalogued after the answer went out.
  // Only a payment that moved money writes an entry ("writing an entry under someone's payTo costs
  // a payment to them"): an upto charge of 0 sends nothing, so it creates and refreshes none.
  if (outcome.success && outcome.amountAtomic !== undefined && BigInt(outcome.amountAtomic) > 0n) services.bazaar.offer(request.body, payment);
  return renderSettle(outcome, payment.requirements.network, payer);
}

/**
 * Same Idempotency-Key + same body → the recorded answer (atomic through Postgres); the same
 * payment-identifier id + same body → the engine's answer again (see below); same key + another body →
 * 422 for an Idempotency-Key (Stripe), 409 payment_identifier_conflict for a payment-identifier id
 * (its spec); still running after the wait → 409 idempotency_key_reused. Keys live in the caller's
 * scope (`id.scope`). A recorded settlement_pending is not final, so it is settled again (which
 * reconciles).
 */
async function settleIdempotently(services: Services, request: FastifyRequest, id: IdempotencyKeyId, source: KeySource, payment: PaymentRequest, startedMs: number) {
  const requestHash = hashBody(request.body);
  if (requestHash === undefined) throw new InvalidRequestError(ReasonCode.invalidPayload, "request body is nested too deeply");
  let state = await services.idempotency.begin(id, requestHash);
  const waitUntilMs = services.deps.clock.nowMs() + services.deps.limits.settleBudgetMs + idempotencyWaitMarginMs;
  if (state.kind === "in-progress") state = await waitForRecordedAnswer(services, id, requestHash, waitUntilMs);
  const keyName = source === "header" ? "Idempotency-Key" : "payment identifier";
  if (state.kind === "mismatch") {
    if (source === "header") throw new FacilitatorError(ReasonCode.idempotencyKeyReused, "this Idempotency-Key was used with a different request body");
    throw new FacilitatorError(ReasonCode.paymentIdentifierConflict, "this payment identifier was used with a different request body");
  }
  if (state.kind === "in-progress") throw new IdempotencyKeyBusyError(`a request with this ${keyName} is still running; retry later`);
  // The header is the resource server's own key: its retry gets the recorded answer. A payment
  // identifier is the payer's: replaying a recorded success would hand one authorization several
  // success:true answers (a payer sending the same payment to a resource server N times at once), so
  // the engine answers again — duplicate_settlement with the hash after a success, the final answer
  // after a failure, a fresh attempt where the authorization is still payable. The record still
  // serializes same-id requests and refuses another body under the id (409).
  if (source === "header" && state.kind === "recorded" && (state.response as SettleAnswer).errorReason !== ReasonCode.settlementPending) return state.response;
  try {
    const answer = await settleOnce(services, request, payment, startedMs);
    await services.idempotency.record(id, answer, undefined);
    return answer;
  } catch (error) {
    if (state.kind === "new") {
      await services.idempotency.forget(id).catch((forgetError: unknown) => {
        // The settle's own error is the answer; the key stays "in progress": its retries get 409.
        request.log.error({ err: forgetError, idempotencyKey: id.key }, "could not forget an Idempotency-Key after a failed settle");
      });
    }
    throw error;
  }
}

/**
 * Another request with this key is running: wait (bounded) until its answer is recorded or the
 * record is gone, without polling — the recording write wakes us, in this process or through its
 * NOTIFY from another instance (store/notifications.ts). At the deadline, or at once when too many
 * already wait, the record as it is now (one read): still running → 409.
 */
async function waitForRecordedAnswer(services: Services, id: IdempotencyKeyId, requestHash: string, untilMs: number): Promise<IdempotencyBegin> {
  const answered = (record: Parameters<typeof idempotencyStateOf>[0]) => idempotencyStateOf(record, requestHash).kind !== "in-progress";
  const waited = await services.idempotencyWaiters.wait(idempotencyNotifyKey(id), undefined, answered, untilMs);
  if (waited.kind === "done") return idempotencyStateOf(waited.value, requestHash);
  return services.idempotency.lookup(id, requestHash);
}

/**
 * JSON.stringify recurses: a body nested some thousands deep (well under the body limit) overflows
 * the stack with a RangeError, which was answered 500. Such a body is the caller's mistake.
 */
function hashBody(body: unknown): string | undefined {
  let text: string;
  try {
    text = JSON.stringify(body);
  } catch (error) {
    if (error instanceof RangeError) return undefined;
    throw error;
  }
  return createHash("sha256").update(text).digest("hex");
}

/** Metric labels never take request input as is: an unserved network is counted as "other". */
function networkLabel(services: Services, version: 1 | 2 | undefined, network: string): string {
  return version !== undefined && services.networkServed(version, network) ? network : "other";
}

function elapsedSeconds(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}

function logOutcome(request: FastifyRequest, route: string, payer: string | undefined, network: string, outcome: string | undefined, startedMs: number, txHash?: string) {
  request.log.info({ route, payer, network, outcome, txHash: txHash || undefined, durationMs: Math.round(performance.now() - startedMs) }, `${route} answered`);
}

