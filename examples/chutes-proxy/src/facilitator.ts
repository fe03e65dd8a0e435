/**
 * /verify and /settle through the official `HTTPFacilitatorClient` (@x402/core), which bounds every call
 * with `AbortSignal.timeout(timeoutMs)` and validates the answers. Outcomes are reduced to what the proxy
 * answers: 402 + reason for a payment that is refused, 502 when the facilitator itself failed or refused
 * this proxy's API key (`facilitator_unauthorized`: the operator's mistake, not the buyer's). An `upto`
 * payment is settled for the amount actually used: the requirements it was verified with, `amount`
 * lowered to the charge, as @x402/core's resource server does for `setSettlementOverrides`.
 *
 * With an API key (FACILITATOR_API_KEY) the client sends `Authorization: Bearer <key>` on /verify,
 * /settle and /supported through its `createAuthHeaders` option, which must answer headers keyed by
 * path (`{verify, settle, supported}`); a flat headers object makes the SDK throw.
 */
import { HTTPFacilitatorClient } from "@x402/core/http";
import { SettleError, VerifyError, type PaymentPayload, type PaymentRequirements, type SettleResponse, type SupportedResponse } from "@x402/core/types";
import type { Payment } from "./x402.js";

export const SETTLEMENT_PENDING = "settlement_pending";
export const FACILITATOR_UNAUTHORIZED = "facilitator_unauthorized";
export const FACILITATOR_UNAVAILABLE = "facilitator_unavailable";

export interface FacilitatorOptions {
  url: string;
  timeoutMs: number;
  /** Bearer token for a facilitator with AUTH=api-keys; undefined sends no Authorization header. */
  apiKey?: string | undefined;
}

export type Refusal = { ok: false; status: 402 | 502; reason: string; message: string; settle?: SettleResponse };
export type VerifyOutcome = { ok: true; payer?: string } | Refusal;
export type SettleOutcome = { ok: true; settle: SettleResponse } | Refusal;

export interface Facilitator {
  /** The facilitator's /supported: which schemes it settles on which networks. */
  supported(): Promise<SupportedResponse>;
  verify(payment: Payment): Promise<VerifyOutcome>;
  /**
   * Settles the payment for its requirements' amount, or for `amountAtomic` (an `upto` charge: at most
   * the signed cap; the facilitator checks it again).
   */
  settle(payment: Payment, amountAtomic?: bigint): Promise<SettleOutcome>;
}

// The client is typed for v2; it forwards `x402Version` from the payload, so v1 bodies pass through unchanged.
const asSdk = (payment: Payment, amountAtomic?: bigint) =>
  [
    payment.payload as unknown as PaymentPayload,
    (amountAtomic === undefined ? payment.requirements : { ...payment.requirements, amount: amountAtomic.toString() }) as unknown as PaymentRequirements,
  ] as const;

const failure = (error: unknown, operation: string): Refusal => ({
  ok: false,
  status: 502,
  reason: FACILITATOR_UNAVAILABLE,
  message: `facilitator ${operation} failed: ${error instanceof Error ? error.message : String(error)}`,
});

/**
 * HTTP 401 from the facilitator: it did not accept this proxy's key (none, unknown or revoked). This
 * facilitator answers it in the route's shape (a VerifyError / SettleError with status 401); another
 * may answer any body, which the SDK reports as "Facilitator verify failed (401): …".
 */
function isUnauthorized(error: unknown): boolean {
  if (error instanceof VerifyError || error instanceof SettleError) return error.statusCode === 401;
  return error instanceof Error && /^Facilitator \w+ failed \(401\)/.test(error.message);
}

function unauthorized(error: unknown, operation: string, hasKey: boolean): Refusal {
  const detail =
    error instanceof VerifyError ? (error.invalidMessage ?? error.message) : error instanceof SettleError ? (error.errorMessage ?? error.message) : (error as Error).message;
  const what = hasKey ? "refused this proxy's API key (FACILITATOR_API_KEY)" : "needs an API key: set FACILITATOR_API_KEY";
  return { ok: false, status: 502, reason: FACILITATOR_UNAUTHORIZED, message: `the facilitator ${what} on ${operation}: ${detail}; the payment was not used` };
}

/** `createAuthHeaders` for the SDK client: the same Bearer header for each path it calls. */
export function bearerAuthHeaders(apiKey: string) {
  const headers = { Authorization: `Bearer ${apiKey}` };
  return async () => ({ verify: headers, settle: headers, supported: headers });
}

const isPending = (settle: Pick<SettleResponse, "success" | "errorReason" | "transaction">) =>
  !settle.success && settle.errorReason === SETTLEMENT_PENDING && !!settle.transaction;

export function createFacilitator({ url, timeoutMs, apiKey }: FacilitatorOptions): Facilitator {
  const client = new HTTPFacilitatorClient({ url, timeoutMs, ...(apiKey === undefined ? {} : { createAuthHeaders: bearerAuthHeaders(apiKey) }) });
  const hasKey = apiKey !== undefined;

  return {
    supported: () => client.getSupported(),

    async verify(payment) {
      try {
        const answer = await client.verify(...asSdk(payment));
        if (answer.isValid) return { ok: true, payer: answer.payer };
        return { ok: false, status: 402, reason: answer.invalidReason ?? "invalid_payment", message: answer.invalidMessage ?? "the facilitator refused the payment" };
      } catch (error) {
        if (isUnauthorized(error)) return unauthorized(error, "verify", hasKey);
        // Any other 4xx answer in the verify shape is the payment's fault (malformed); a 5xx is the facilitator's.
        if (error instanceof VerifyError && error.statusCode < 500) {
          return { ok: false, status: 402, reason: error.invalidReason ?? "invalid_payment", message: error.invalidMessage ?? error.message };
        }
        return failure(error, "verify");
      }
    },

    /** Like the official resource server (`settleWithPendingRetry`): one retry, identical body, on `settlement_pending`. */
    async settle(payment, amountAtomic) {
      let answer: SettleResponse;
      try {
        answer = await settleOrPending(client, asSdk(payment, amountAtomic));
        if (isPending(answer)) answer = await client.settle(...asSdk(payment, amountAtomic));
      } catch (error) {
        if (isUnauthorized(error)) return unauthorized(error, "settle", hasKey);
        if (error instanceof SettleError && error.statusCode < 500) {
          return { ok: false, status: 402, reason: error.errorReason ?? "settlement_failed", message: error.errorMessage ?? error.message };
        }
        return failure(error, "settle");
      }
      if (answer.success) return { ok: true, settle: answer };
      return { ok: false, status: 402, reason: answer.errorReason ?? "settlement_failed", message: answer.errorMessage ?? "the facilitator could not settle the payment", settle: answer };
    },
  };
}

/** A pending answer may also come as a SettleError (non-2xx); it is retried the same way. */
async function settleOrPending(client: HTTPFacilitatorClient, body: ReturnType<typeof asSdk>): Promise<SettleResponse> {
  try {
    return await client.settle(...body);
  } catch (error) {
    if (error instanceof SettleError && error.errorReason === SETTLEMENT_PENDING && error.transaction) {
      return { success: false, errorReason: SETTLEMENT_PENDING, transaction: error.transaction, network: error.network };
    }
    throw error;
  }
}
