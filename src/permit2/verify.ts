import type { Address } from "viem";
import { nowSeconds } from "../clock.js";
import { checkAssetDeployed } from "../exact-evm/asset-code.js";
import { isRejection, resolvePayment, type ResolvedPayment } from "../exact-evm/resolve.js";
import type { VerifyContext, VerifyOptions, VerifyResult } from "../exact-evm/verify.js";
import type { PaymentRequest } from "../protocol/types.js";
import { judgePermit2State, readPermit2ChainState } from "./chain-state.js";
import { checkPermit2ForVerify } from "./checks.js";
import { checkPermit2Signature } from "./signature.js";

/**
 * /verify of a Permit2 payment (`exact` with a permit2Authorization payload, and `upto`), cheapest
 * first like the EIP-3009 path: binding, parties, window and amounts (pure, 2.27's order and codes), Permit2
 * and the proxy deployed (asked once per chain), the asset's code, the signature (local for a
 * plain key, ERC-1271 for a contract owner), then one chain round trip — the nonce's bit, balance,
 * allowance to Permit2, a simulation of the proxy call from the account that would send it — with
 * the Postgres claim lookup and the sanctions screening beside it.
 */
export async function verifyPermit2(request: PaymentRequest, context: VerifyContext, options: VerifyOptions): Promise<VerifyResult> {
  const resolved = resolvePayment(request, (chainId) => context.chains.get(chainId)?.config);
  if (isRejection(resolved)) return { valid: false, rejection: resolved };
  const pure = checkPermit2ForVerify(resolved, nowSeconds(context.clock), { signerAddresses: context.signerAddresses, minAmountAtomic: context.limits.minAmountAtomic });
  if (pure) return { valid: false, rejection: pure, payment: resolved };

  const client = context.chains.get(resolved.network.chainId)!.publicClient;
  const absent = await context.permit2Contracts.rejectionIfAbsent(resolved.network.chainId, client, resolved.scheme);
  if (absent) return { valid: false, rejection: absent, payment: resolved };
  const assetRejection = await checkAssetDeployed(client, resolved);
  if (assetRejection) return { valid: false, rejection: assetRejection, payment: resolved };
  const signature = await checkPermit2Signature(client, resolved, context.limits, context.recoverSigner);
  if (!signature.ok) return { valid: false, rejection: signature.rejection, payment: resolved };
  const payment: ResolvedPayment = { ...resolved, payerKind: signature.payerKind };

  const [state, claimed, sanctioned] = await Promise.all([
    readPermit2ChainState(client, payment, options.simulate ? { simulate: { from: simulationSender(payment, context), gasMax: context.limits.gasPerSettlementMax } } : {}),
    context.isClaimed ? context.isClaimed(payment) : Promise.resolve(false),
    context.screen?.(payment),
  ]);
  if (sanctioned) return { valid: false, rejection: sanctioned, payment };
  const rejection = judgePermit2State(payment, state, claimed);
  if (rejection) return { valid: false, rejection, payment };
  return { valid: true, payment };
}

/** Who the settlement would come from: upto's proxy takes calls from the witness's facilitator only. */
function simulationSender(payment: ResolvedPayment, context: VerifyContext): Address {
  return payment.scheme === "upto" ? payment.request.permit2!.witness.facilitator! : context.simulationAccount;
}
