import type { Policy } from "../config.js";
import { chainIdFromAnyNetwork } from "../protocol/networks.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { PaymentRequest, Rejection } from "../protocol/types.js";
import type { ApiKeyRow } from "../store/schema.js";

export type PolicyReasonCode =
  | typeof ReasonCode.payToNotAllowed
  | typeof ReasonCode.amountAboveLimit
  | typeof ReasonCode.networkNotAllowed
  | typeof ReasonCode.assetNotAllowed;

/**
 * The operator's rules for a payment, checked before any chain work: the global allowlist and
 * amount cap, then the caller's key allowlists. A refusal is HTTP 403 with the reason.
 */
export function checkPolicy(request: PaymentRequest, policy: Policy, apiKey: ApiKeyRow | undefined): Rejection<PolicyReasonCode> | undefined {
  const payTo = request.requirements.payTo.toLowerCase();
  const asset = request.requirements.asset.toLowerCase();
  if (policy.allowedPayTo.length > 0 && !policy.allowedPayTo.includes(payTo)) {
    return { reason: ReasonCode.payToNotAllowed, message: `payTo ${request.requirements.payTo} is not allowed by this facilitator` };
  }
  if (policy.amountMaxAtomic !== undefined && request.requirements.amountAtomic > policy.amountMaxAtomic) {
    return { reason: ReasonCode.amountAboveLimit, message: `amount ${request.requirements.amountAtomic} is above MAX_AMOUNT_ATOMIC ${policy.amountMaxAtomic}` };
  }
  if (!apiKey) return undefined;
  if (apiKey.allowedPayTo && !apiKey.allowedPayTo.includes(payTo)) {
    return { reason: ReasonCode.payToNotAllowed, message: `this API key may not settle to payTo ${request.requirements.payTo}` };
  }
  if (apiKey.allowedNetworks && !allowsChain(apiKey.allowedNetworks, request.chainId)) {
    return { reason: ReasonCode.networkNotAllowed, message: `this API key may not use network ${request.requirements.network}` };
  }
  if (apiKey.allowedAssets && !apiKey.allowedAssets.includes(asset)) {
    return { reason: ReasonCode.assetNotAllowed, message: `this API key may not use asset ${request.requirements.asset}` };
  }
  return undefined;
}

/**
 * Networks are compared by chain id: `keys create` stores CAIP-2, but rows written before it did
 * hold the operator's spelling ("base-sepolia"), and a v1 payment names the chain the v1 way.
 */
function allowsChain(allowedNetworks: string[], chainId: number | undefined): boolean {
  return chainId !== undefined && allowedNetworks.some((network) => chainIdFromAnyNetwork(network) === chainId);
}
