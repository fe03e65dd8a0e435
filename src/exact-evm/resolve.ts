import type { AssetConfig, NetworkConfig } from "../config.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { PaymentRequest, Rejection, Scheme } from "../protocol/types.js";
import { permit2Digest } from "../permit2/typed-data.js";
import { authorizationDigest, type Eip712TokenDomain } from "./typed-data.js";
import type { Hex } from "viem";
import type { PayerKind } from "./payer-signature.js";

/** The configuration a payment runs against, and the EIP-712 identity of what the payer signed. */
export interface ResolvedPayment {
  request: PaymentRequest;
  network: NetworkConfig;
  asset: AssetConfig;
  /** The token's EIP-712 domain (EIP-3009's, and EIP-2612's for the eip2612GasSponsoring extension). */
  domain: Eip712TokenDomain;
  /** What the payer signed: the EIP-3009 authorization's digest, or the Permit2 permit's. */
  digest: Hex;
  scheme: Scheme;
  /**
   * What this request moves to payTo: the authorized value (exact), or the amount the resource
   * server charges (upto: /settle's paymentRequirements.amount, at most the signed cap).
   */
  settleAmountAtomic: bigint;
  /** Known once the signature is checked; decides the settlement call (see transfer-call.ts). */
  payerKind?: PayerKind;
}

/**
 * An upto charge of 0: the resource server charges nothing, so nothing is sent (@x402/evm 2.27:
 * success, no transaction) and no lane or minimum applies. Not to be confused with engine.ts's
 * isRecordedZeroCharge, which reads a settlement row.
 */
export function isZeroCharge(payment: Pick<ResolvedPayment, "scheme" | "settleAmountAtomic">): boolean {
  return payment.scheme === "upto" && payment.settleAmountAtomic === 0n;
}

export type NetworkLookup = (chainId: number) => NetworkConfig | undefined;

/**
 * Finds the network and asset, and fixes the EIP-712 domain. The caller's extra.name/version must
 * agree with the configured token (the most common support issue is a wrong name or version, so
 * say which); when the caller leaves them out, the configured values are used.
 */
export function resolvePayment(request: PaymentRequest, lookup: NetworkLookup): ResolvedPayment | Rejection {
  const network = request.chainId === undefined ? undefined : lookup(request.chainId);
  if (!network) return { reason: ReasonCode.invalidNetwork, message: `network "${request.requirements.network}" is not served` };
  const asset = network.assets.find((candidate) => candidate.address === request.requirements.asset);
  if (!asset) {
    return {
      reason: ReasonCode.invalidPaymentRequirements,
      message: `asset ${request.requirements.asset} is not accepted on ${network.network}; accepted: ${network.assets.map((a) => a.address).join(", ")}`,
    };
  }
  const scheme: Scheme = request.requirements.scheme === "upto" ? "upto" : "exact";
  const domain = domainOf(asset, network.chainId);
  if (request.permit2) {
    // Permit2 signs its own domain; the token's name and version matter only to an EIP-2612 permit,
    // which the token itself judges (2.27 reads neither for Permit2).
    const settleAmountAtomic = scheme === "upto" ? request.requirements.amountAtomic : request.permit2.permittedAtomic;
    return { request, network, asset, domain, digest: permit2Digest(network.chainId, request.permit2, scheme), scheme, settleAmountAtomic };
  }
  const { extraName, extraVersion } = request.requirements;
  if (extraName !== undefined && extraName !== asset.name) {
    return { reason: ReasonCode.tokenNameMismatch, message: `extra.name "${extraName}" is not the token's EIP-712 name "${asset.name}"` };
  }
  if (extraVersion !== undefined && extraVersion !== asset.version) {
    return { reason: ReasonCode.tokenVersionMismatch, message: `extra.version "${extraVersion}" is not the token's EIP-712 version "${asset.version}"` };
  }
  return { request, network, asset, domain, digest: authorizationDigest(domain, request.authorization), scheme, settleAmountAtomic: request.authorization.valueAtomic };
}

/** One frozen domain object per configured asset and chain (typed-data.ts keys its caches by it). */
const domains = new WeakMap<AssetConfig, Eip712TokenDomain>();

function domainOf(asset: AssetConfig, chainId: number): Eip712TokenDomain {
  const known = domains.get(asset);
  if (known && known.chainId === chainId && known.name === asset.name && known.version === asset.version && known.verifyingContract === asset.address) return known;
  const domain: Eip712TokenDomain = Object.freeze({ name: asset.name, version: asset.version, chainId, verifyingContract: asset.address });
  domains.set(asset, domain);
  return domain;
}

export function isRejection(value: ResolvedPayment | Rejection): value is Rejection {
  return "reason" in value;
}
