import { redactedExcerpt, wireMessageMaxChars } from "../redact.js";
import type { ReasonCode } from "./reason-codes.js";
import type { SettleOutcome } from "../settlement/outcome.js";
import type { SettleAnswer, VerifyAnswer } from "./types.js";

/**
 * Messages come from revert texts and RPC errors, which can quote an RPC URL and its API key:
 * every answer's message — rendered here or by the error handler — is redacted and bounded here.
 */
export function wireMessage(message: string): string {
  return redactedExcerpt(message, wireMessageMaxChars);
}

export function renderVerify(valid: boolean, payer: string | undefined, reason?: ReasonCode, message?: string): VerifyAnswer {
  if (valid) return payer === undefined ? { isValid: true } : { isValid: true, payer };
  return {
    isValid: false,
    invalidReason: reason,
    ...(message === undefined ? {} : { invalidMessage: wireMessage(message) }),
    ...(payer === undefined ? {} : { payer }),
  };
}

/**
 * `transaction` and `network` are always present, on failure too (`""` when there is no
 * transaction): the official TS client rejects a settle answer without them and its middleware
 * turns that into a 502. `network` is as the caller named it (a v1 name for v1, CAIP-2 for v2).
 * `amount` (spec v2 §5.3, read by @x402/core 2.27): what was settled, atomic units, on success.
 */
export function renderSettle(outcome: SettleOutcome, network: string, payer: string | undefined): SettleAnswer {
  return {
    success: outcome.success,
    ...(outcome.success || outcome.reason === undefined ? {} : { errorReason: outcome.reason }),
    ...(outcome.success || outcome.message === undefined ? {} : { errorMessage: wireMessage(outcome.message) }),
    ...(payer === undefined ? {} : { payer }),
    transaction: outcome.transaction,
    network,
    ...(outcome.success && outcome.amountAtomic !== undefined ? { amount: outcome.amountAtomic } : {}),
  };
}
