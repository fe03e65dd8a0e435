import { size, type PublicClient } from "viem";
import { hasCode } from "../chain/code.js";
import { rethrowAsUnavailable } from "../chain/rpc-errors.js";
import type { PayerKind, SignatureVerdict } from "../exact-evm/payer-signature.js";
import type { PaymentLimits } from "../exact-evm/payment-limits.js";
import type { RecoverSigner } from "../exact-evm/recover-pool.js";
import type { ResolvedPayment } from "../exact-evm/resolve.js";
import { checkEcdsaSignature, tokenSignature } from "../exact-evm/signature.js";
import { erc1271Accepts } from "../exact-evm/smart-wallet.js";
import { ReasonCode } from "../protocol/reason-codes.js";

/**
 * The owner signed this permit, judged as Permit2's SignatureVerification does (and 2.27's
 * verifyTypedDataSignature): a 65-byte signature recovered locally (libsecp256k1 through the
 * RecoverPool, no I/O) for an owner without code; ERC-1271 `isValidSignature` — one bounded
 * eth_call — for an owner with code, with no ECDSA fallback (Permit2 has none). An undeployed
 * ERC-6492 wallet cannot pay through Permit2 (it would need deploying first): refused.
 *
 * A recovered signer equal to the owner is taken as a plain key without asking for code: an
 * EIP-7702 delegated key (which Permit2 would ask through ERC-1271) fails the simulation that
 * follows, and prepare reads the payer's code before anything is sent. High-s is refused as for
 * EIP-3009: no honest wallet makes one, and the claim is keyed on the nonce anyway.
 */
export async function checkPermit2Signature(client: PublicClient, payment: ResolvedPayment, limits: PaymentLimits, recover: RecoverSigner): Promise<SignatureVerdict> {
  const { request, digest } = payment;
  const owner = request.permit2!.owner;
  if (size(request.signature) === 65) {
    const ecdsa = await checkEcdsaSignature(digest, request.signature, recover);
    if (ecdsa.ok && ecdsa.signer === owner) return { ok: true, payerKind: "eoa" };
  }
  const ownerHasCode = await hasCode(client, owner).catch(rethrowAsUnavailable("reading the payer's code"));
  if (ownerHasCode && (await erc1271Accepts(client, owner, digest, tokenSignature(request.signature), limits.gasPerSettlementMax))) {
    return { ok: true, payerKind: "contract" satisfies PayerKind };
  }
  return {
    ok: false,
    rejection: {
      reason: ReasonCode.permit2InvalidSignature,
      message: ownerHasCode
        ? `smart wallet ${owner} does not accept this Permit2 signature (ERC-1271)`
        : `the Permit2 signature was not made by permit2Authorization.from ${owner} (65-byte ECDSA over Permit2's EIP-712 domain)`,
    },
  };
}
