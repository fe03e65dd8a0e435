import type { Limits } from "../config.js";
import type { PayerKind } from "./payer-signature.js";

/** The operator's limits every check of a payment needs, at verify and at settle alike. */
export type PaymentLimits = Pick<Limits, "gasPerSettlementMax" | "gasPerDeployingSettlementMax" | "erc6492AllowedFactories" | "minAmountAtomic">;

/**
 * The most gas one settlement of this payer may take, which is also the gas every eth_call and
 * estimate about it is given: a payer's code (an ERC-1271 wallet, an EIP-7702 delegate, a 6492
 * factory) must not make the node run it up to the node's own cap on every request.
 */
export function settlementGasMax(payerKind: PayerKind | undefined, limits: Pick<PaymentLimits, "gasPerSettlementMax" | "gasPerDeployingSettlementMax">): bigint {
  return payerKind === "counterfactual" ? limits.gasPerDeployingSettlementMax : limits.gasPerSettlementMax;
}
