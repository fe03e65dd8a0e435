import type { Address, Hex } from "viem";
import type { ReasonCode } from "./reason-codes.js";

export type X402Version = 1 | 2;

export interface Authorization {
  from: Address;
  to: Address;
  valueAtomic: bigint;
  validAfterSeconds: bigint;
  validBeforeSeconds: bigint;
  nonce: Hex;
}

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
  authorization: Authorization;
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
