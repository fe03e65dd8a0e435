import type { Address } from "viem";
import { permit2Address, x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress } from "../contracts/permit2.js";
import { signingValidityMarginSeconds, validBeforeMarginSeconds } from "../exact-evm/checks.js";
import { isZeroCharge, type ResolvedPayment } from "../exact-evm/resolve.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { PaymentRequest, Permit2Authorization, Rejection, Scheme } from "../protocol/types.js";

/**
 * The pure checks of a Permit2 payment (`exact` over Permit2, and `upto`), with @x402/evm 2.27's
 * codes (exact/facilitator/permit2.ts verifyPermit2, upto/facilitator/permit2.ts verifyUptoPermit2).
 * /verify runs them in 2.27's order: binding, parties (spender, recipient, upto's facilitator),
 * window (deadline, validAfter), amounts (amount, token; then ours: the minimum, the EIP-2612
 * extension), so a payment wrong in several ways mostly gets 2.27's code. Where ours differs, on
 * purpose (test/unit/permit2/checks.test.ts pins each):
 * - the EIP-2612 permit's deadline is checked with the permit's own window (checkPermit2Window), so
 *   it comes before the amount, token and the extension's other fields; 2.27 checks it last;
 * - the extension is checked before the signature, at verify and at settle (2.27: after the
 *   signature, and only when it simulates);
 * - upto at /settle compares the charge with the accepted cap in the binding, first (2.27
 *   re-verifies at `permitted.amount`, then compares the charge last), and a permit below the
 *   accepted cap is permit2_amount_mismatch there as at verify.
 * /settle checks the window later, after the claim lookup: a payment we already hold is answered
 * from its row whatever the clock says.
 */

/** At /verify an upto payment is checked against its cap (the requirements' amount is the cap); at /settle the requirements' amount is the charge, at most the cap. */
type Permit2Stage = "verify" | "settle";

/** The proxy a scheme's payer signs for (the permit's `spender`), which the settlement calls. */
export function proxyOf(scheme: Scheme): Address {
  return scheme === "upto" ? x402UptoPermit2ProxyAddress : x402ExactPermit2ProxyAddress;
}

function permitOf(request: PaymentRequest): Permit2Authorization {
  if (!request.permit2) throw new Error("not a Permit2 payment");
  return request.permit2;
}

/**
 * v2 `accepted` equals the requirements, as for EIP-3009 — but for upto at /settle, where the
 * amount is the charge: the charge may be lower than the accepted cap, never higher.
 */
function checkPermit2Binding(request: PaymentRequest, stage: Permit2Stage): Rejection | undefined {
  const { accepted, requirements } = request;
  const upto = requirements.scheme === "upto";
  if (accepted.scheme !== requirements.scheme) {
    return {
      reason: upto ? ReasonCode.uptoInvalidScheme : ReasonCode.unsupportedPayloadType,
      message: `payload scheme "${accepted.scheme}" is not the required "${requirements.scheme}"`,
    };
  }
  if (accepted.network !== requirements.network) {
    return {
      reason: upto ? ReasonCode.uptoNetworkMismatch : ReasonCode.networkMismatch,
      message: `payload network "${accepted.network}" is not the required "${requirements.network}"`,
    };
  }
  const differing = (["asset", "payTo", "extraName", "extraVersion", ...(upto && stage === "settle" ? [] : ["amountAtomic" as const])] as const).find(
    (field) => accepted[field] !== requirements[field],
  );
  if (differing !== undefined) {
    const wireName = { amountAtomic: "amount", asset: "asset", payTo: "payTo", extraName: "extra.name", extraVersion: "extra.version" }[differing];
    return { reason: ReasonCode.invalidPaymentRequirements, message: `paymentPayload.accepted.${wireName} differs from paymentRequirements.${wireName}` };
  }
  if (upto && stage === "settle" && accepted.amountAtomic !== undefined && requirements.amountAtomic > accepted.amountAtomic) {
    return {
      reason: ReasonCode.uptoSettlementExceedsAmount,
      message: `the amount to settle ${requirements.amountAtomic} is above the authorized maximum ${accepted.amountAtomic}`,
    };
  }
  return undefined;
}

interface Permit2TermsOptions {
  signerAddresses: readonly Address[];
  minAmountAtomic: bigint;
}

