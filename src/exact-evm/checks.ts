import { ReasonCode } from "../protocol/reason-codes.js";
import type { PaymentRequest, Rejection } from "../protocol/types.js";

/** validBefore must leave this much time for the settlement to be mined (the reference uses 6 s). */
export const validBeforeMarginSeconds = 6n;

/**
 * At signing, what must still be left of an authorization's validity (and of a permit's deadline):
 * a transaction signed now lands within a block or two (Base: 2 s blocks), and the token compares
 * that block's timestamp with validBefore. A settlement that queued for its signer past this is
 * refused unsigned (checkValidityAtSigning): sent, it would revert at our cost. Less than the 6 s asked at
 * claim, so a payment does not fail merely for having queued a moment.
 */
export const signingValidityMarginSeconds = 3n;

/**
 * The payload is bound to these requirements: v2 `accepted` equals the requirements; v1's payload
 * scheme/network equal them. Without this a payment signed for one offer could buy another.
 */
export function checkBinding(request: PaymentRequest): Rejection | undefined {
  const { accepted, requirements } = request;
  if (accepted.scheme !== requirements.scheme) {
    return { reason: ReasonCode.invalidScheme, message: `payload scheme "${accepted.scheme}" is not the required "${requirements.scheme}"` };
  }
  if (accepted.network !== requirements.network) {
    return { reason: ReasonCode.networkMismatch, message: `payload network "${accepted.network}" is not the required "${requirements.network}"` };
  }
  if (request.x402Version === 1) return undefined;
  const differing = (["amountAtomic", "asset", "payTo", "extraName", "extraVersion"] as const).find(
    (field) => accepted[field] !== requirements[field],
  );
  if (differing === undefined) return undefined;
  const wireName = { amountAtomic: "amount", asset: "asset", payTo: "payTo", extraName: "extra.name", extraVersion: "extra.version" }[differing];
  return {
    reason: ReasonCode.invalidPaymentRequirements,
    message: `paymentPayload.accepted.${wireName} differs from paymentRequirements.${wireName}`,
  };
}

/**
 * The signed authorization pays exactly what is asked, to whom it is asked, and at least
 * `minAmountAtomic`: a 0-value payment would have us pay gas for a transfer that pays nobody.
 */
export function checkAuthorizationTerms(request: PaymentRequest, minAmountAtomic: bigint): Rejection | undefined {
  const { authorization, requirements } = request;
  if (authorization.to !== requirements.payTo) {
    return { reason: ReasonCode.recipientMismatch, message: `authorization.to ${authorization.to} is not payTo ${requirements.payTo}` };
  }
  if (authorization.valueAtomic !== requirements.amountAtomic) {
    return {
      // The 2.27 reference names it per version: v2 (spec v2 §9) ..._value_mismatch, v1 still _authorization_value.
      reason: request.x402Version === 1 ? ReasonCode.authorizationValueMismatchV1 : ReasonCode.authorizationValueMismatch,
      message: `authorization.value ${authorization.valueAtomic} is not the required amount ${requirements.amountAtomic}`,
    };
  }
  if (authorization.valueAtomic < minAmountAtomic) {
    return { reason: ReasonCode.amountBelowMinimum, message: `amount ${authorization.valueAtomic} is below this facilitator's minimum of ${minAmountAtomic}` };
  }
  return undefined;
}

/** Right before signing: the authorization must still have signingValidityMarginSeconds left. */
export function checkValidityAtSigning(request: PaymentRequest, nowSeconds: bigint): Rejection | undefined {
  const { validBeforeSeconds } = request.authorization;
  if (validBeforeSeconds >= nowSeconds + signingValidityMarginSeconds) return undefined;
  return {
    reason: ReasonCode.validBeforeExpired,
    message: `authorization expires at ${validBeforeSeconds}, less than ${signingValidityMarginSeconds}s after now (${nowSeconds}) when its turn to be signed came: not sent (it would revert)`,
  };
}

/** The authorization is valid now and stays valid long enough to be mined. */
export function checkValidityWindow(request: PaymentRequest, nowSeconds: bigint): Rejection | undefined {
  const { validAfterSeconds, validBeforeSeconds } = request.authorization;
  if (validBeforeSeconds < nowSeconds + validBeforeMarginSeconds) {
    return {
      reason: ReasonCode.validBeforeExpired,
      message: `authorization expires at ${validBeforeSeconds}, less than ${validBeforeMarginSeconds}s after now (${nowSeconds})`,
    };
  }
  if (validAfterSeconds > nowSeconds) {
    return { reason: ReasonCode.validAfterInFuture, message: `authorization is valid only after ${validAfterSeconds}; now is ${nowSeconds}` };
  }
  return undefined;
}
