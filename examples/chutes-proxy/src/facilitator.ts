/**
 * /verify and /settle through the official `HTTPFacilitatorClient` (@x402/core), which bounds every call
 * with `AbortSignal.timeout(timeoutMs)` and validates the answers. Outcomes are reduced to what the proxy
 * answers: 402 + reason for a payment that is refused, 502 when the facilitator itself failed.
 */
import { HTTPFacilitatorClient } from "@x402/core/http";
import { SettleError, VerifyError, type PaymentPayload, type PaymentRequirements, type SettleResponse } from "@x402/core/types";
import type { Payment } from "./x402.js";

export const SETTLEMENT_PENDING = "settlement_pending";

export type Refusal = { ok: false; status: 402 | 502; reason: string; message: string; settle?: SettleResponse };
export type VerifyOutcome = { ok: true; payer?: string } | Refusal;
export type SettleOutcome = { ok: true; settle: SettleResponse } | Refusal;

export interface Facilitator {
  verify(payment: Payment): Promise<VerifyOutcome>;
  settle(payment: Payment): Promise<SettleOutcome>;
}

// The client is typed for v2; it forwards `x402Version` from the payload, so v1 bodies pass through unchanged.
const asSdk = (payment: Payment) => [payment.payload as unknown as PaymentPayload, payment.requirements as unknown as PaymentRequirements] as const;

const failure = (error: unknown, operation: string): Refusal => ({
  ok: false,
  status: 502,
  reason: "facilitator_unavailable",
  message: `facilitator ${operation} failed: ${error instanceof Error ? error.message : String(error)}`,
});

const isPending = (settle: Pick<SettleResponse, "success" | "errorReason" | "transaction">) =>
  !settle.success && settle.errorReason === SETTLEMENT_PENDING && !!settle.transaction;

export function createFacilitator(url: string, timeoutMs: number): Facilitator {
  const client = new HTTPFacilitatorClient({ url, timeoutMs });

  return {
    async verify(payment) {
      try {
        const answer = await client.verify(...asSdk(payment));
        if (answer.isValid) return { ok: true, payer: answer.payer };
        return { ok: false, status: 402, reason: answer.invalidReason ?? "invalid_payment", message: answer.invalidMessage ?? "the facilitator refused the payment" };
      } catch (error) {
        // A 4xx answer in the verify shape is the payment's fault (malformed); a 5xx is the facilitator's.
        if (error instanceof VerifyError && error.statusCode < 500) {
          return { ok: false, status: 402, reason: error.invalidReason ?? "invalid_payment", message: error.invalidMessage ?? error.message };
        }
        return failure(error, "verify");
      }
    },

    /** Like the official resource server (`settleWithPendingRetry`): one retry, identical body, on `settlement_pending`. */
    async settle(payment) {
      let answer: SettleResponse;
      try {
        answer = await settleOrPending(client, payment);
        if (isPending(answer)) answer = await client.settle(...asSdk(payment));
      } catch (error) {
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
async function settleOrPending(client: HTTPFacilitatorClient, payment: Payment): Promise<SettleResponse> {
  try {
    return await client.settle(...asSdk(payment));
  } catch (error) {
    if (error instanceof SettleError && error.errorReason === SETTLEMENT_PENDING && error.transaction) {
      return { success: false, errorReason: SETTLEMENT_PENDING, transaction: error.transaction, network: error.network };
    }
    throw error;
  }
}
