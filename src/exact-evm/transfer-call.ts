import { encodeFunctionData, parseSignature, type Address, type Hex } from "viem";
import type { Authorization } from "../protocol/types.js";
import { eip3009Abi } from "./abi.js";
import { signatureKind, tokenSignature } from "./signature.js";

export interface ContractCall {
  to: Address;
  data: Hex;
}

/**
 * Calldata of `transferWithAuthorization` for a payment: the (v, r, s) overload for a 65-byte ECDSA
 * signature (what every USDC deployment has), the `bytes` overload for ERC-1271 smart wallets
 * (ERC-6492 wrapping removed: the token only knows ERC-1271). The same bytes are simulated,
 * estimated and signed, so what we checked is what we send.
 */
export function transferWithAuthorizationCall(token: Address, authorization: Authorization, signature: Hex): ContractCall {
  const head = [
    authorization.from,
    authorization.to,
    authorization.valueAtomic,
    authorization.validAfterSeconds,
    authorization.validBeforeSeconds,
    authorization.nonce,
  ] as const;
  if (signatureKind(signature) === "ecdsa") {
    const { r, s, yParity } = parseSignature(signature);
    // USDC's ECRecover accepts only v = 27 | 28; a 0/1 v from some wallets is normalised here.
    const data = encodeFunctionData({ abi: eip3009Abi, functionName: "transferWithAuthorization", args: [...head, 27 + yParity, r, s] });
    return { to: token, data };
  }
  const data = encodeFunctionData({ abi: eip3009Abi, functionName: "transferWithAuthorization", args: [...head, tokenSignature(signature)] });
  return { to: token, data };
}
