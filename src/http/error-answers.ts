import { DependencyUnavailableError, FacilitatorError } from "../errors.js";
import { ReasonCode, reasonAnswers, type ErrorReasonCode } from "../protocol/reason-codes.js";
import { wireMessage } from "../protocol/render.js";
import { isDatabaseUnavailable } from "../store/db.js";

export type RouteKind = "verify" | "settle" | "other";

export interface ErrorAnswer {
  statusCode: number;
  body: Record<string, unknown>;
  /** Logged at error level: a fault of ours, not of the caller. */
  isFault: boolean;
}

/**
 * Maps any thrown error to an HTTP answer shaped for the route, so clients that only look at
 * isValid/success still parse it: status and shape come from the reason-code table
 * (`reasonAnswers`): 4xx for the caller's mistakes, 503 for a dependency down or every signer busy,
 * 500 for our bugs (message not leaked).
 */
export function errorAnswer(error: unknown, route: RouteKind, payment?: { payer: string; network: string }): ErrorAnswer {
  const classified = classify(error, route);
  const { statusCode, code } = classified;
  // A message may quote an RPC URL (and its API key) from a viem error: never send one.
  const message = wireMessage(classified.message);
  // An error about the request itself (body, credentials, Idempotency-Key) names no payment.
  const named = reasonAnswers[code].shape === "error" ? payment : undefined;
  return { statusCode, isFault: statusCode >= 500, body: errorBody(route, code, message, named) };
}

/** The route's own shape, with the message always present, plus `error` and `message`. */
function errorBody(route: RouteKind, code: ErrorReasonCode, message: string, payment: { payer: string; network: string } | undefined): Record<string, unknown> {
  const common = { error: code, message };
  const payer = payment ? { payer: payment.payer } : {};
  if (route === "verify") return { isValid: false, invalidReason: code, invalidMessage: message, ...payer, ...common };
  if (route === "settle") return { success: false, errorReason: code, errorMessage: message, transaction: "", network: payment?.network ?? "", ...payer, ...common };
  return common;
}

/** Our own bugs carry the fault code of the route they broke: a verify never reports a settle error. */
const faultCodes: Record<RouteKind, ErrorReasonCode> = {
  verify: ReasonCode.unexpectedVerifyError,
  settle: ReasonCode.unexpectedSettleError,
  other: ReasonCode.internalError,
};

function classify(error: unknown, route: RouteKind): { statusCode: number; code: ErrorReasonCode; message: string } {
  if (error instanceof FacilitatorError) return { statusCode: error.httpStatus, code: error.code, message: error.message };
  if (isDatabaseUnavailable(error)) {
    const unavailable = new DependencyUnavailableError("postgres", "Postgres is unavailable; nothing was recorded or sent", { cause: error });
    return { statusCode: unavailable.httpStatus, code: unavailable.code, message: unavailable.message };
  }
  // Fastify's own errors: a body that fails the route's schema, or its 4xx (413 body too large,
  // 415 content type, 429 from @fastify/rate-limit) keeping their status.
  const fastifyError = error as { statusCode?: number; code?: string; message?: string; validation?: unknown };
  if (fastifyError.validation) return { statusCode: reasonAnswers[ReasonCode.invalidPayload].status, code: ReasonCode.invalidPayload, message: fastifyError.message ?? "invalid request body" };
  if (typeof fastifyError.statusCode === "number" && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return { statusCode: fastifyError.statusCode, code: fastifyError.statusCode === 429 ? ReasonCode.rateLimited : ReasonCode.invalidPayload, message: fastifyError.message ?? "bad request" };
  }
  const code = faultCodes[route];
  return { statusCode: reasonAnswers[code].status, code, message: "internal error; see the facilitator logs" };
}
