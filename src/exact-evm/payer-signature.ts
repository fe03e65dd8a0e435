import type { PublicClient } from "viem";
import { rethrowIfUnavailable } from "../chain/rpc-errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Rejection } from "../protocol/types.js";
import type { ResolvedPayment } from "./resolve.js";
import { checkEcdsaSignature, erc6492Deployment, signatureKind } from "./signature.js";
import { transferAuthorizationTypedData } from "./typed-data.js";

/**
 * Who signed, which decides how the payment is settled:
 * - "eoa": a plain key; the (v, r, s) overload.
 * - "contract": a deployed ERC-1271 wallet; the `bytes` overload (every FiatToken version that has it
 *   routes it through ERC-1271, while the (v, r, s) overload of FiatToken < 2.2 is ECDSA-only).
 * - "counterfactual": an undeployed wallet with an ERC-6492 deployment; deploy and transfer in one tx.
 */
export type PayerKind = "eoa" | "contract" | "counterfactual";

export type SignatureVerdict = { ok: true; payerKind: PayerKind } | { ok: false; rejection: Rejection };

/**
 * The payer signed this authorization. A 65-byte signature is checked locally (no I/O on the
 * common path); smart wallets (ERC-1271, ERC-6492) are asked on chain through viem.
 */
export async function checkPayerSignature(client: PublicClient, payment: ResolvedPayment): Promise<SignatureVerdict> {
  const { request, digest } = payment;
  const from = request.authorization.from;
  if (signatureKind(request.signature) === "ecdsa") {
    const ecdsa = await checkEcdsaSignature(digest, request.signature);
    if (!ecdsa.ok) return reject(ReasonCode.invalidSignature, ecdsa.message);
    if (ecdsa.signer === from) return { ok: true, payerKind: "eoa" };
    // A contract wallet may accept its owner's 65-byte signature through ERC-1271.
    if ((await hasCode(client, payment)) && (await onChainSignatureValid(client, payment))) return { ok: true, payerKind: "contract" };
    return reject(ReasonCode.invalidSignature, `signature was made by ${ecdsa.signer}, not by authorization.from ${from}`);
  }
  const deployed = await hasCode(client, payment);
  const deployment = erc6492Deployment(request.signature);
  if (!deployed && !deployment) {
    return reject(ReasonCode.undeployedSmartWallet, `${from} has no code and the signature carries no ERC-6492 deployment`);
  }
  if (await onChainSignatureValid(client, payment)) return { ok: true, payerKind: deployed ? "contract" : "counterfactual" };
  return reject(ReasonCode.invalidSignature, `smart wallet ${from} does not accept this signature (ERC-1271/ERC-6492)`);
}

function reject(reason: Rejection["reason"], message: string): SignatureVerdict {
  return { ok: false, rejection: { reason, message } };
}

async function onChainSignatureValid(client: PublicClient, payment: ResolvedPayment): Promise<boolean> {
  try {
    // viem: ERC-1271 for deployed wallets, ERC-6492 (deployless validator) for counterfactual ones.
    return await client.verifyTypedData({
      address: payment.request.authorization.from,
      signature: payment.request.signature,
      ...transferAuthorizationTypedData(payment.domain, payment.request.authorization),
    });
  } catch (error) {
    rethrowIfUnavailable(error, "verifying a smart-wallet signature");
    return false;
  }
}

async function hasCode(client: PublicClient, payment: ResolvedPayment): Promise<boolean> {
  try {
    const code = await client.getCode({ address: payment.request.authorization.from });
    return code !== undefined && code !== "0x";
  } catch (error) {
    throw rethrowIfUnavailable(error, "reading the payer's code");
  }
}