/**
 * /settle's pure checks: the binding, then the permit pays what is asked, to whom, through the
 * scheme's proxy (parties, then amounts). No window: /settle checks it after the claim lookup,
 * /verify between the two (checkPermit2ForVerify).
 */
export function checkPermit2ForSettle(payment: ResolvedPayment, options: Permit2TermsOptions): Rejection | undefined {
  const { request } = payment;
  return checkPermit2Binding(request, "settle") ?? checkPermit2Parties(request, options) ?? checkPermit2Amounts(payment, "settle", options);
}

/** /verify's pure checks, in 2.27's order: binding, parties, window, amounts. */
export function checkPermit2ForVerify(payment: ResolvedPayment, nowSeconds: bigint, options: Permit2TermsOptions): Rejection | undefined {
  const { request } = payment;
  return (
    checkPermit2Binding(request, "verify") ??
    checkPermit2Parties(request, options) ??
    checkPermit2Window(request, nowSeconds) ??
    checkPermit2Amounts(payment, "verify", options)
  );
}

/** Spender (the scheme's proxy), recipient (payTo), and for upto a witness facilitator that is one of our keys. */
function checkPermit2Parties(request: PaymentRequest, options: Permit2TermsOptions): Rejection | undefined {
  const permit = permitOf(request);
  const { requirements } = request;
  const scheme: Scheme = requirements.scheme === "upto" ? "upto" : "exact";
  const proxy = proxyOf(scheme);
  if (permit.spender !== proxy) {
    return { reason: ReasonCode.permit2InvalidSpender, message: `permit2Authorization.spender ${permit.spender} is not the x402 ${scheme} Permit2 proxy ${proxy}` };
  }
  if (permit.witness.to !== requirements.payTo) {
    return { reason: ReasonCode.permit2RecipientMismatch, message: `permit2Authorization.witness.to ${permit.witness.to} is not payTo ${requirements.payTo}` };
  }
  if (scheme === "upto") {
    // The proxy lets only the witness's facilitator settle: a key we do not hold can never be paid.
    const facilitator = permit.witness.facilitator;
    if (facilitator === undefined || !options.signerAddresses.some((address) => address.toLowerCase() === facilitator.toLowerCase())) {
      return { reason: ReasonCode.uptoFacilitatorMismatch, message: `permit2Authorization.witness.facilitator ${facilitator} is not a signer of this facilitator (see GET /supported)` };
    }
  }
  return undefined;
}

/** Amount and token as asked; the amount at least `minAmountAtomic` (ours); the eip2612GasSponsoring extension, when present, is for this payment. */
function checkPermit2Amounts(payment: ResolvedPayment, stage: Permit2Stage, options: Permit2TermsOptions): Rejection | undefined {
  const { request } = payment;
  const permit = permitOf(request);
  const { requirements } = request;
  const scheme: Scheme = requirements.scheme === "upto" ? "upto" : "exact";
  // /verify (and exact /settle): the permit is for exactly the requirements' amount. upto /settle:
  // the requirements' amount is the charge, and the permit is for the accepted cap.
  const signedFor = scheme === "upto" && stage === "settle" ? request.accepted.amountAtomic : requirements.amountAtomic;
  if (permit.permittedAtomic !== signedFor) {
    return { reason: ReasonCode.permit2AmountMismatch, message: `permit2Authorization.permitted.amount ${permit.permittedAtomic} is not the ${scheme === "upto" ? "authorized maximum" : "required amount"} ${signedFor}` };
  }
  if (permit.token !== requirements.asset) {
    return { reason: ReasonCode.permit2TokenMismatch, message: `permit2Authorization.permitted.token ${permit.token} is not the asset ${requirements.asset}` };
  }
  if (permit.permittedAtomic < options.minAmountAtomic) {
    return { reason: ReasonCode.amountBelowMinimum, message: `amount ${permit.permittedAtomic} is below this facilitator's minimum of ${options.minAmountAtomic}` };
  }
  // A non-zero charge below the minimum costs the same gas as any other (a zero charge sends nothing).
  if (scheme === "upto" && stage === "settle" && !isZeroCharge(payment) && payment.settleAmountAtomic < options.minAmountAtomic) {
    return { reason: ReasonCode.amountBelowMinimum, message: `the amount to settle ${payment.settleAmountAtomic} is below this facilitator's minimum of ${options.minAmountAtomic}` };
  }
  return checkEip2612Terms(request, permit);
}

