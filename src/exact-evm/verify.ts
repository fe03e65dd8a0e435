import type { Address } from "viem";
import type { ChainRegistry } from "../chain/registry.js";
import { nowSeconds, type Clock } from "../clock.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { PaymentRequest, Rejection } from "../protocol/types.js";
import { readChainState, readTokenDomain, type ChainState } from "./chain-state.js";
import { readVerifyChainState } from "./verify-chain-state.js";
import { checkAuthorizationTerms, checkBinding, checkValidityWindow } from "./checks.js";
import { checkPayerSignature } from "./payer-signature.js";
import { checkAssetDeployed } from "./asset-code.js";
import { isRejection, resolvePayment, type ResolvedPayment } from "./resolve.js";
import { reasonForRevert } from "./revert-reasons.js";
import type { PaymentLimits } from "./payment-limits.js";
import type { RecoverSigner } from "./recover-pool.js";
import type { Permit2Contracts } from "../permit2/presence.js";

export interface VerifyContext {
  chains: ChainRegistry;
  clock: Clock;
  /** The facilitator address the simulation runs from (the settlement's sender). */
  simulationAccount: Address;
  /** Every signer key's address: an upto permit must name one of them as its facilitator. */
  signerAddresses: readonly Address[];
  /** Whether Permit2 and the x402 proxies have code, per chain (Permit2 payments only). */
  permit2Contracts: Permit2Contracts;
  limits: PaymentLimits;
  /** Recovers 65-byte signatures' signers (the services' RecoverPool). */
  recoverSigner: RecoverSigner;
  /** Sanctions screening of payer and payTo (src/screening/): a rejection when either is sanctioned. */
  screen?: (payment: ResolvedPayment) => Promise<Rejection | undefined>;
  /** True when Postgres already holds a live claim on this authorization. */
  isClaimed?: (payment: ResolvedPayment) => Promise<boolean>;
}

export interface VerifyOptions {
  simulate: boolean;
}

export type VerifyResult =
  | { valid: true; payment: ResolvedPayment; chainState?: ChainState }
  | { valid: false; rejection: Rejection; payment?: ResolvedPayment };

/**
 * The checks of ARCHITECTURE.md §1.1, cheapest first: configuration, binding, terms and window (pure),
 * then the signature (local for ECDSA), the asset's code (asked once), then one chain round trip (a
 * Multicall3 eth_call, or the per-block cache of verify-chain-state.ts), one Postgres query and the
 * sanctions screening in parallel; a sanctioned payer or payTo outranks whatever the chain said.
 */
export async function verifyExactEvm(request: PaymentRequest, context: VerifyContext, options: VerifyOptions): Promise<VerifyResult> {
  const resolved = resolvePayment(request, (chainId) => context.chains.get(chainId)?.config);
  if (isRejection(resolved)) return { valid: false, rejection: resolved };
  const pure = checkBinding(request) ?? checkAuthorizationTerms(request, context.limits.minAmountAtomic) ?? checkValidityWindow(request, nowSeconds(context.clock));
  if (pure) return { valid: false, rejection: pure, payment: resolved };

  const client = context.chains.get(resolved.network.chainId)!.publicClient;
  const signature = await checkPayerSignature(client, resolved, context.limits, context.recoverSigner);
  if (!signature.ok) return { valid: false, rejection: signature.rejection, payment: resolved };
  // Asked once per asset and process (cached): the hot path gains no round trip.
  const assetRejection = await checkAssetDeployed(client, resolved);
  if (assetRejection) return { valid: false, rejection: assetRejection, payment: resolved };
  const payment: ResolvedPayment = { ...resolved, payerKind: signature.payerKind };

  const readOptions = { simulate: options.simulate, simulationAccount: context.simulationAccount, limits: context.limits, clock: context.clock };
  const [read, claimed, sanctioned] = await Promise.all([
    options.simulate ? readVerifyChainState(client, payment, readOptions) : readChainState(client, payment, readOptions).then((state) => ({ state, cached: false })),
    context.isClaimed ? context.isClaimed(payment) : Promise.resolve(false),
    context.screen?.(payment),
  ]);
  if (sanctioned) return { valid: false, rejection: sanctioned, payment };
  // Claimed here: the chain may have moved since a cached read (our own settlement, mined since), and
  // "used on chain" outranks "being settled" in the answer. A fresh read keeps the answer as it was.
  const chainState = claimed && read.cached ? await readChainState(client, payment, readOptions) : read.state;
  const rejection = await judgeChainState(payment, chainState, claimed, client);
  if (rejection) return { valid: false, rejection, payment };
  return { valid: true, payment, chainState };
}

async function judgeChainState(
  payment: ResolvedPayment,
  state: ChainState,
  claimed: boolean,
  client: Parameters<typeof readTokenDomain>[0],
): Promise<Rejection | undefined> {
  const { authorization } = payment.request;
  if (state.authorizationUsed === undefined) {
    return { reason: ReasonCode.eip3009NotSupported, message: `token ${payment.asset.address} has no authorizationState: not EIP-3009` };
  }
  if (state.authorizationUsed) return { reason: ReasonCode.nonceAlreadyUsed, message: `nonce ${authorization.nonce} is already used on chain` };
  if (claimed) return { reason: ReasonCode.nonceAlreadyUsed, message: `nonce ${authorization.nonce} is already being settled` };
  if (state.balanceAtomic < authorization.valueAtomic) {
    return {
      reason: ReasonCode.insufficientBalance,
      message: `payer balance ${state.balanceAtomic} is below the authorized value ${authorization.valueAtomic}`,
    };
  }
  if (!state.simulation || state.simulation.ok) return undefined;
  return diagnoseSimulationFailure(payment, state.simulation.revertText, client);
}

/** A failed simulation after the cheap checks passed: most often the configured domain is wrong. */
async function diagnoseSimulationFailure(
  payment: ResolvedPayment,
  revertText: string,
  client: Parameters<typeof readTokenDomain>[0],
): Promise<Rejection> {
  const onChain = await readTokenDomain(client, payment.asset.address);
  if (onChain.name !== undefined && onChain.name !== payment.domain.name) {
    return { reason: ReasonCode.tokenNameMismatch, message: `token name() is "${onChain.name}" but the EIP-712 domain used "${payment.domain.name}"` };
  }
  if (onChain.version !== undefined && onChain.version !== payment.domain.version) {
    return {
      reason: ReasonCode.tokenVersionMismatch,
      message: `token version() is "${onChain.version}" but the EIP-712 domain used "${payment.domain.version}"`,
    };
  }
  return { reason: reasonForRevert(revertText, ReasonCode.simulationFailed), message: `simulation reverted: ${revertText}` };
}
