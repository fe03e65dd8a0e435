import { ReasonCode, reasonAnswers, type ErrorReasonCode } from "./protocol/reason-codes.js";

/**
 * Base of every error we raise on purpose. `code` is stable and is the wire reason code; the HTTP
 * status comes from the reason-code table (`reasonAnswers` in src/protocol/reason-codes.ts), and
 * the error handler renders the answer (src/http/error-answers.ts): nobody builds an error body by
 * hand. Modelled on viem's BaseError: a short message for people and a `cause` chain that `walk()`
 * can search.
 */
export class FacilitatorError extends Error {
  override name = "FacilitatorError";
  readonly code: ErrorReasonCode;
  readonly httpStatus: number;

  constructor(code: ErrorReasonCode, shortMessage: string, options: { cause?: unknown } = {}) {
    super(shortMessage, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.httpStatus = reasonAnswers[code].status;
  }

  /** First error in the cause chain (this one included) for which `predicate` holds. */
  walk(predicate: (error: unknown) => boolean): unknown {
    let current: unknown = this;
    for (let depth = 0; current !== undefined && depth < 16; depth += 1) {
      if (predicate(current)) return current;
      current = current instanceof Error ? current.cause : undefined;
    }
    return undefined;
  }
}

/** The request body is not a well-formed x402 verify/settle request: HTTP 400. */
export class InvalidRequestError extends FacilitatorError {
  override name = "InvalidRequestError";
  constructor(code: typeof ReasonCode.invalidPayload | typeof ReasonCode.invalidPaymentRequirements, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
  }
}

/** Postgres or an RPC could not answer in time: HTTP 503, nothing was decided. */
export class DependencyUnavailableError extends FacilitatorError {
  override name = "DependencyUnavailableError";
  readonly dependency: "postgres" | "rpc";
  constructor(dependency: "postgres" | "rpc", message: string, options: { cause?: unknown } = {}) {
    super(ReasonCode.serviceUnavailable, message, options);
    this.dependency = dependency;
  }
}

/**
 * A signer cannot pay for the gas of one settlement, or fees are above the configured maximum:
 * our fault, not the payer's (503). Raised before a nonce is taken, so nothing is burned.
 */
export class SignerCannotPayError extends FacilitatorError {
  override name = "SignerCannotPayError";
  readonly signer: string;
  constructor(signer: string, message: string) {
    super(ReasonCode.serviceUnavailable, message);
    this.signer = signer;
  }
}

/**
 * Every signer key already has its maximum of settlements in flight and none freed up within the
 * request's budget: load, not an outage (503, nothing claimed stays claimed, retry shortly).
 */
export class SignersBusyError extends FacilitatorError {
  override name = "SignersBusyError";
  constructor(message: string) {
    super(ReasonCode.serviceUnavailable, message);
  }
}

/**
 * A settlement must be sent from a key this facilitator does not hold (an upto witness's
 * facilitator): 503, nothing sent, the claim released. An invariant, not a payer's mistake — the
 * pure checks answer such a witness `upto_facilitator_mismatch` before any claim — so reaching it
 * means the signer keys changed under a running settlement.
 */
export class SignerNotHeldError extends FacilitatorError {
  override name = "SignerNotHeldError";
  readonly signer: string;
  constructor(signer: string) {
    super(ReasonCode.serviceUnavailable, `${signer} is not one of this facilitator's signers (it must send this settlement); nothing was sent`);
    this.signer = signer;
  }
}

/**
 * The payer already has a settlement carrying an EIP-2612 permit unfinished for this token, on some
 * instance (the permit lane, migration 0011): their permits share the token's nonce, so a second
 * would revert on chain at our cost. 429 payer_busy; this claim wrote nothing.
 */
export class PermitLaneTakenError extends FacilitatorError {
  override name = "PermitLaneTakenError";
  readonly payer: string;
  constructor(payer: string, options: { cause?: unknown } = {}) {
    super(
      ReasonCode.payerBusy,
      `payer ${payer} has a settlement with an EIP-2612 permit for this token unfinished (its permits share the token's nonce); retry when it is final`,
      options,
    );
    this.payer = payer;
  }
}

/**
 * The first request with this Idempotency-Key is still running after the wait: HTTP 409 with
 * `idempotency_key_reused` — the one code whose status is not the table's (422 means another body).
 */
export class IdempotencyKeyBusyError extends FacilitatorError {
  override name = "IdempotencyKeyBusyError";
  override readonly httpStatus = 409;
  constructor(message: string) {
    super(ReasonCode.idempotencyKeyReused, message);
  }
}

/** The configuration is unusable; thrown at start so the process fails fast with the reason. */
export class ConfigError extends Error {
  override name = "ConfigError";
}
