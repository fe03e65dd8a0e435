import type { Address, Hex } from "viem";
import type { ReasonCode } from "./reason-codes.js";

export type X402Version = 1 | 2;

/** The schemes served: `exact` (EIP-3009 or Permit2) and `upto` (Permit2 only). */
export type Scheme = "exact" | "upto";

/** How the payer's tokens move: the token's own EIP-3009 authorization, or a Permit2 signature. */
export type TransferMethod = "eip3009" | "permit2";

export interface Authorization {
  from: Address;
  to: Address;
  valueAtomic: bigint;
  validAfterSeconds: bigint;
  validBeforeSeconds: bigint;
  nonce: Hex;
}

/**
 * A Permit2 PermitWitnessTransferFrom as the payer signed it, for one of x402's two proxies (the
 * `spender`): `exact` pays `permittedAtomic` to `witness.to`; `upto` pays at most that, and only
 * when `witness.facilitator` sends the settlement.
 */
export interface Permit2Authorization {
  owner: Address;
  token: Address;
  permittedAtomic: bigint;
  spender: Address;
  /** uint256: Permit2's unordered nonce (bitmap word nonce >> 8, bit nonce & 0xff), per owner across all tokens. */
  nonce: bigint;
  deadlineSeconds: bigint;
  witness: { to: Address; validAfterSeconds: bigint; facilitator?: Address };
}

/** The `eip2612GasSponsoring` extension's permit (spec extensions/eip2612_gas_sponsoring.md). */
export interface Eip2612Permit {
  from: Address;
  asset: Address;
  spender: Address;
  amountAtomic: bigint;
  nonce: bigint;
  deadlineSeconds: bigint;
  signature: Hex;
  version: string;
}

/** Present and well-formed, or present with a field of the wrong form (invalid_eip2612_extension_format). */
export type Eip2612Extension = { ok: true; permit: Eip2612Permit } | { ok: false; message: string };

/** The caller's requirements, both versions in one shape (v1 maxAmountRequired → amountAtomic). */
export interface Requirements {
  scheme: string;
  /** As the caller wrote it: a v1 name for v1, CAIP-2 for v2. */
  network: string;
  amountAtomic: bigint;
  asset: Address;
  payTo: Address;
  extraName: string | undefined;
  extraVersion: string | undefined;
}

/** One verify/settle request, whatever version it came in. */
export interface PaymentRequest {
  x402Version: X402Version;
  requirements: Requirements;
  /** v2: payload.accepted; v1: the payload's scheme and network only. */
  accepted: Partial<Requirements> & Pick<Requirements, "scheme" | "network">;
  /**
   * EIP-3009: the authorization as signed. Permit2: the same facts in the same shape, for everything
   * that only needs who pays whom how much when (policy, screening, logs, rows): from = owner,
   * to = witness.to, value = the permitted amount (upto: the cap), validAfter = witness.validAfter,
   * validBefore = deadline, nonce = the Permit2 nonce as 32 bytes of hex.
   */
  authorization: Authorization;
  transferMethod: TransferMethod;
  /** Permit2 payloads only: the permit as signed. */
  permit2?: Permit2Authorization;
  /** Permit2 payloads only, when the payload carries the eip2612GasSponsoring extension. */
  eip2612?: Eip2612Extension;
  signature: Hex;
  /** Chain id of requirements.network; undefined when the name is unknown. */
  chainId: number | undefined;
}

/**
 * Why a payment is refused: a business outcome (HTTP 200, isValid/success false); or, with a code
 * the reason-code table answers as an error (a policy refusal), thrown as a FacilitatorError.
 */
export interface Rejection<Code extends ReasonCode = ReasonCode> {
  reason: Code;
  message: string;
}

export interface VerifyAnswer {
  isValid: boolean;
  invalidReason?: ReasonCode;
  invalidMessage?: string;
  payer?: string;
}

export interface SettleAnswer {
  success: boolean;
  errorReason?: ReasonCode;
  errorMessage?: string;
  payer?: string;
  transaction: string;
  network: string;
  /** Atomic units settled, as a decimal string; success only. */
  amount?: string;
}
