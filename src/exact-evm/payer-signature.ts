import type { PublicClient } from "viem";
import { hasCode } from "../chain/code.js";
import { rethrowAsUnavailable } from "../chain/rpc-errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Rejection } from "../protocol/types.js";
import type { PaymentLimits } from "./payment-limits.js";
import type { RecoverSigner } from "./recover-pool.js";
import type { ResolvedPayment } from "./resolve.js";
import { checkEcdsaSignature, erc6492Deployment, isMalformedErc6492, signatureKind, tokenSignature } from "./signature.js";
import { erc1271Accepts, probeCounterfactualWallet } from "./smart-wallet.js";

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
 * common path); smart wallets are asked on chain, always with a gas limit: ERC-1271 through one
 * bounded eth_call, ERC-6492 only through an allowlisted factory, simulated by a bounded probe.
 * `recover` recovers a 65-byte signature's signer (the services' RecoverPool).
 */
export async function checkPayerSignature(client: PublicClient, payment: ResolvedPayment, limits: PaymentLimits, recover: RecoverSigner): Promise<SignatureVerdict> {
  const { request, digest } = payment;
  const from = request.authorization.from;
  if (signatureKind(request.signature) === "ecdsa") {
    const ecdsa = await checkEcdsaSignature(digest, request.signature, recover);
    // Bytes that are no signature at all are told apart from a signature by someone else (2.27).
    if (!ecdsa.ok) return reject(ecdsa.failure === "unparseable" ? ReasonCode.failedToParseSignature : ReasonCode.invalidSignature, ecdsa.message);
    if (ecdsa.signer === from) return { ok: true, payerKind: "eoa" };
    // A contract wallet may accept its owner's 65-byte signature through ERC-1271.
    if ((await payerHasCode(client, payment)) && (await erc1271Accepts(client, from, digest, request.signature, limits.gasPerSettlementMax))) {
      return { ok: true, payerKind: "contract" };
    }
    return reject(ReasonCode.invalidSignature, `signature was made by ${ecdsa.signer}, not by authorization.from ${from}`);
  }
  if (isMalformedErc6492(request.signature)) {
    return reject(ReasonCode.failedToParseSignature, "signature ends with the ERC-6492 magic suffix but its (factory, calldata, signature) wrapper does not decode");
  }
  if (await payerHasCode(client, payment)) {
    if (await erc1271Accepts(client, from, digest, tokenSignature(request.signature), limits.gasPerSettlementMax)) return { ok: true, payerKind: "contract" };
    return reject(ReasonCode.invalidSignature, `smart wallet ${from} does not accept this signature (ERC-1271)`);
  }
  const deployment = erc6492Deployment(request.signature);
  if (!deployment) return reject(ReasonCode.undeployedSmartWallet, `${from} has no code and the signature carries no ERC-6492 deployment`);
  return checkCounterfactual(client, payment, deployment, limits);
}

/**
 * An undeployed wallet: its factory call is code the payer chose, run and paid for by us, so only
 * the operator's allowlisted factories are run at all (the 2026 reference does the same; none by
 * default), and only if, simulated with its own gas cap, it leaves code at `from` that accepts the
 * signature.
 */
async function checkCounterfactual(
  client: PublicClient,
  payment: ResolvedPayment,
  deployment: NonNullable<ReturnType<typeof erc6492Deployment>>,
  limits: PaymentLimits,
): Promise<SignatureVerdict> {
  const from = payment.request.authorization.from;
  if (!limits.erc6492AllowedFactories.includes(deployment.factory.toLowerCase())) {
    return reject(ReasonCode.eip6492FactoryNotAllowed, `ERC-6492 factory ${deployment.factory} is not allowed by this facilitator (ERC6492_ALLOWED_FACTORIES)`);
  }
  if (limits.gasPerDeployingSettlementMax === 0n) {
    return reject(ReasonCode.eip6492FactoryNotAllowed, "this facilitator does not deploy smart wallets (GAS_PER_DEPLOYING_SETTLEMENT_MAX=0)");
  }
  const probe = await probeCounterfactualWallet(
    client,
    { factory: deployment.factory, factoryData: deployment.factoryData, wallet: from, digest: payment.digest, innerSignature: deployment.innerSignature },
    limits.gasPerDeployingSettlementMax,
  );
  switch (probe.kind) {
    case "valid":
      return { ok: true, payerKind: "counterfactual" };
    case "signature-rejected":
      return reject(ReasonCode.invalidSignature, `the wallet deployed at ${from} does not accept this signature (ERC-1271)`);
    case "deployment-reverted":
      // A factory call that spent (nearly) all it was given ran out of gas: the operator's cap, not a bug of the wallet.
      if (probe.deployGasUsed >= limits.gasPerDeployingSettlementMax - limits.gasPerDeployingSettlementMax / 32n) {
        return reject(ReasonCode.gasCapExceeded, `the ERC-6492 deployment needs more than the cap of ${limits.gasPerDeployingSettlementMax} gas`);
      }
      return reject(ReasonCode.smartWalletDeploymentFailed, "the ERC-6492 factory call reverted");
    case "no-code-after-deployment":
      return reject(ReasonCode.smartWalletDeploymentFailed, `the ERC-6492 factory call left no code at ${from}`);
  }
}

function reject(reason: Rejection["reason"], message: string): SignatureVerdict {
  return { ok: false, rejection: { reason, message } };
}

async function payerHasCode(client: PublicClient, payment: ResolvedPayment): Promise<boolean> {
  return hasCode(client, payment.request.authorization.from).catch(rethrowAsUnavailable("reading the payer's code"));
}
