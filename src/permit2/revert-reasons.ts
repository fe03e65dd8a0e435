import { BaseError, decodeErrorResult, type Hex } from "viem";
import { decodeRevertData, revertReason } from "../chain/rpc-errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import { exactPermit2ProxyAbi, permit2Abi, uptoPermit2ProxyAbi } from "./abi.js";

const errorsAbi = [...permit2Abi, ...exactPermit2ProxyAbi, ...uptoPermit2ProxyAbi].filter((item) => item.type === "error");

/**
 * The custom errors of Permit2 and the proxies, as @x402/evm 2.27's mapSettleError names them
 * (shared/permit2.ts). 2.27 matches substrings of the error message (so InvalidSignatureLength goes
 * with InvalidSignature, and InvalidSigner matches nothing); here the decoded error's name decides,
 * and every signature failure is invalid_permit2_signature.
 */
const codeByError: Readonly<Record<string, ReasonCode>> = {
  Permit2612AmountMismatch: ReasonCode.permit2612AmountMismatch,
  InvalidAmount: ReasonCode.permit2InvalidAmount,
  InvalidDestination: ReasonCode.permit2InvalidDestination,
  InvalidOwner: ReasonCode.permit2InvalidOwner,
  PaymentTooEarly: ReasonCode.permit2PaymentTooEarly,
  InvalidSignature: ReasonCode.permit2InvalidSignature,
  InvalidSignatureLength: ReasonCode.permit2InvalidSignature,
  InvalidSigner: ReasonCode.permit2InvalidSignature,
  InvalidContractSignature: ReasonCode.permit2InvalidSignature,
  SignatureExpired: ReasonCode.permit2InvalidSignature,
  InvalidNonce: ReasonCode.permit2InvalidNonce,
  AmountExceedsPermitted: ReasonCode.uptoAmountExceedsPermitted,
  UnauthorizedFacilitator: ReasonCode.uptoUnauthorizedFacilitator,
};

export interface Permit2Revert {
  /** The custom error's name, when the revert data is one of Permit2's or the proxies'. */
  errorName?: string;
  /** For messages: the error's name and arguments, Error(string)'s text, or the node's words. */
  text: string;
}

/** What a reverted eth_call / estimate of a proxy call said. */
export function permit2Revert(error: unknown): Permit2Revert {
  const data = revertDataOf(error);
  if (data !== undefined && data.length >= 10) {
    try {
      const decoded = decodeErrorResult({ abi: errorsAbi, data });
      return { errorName: decoded.errorName, text: `${decoded.errorName}(${(decoded.args ?? []).join(", ")})` };
    } catch {
      return { text: decodeRevertData(data) };
    }
  }
  return { text: revertReason(error) ?? "reverted" };
}

/** The code a revert stands for, or `fallback` when it is none of the known errors. */
export function reasonForPermit2Revert(revert: Permit2Revert, fallback: ReasonCode): ReasonCode {
  return (revert.errorName !== undefined ? codeByError[revert.errorName] : undefined) ?? fallback;
}

function revertDataOf(error: unknown): Hex | undefined {
  if (!(error instanceof BaseError)) return undefined;
  const withData = error.walk((cause) => typeof (cause as { data?: unknown }).data === "string") as { data?: Hex } | null;
  const data = withData?.data;
  return typeof data === "string" && /^0x[0-9a-fA-F]*$/.test(data) ? data : undefined;
}
