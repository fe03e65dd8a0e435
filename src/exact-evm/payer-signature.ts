import type { PublicClient } from "viem";
import { rethrowIfUnavailable } from "../chain/rpc-errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Rejection } from "../protocol/types.js";
import type { ResolvedPayment } from "./resolve.js";
import { checkEcdsaSignature, erc6492Deployment, signatureKind } from "./signature.js";
import { transferAuthorizationTypedData } from "./typed-data.js";

/**
 * The payer signed this authorization. A 65-byte signature is checked locally (no I/O on the
 * common path); smart wallets (ERC-1271, ERC-6492) are asked on chain through viem.
 */
export async function checkPayerSignature(client: PublicClient, payment: ResolvedPayment): Promise<Rejection | undefined> {
  const { request, digest } = payment;
  const from = request.authorization.from;
  if (signatureKind(request.signature) === "ecdsa") {
    const ecdsa = await checkEcdsaSignature(digest, request.signature);
    if (!ecdsa.ok) return { reason: ReasonCode.invalidSignature, message: ecdsa.message };
    if (ecdsa.signer === from) return undefined;
    // A contract wallet may accept its owner's 65-byte signature through ERC-1271 (USDC v2.2 does this).
    if (await hasCode(client, payment) && (await onChainSignatureValid(client, payment))) return undefined;
    return { reason: ReasonCode.invalidSignature, message: `signature was made by ${ecdsa.signer}, not by authorization.from ${from}` };
  }
  if (await onChainSignatureValid(client, payment)) return undefined;
  if (!erc6492Deployment(request.signature) && !(await hasCode(client, payment))) {
    return { reason: ReasonCode.undeployedSmartWallet, message: `${from} has no code and the signature carries no ERC-6492 deployment` };
  }
  return { reason: ReasonCode.invalidSignature, message: `smart wallet ${from} does not accept this signature (ERC-1271/ERC-6492)` };
}

async function onChainSignatureValid(client: PublicClient, payment: ResolvedPayment): Promise<boolean> {
  try {
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
