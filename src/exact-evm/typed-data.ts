import { hashTypedData, type Address, type TypedDataDomain } from "viem";
import type { Authorization } from "../protocol/types.js";

export const transferWithAuthorizationTypes = {
  TransferWithAuthorization: [
    { name: "from", type: "address" },
    { name: "to", type: "address" },
    { name: "value", type: "uint256" },
    { name: "validAfter", type: "uint256" },
    { name: "validBefore", type: "uint256" },
    { name: "nonce", type: "bytes32" },
  ],
} as const;

export interface Eip712TokenDomain {
  name: string;
  version: string;
  chainId: number;
  verifyingContract: Address;
}

export function transferAuthorizationTypedData(domain: Eip712TokenDomain, authorization: Authorization) {
  return {
    domain: domain satisfies TypedDataDomain,
    types: transferWithAuthorizationTypes,
    primaryType: "TransferWithAuthorization" as const,
    message: {
      from: authorization.from,
      to: authorization.to,
      value: authorization.valueAtomic,
      validAfter: authorization.validAfterSeconds,
      validBefore: authorization.validBeforeSeconds,
      nonce: authorization.nonce,
    },
  };
}

/**
 * The EIP-712 digest the payer signed. It names the payment independently of the signature bytes,
 * so a malleated copy of a signature is recognised as the same payment.
 */
export function authorizationDigest(domain: Eip712TokenDomain, authorization: Authorization) {
  return hashTypedData(transferAuthorizationTypedData(domain, authorization));
}
