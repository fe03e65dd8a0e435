import { ReasonCode } from "../protocol/reason-codes.js";

/** Revert texts of USDC, OpenZeppelin and common EIP-3009 tokens, mapped to our reason codes. */
const revertPatterns: ReadonlyArray<readonly [RegExp, ReasonCode]> = [
  [/authorization.*(used|canceled)|AuthorizationAlreadyUsed|AuthorizationUsedOrCanceled/i, ReasonCode.nonceAlreadyUsed],
  [/invalid.*signature|SignerMismatch|InvalidSignature|ECRecover|ECDSA/i, ReasonCode.invalidSignature],
  [/not yet valid|AuthorizationNotYetValid/i, ReasonCode.validAfterInFuture],
  [/authorization.*expired|valid before|AuthorizationExpired/i, ReasonCode.validBeforeExpired],
  [/exceeds balance|insufficient.*balance|ERC20InsufficientBalance/i, ReasonCode.insufficientBalance],
];

/** The reason code a revert text stands for, or `fallback` when it is not one we know. */
export function reasonForRevert(revertText: string | undefined, fallback: ReasonCode): ReasonCode {
  if (!revertText) return fallback;
  for (const [pattern, code] of revertPatterns) if (pattern.test(revertText)) return code;
  return fallback;
}
