import { DependencyUnavailableError, FacilitatorError } from "../errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
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
 * isValid/success still parse it: 4xx for the caller's mistakes, 503 for a dependency down,
 * 500 for our bugs (message not leaked).
 */
export function errorAnswer(error: unknown, route: RouteKind, payment?: { payer: string; network: string }): ErrorAnswer {
  const classified = classify(error, route);
  const { statusCode, code } = classified;
  // A message may quote an RPC URL (and its API key) from a viem error: never send one.
  const message = wireMessage(classified.message);
  const common = { error: code, message };
  const payer = payment ? { payer: payment.payer } : {};
  if (route === "verify") {
    return { statusCode, isFault: statusCode >= 500, body: { isValid: false, invalidReason: code, invalidMessage: message, ...payer, ...common } };
  }
  if (route === "settle") {
    return {
      statusCode,
      isFault: statusCode >= 500,
      body: { success: false, errorReason: code, errorMessage: message, transaction: "", network: payment?.network ?? "", ...payer, ...common },
    };
  }
  return { statusCode, isFault: statusCode >= 500, body: common };
}

/** Our own bugs carry the fault code of the route they broke: a verify never reports a settle error. */
const faultCodes: Record<RouteKind, ReasonCode> = {
  verify: ReasonCode.unexpectedVerifyError,
  settle: ReasonCode.unexpectedSettleError,
  other: ReasonCode.internalError,
};

function classify(error: unknown, route: RouteKind): { statusCode: number; code: ReasonCode; message: string } {
  if (error instanceof FacilitatorError) return { statusCode: error.httpStatus, code: error.code, message: error.message };
  if (isDatabaseUnavailable(error)) {
    const unavailable = new DependencyUnavailableError("postgres", "Postgres is unavailable; nothing was recorded or sent", { cause: error });
    return { statusCode: 503, code: unavailable.code, message: unavailable.message };
  }
  const fastifyError = error as { statusCode?: number; code?: string; message?: string; validation?: unknown };
  if (fastifyError.validation) return { statusCode: 400, code: ReasonCode.invalidPayload, message: fastifyError.message ?? "invalid request body" };
  if (typeof fastifyError.statusCode === "number" && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return { statusCode: fastifyError.statusCode, code: fastifyError.statusCode === 429 ? ReasonCode.rateLimited : ReasonCode.invalidPayload, message: fastifyError.message ?? "bad request" };
  }
  return { statusCode: 500, code: faultCodes[route], message: "internal error; see the facilitator logs" };
}