/** validateEip2612PermitForPayment's field checks (2.27; its deadline is checked with the window, checkPermit2Window), plus the value the proxy requires (Permit2612AmountMismatch). */
function checkEip2612Terms(request: PaymentRequest, permit: Permit2Authorization): Rejection | undefined {
  const extension = request.eip2612;
  if (!extension) return undefined;
  if (!extension.ok) return { reason: ReasonCode.eip2612InvalidFormat, message: extension.message };
  const p = extension.permit;
  // settleWithPermit takes (v, r, s): only a 65-byte r‖s‖v can be split into them (2.27's splitEip2612Signature).
  if (p.signature.length !== 2 + 65 * 2) return { reason: ReasonCode.eip2612InvalidFormat, message: "the EIP-2612 permit's signature is not 65 bytes (r ‖ s ‖ v)" };
  if (p.from !== permit.owner) return { reason: ReasonCode.eip2612FromMismatch, message: `the EIP-2612 permit is from ${p.from}, not the payer ${permit.owner}` };
  if (p.asset !== permit.token) return { reason: ReasonCode.eip2612AssetMismatch, message: `the EIP-2612 permit is for ${p.asset}, not the asset ${permit.token}` };
  if (p.spender !== permit2Address) return { reason: ReasonCode.eip2612SpenderNotPermit2, message: `the EIP-2612 permit's spender ${p.spender} is not Permit2 ${permit2Address}` };
  if (p.amountAtomic !== permit.permittedAtomic) {
    return { reason: ReasonCode.permit2612AmountMismatch, message: `the EIP-2612 permit's value ${p.amountAtomic} is not the permitted amount ${permit.permittedAtomic}` };
  }
  return undefined;
}

/**
 * Right before signing: the permit must still have signingValidityMarginSeconds left, and so must the
 * payload's EIP-2612 permit when the transaction submits it (settleWithPermit; a plain settle over
 * an approval does not, and its deadline does not matter then).
 */
export function checkPermit2ValidityAtSigning(request: PaymentRequest, nowSeconds: bigint, options: { submitsEip2612Permit: boolean } = { submitsEip2612Permit: true }): Rejection | undefined {
  const permit = permitOf(request);
  const notSent = `when its turn to be signed came: not sent (it would revert)`;
  if (permit.deadlineSeconds < nowSeconds + signingValidityMarginSeconds) {
    return { reason: ReasonCode.permit2DeadlineExpired, message: `the permit's deadline ${permit.deadlineSeconds} is less than ${signingValidityMarginSeconds}s after now (${nowSeconds}) ${notSent}` };
  }
  const extension = options.submitsEip2612Permit ? request.eip2612 : undefined;
  if (extension?.ok && extension.permit.deadlineSeconds < nowSeconds + signingValidityMarginSeconds) {
    return { reason: ReasonCode.eip2612DeadlineExpired, message: `the EIP-2612 permit's deadline ${extension.permit.deadlineSeconds} is less than ${signingValidityMarginSeconds}s after now (${nowSeconds}) ${notSent}` };
  }
  return undefined;
}

/** The permit is valid now and long enough to be mined (2.27's +6 s rule), and so is its EIP-2612 permit. */
export function checkPermit2Window(request: PaymentRequest, nowSeconds: bigint): Rejection | undefined {
  const permit = permitOf(request);
  if (permit.deadlineSeconds < nowSeconds + validBeforeMarginSeconds) {
    return { reason: ReasonCode.permit2DeadlineExpired, message: `the permit's deadline ${permit.deadlineSeconds} is less than ${validBeforeMarginSeconds}s after now (${nowSeconds})` };
  }
  if (permit.witness.validAfterSeconds > nowSeconds) {
    return { reason: ReasonCode.permit2NotYetValid, message: `the permit is valid only after ${permit.witness.validAfterSeconds}; now is ${nowSeconds}` };
  }
  const extension = request.eip2612;
  if (extension?.ok && extension.permit.deadlineSeconds < nowSeconds + validBeforeMarginSeconds) {
    return { reason: ReasonCode.eip2612DeadlineExpired, message: `the EIP-2612 permit's deadline ${extension.permit.deadlineSeconds} is less than ${validBeforeMarginSeconds}s after now (${nowSeconds})` };
  }
  return undefined;
}
