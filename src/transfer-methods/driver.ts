import type { Address, Hex, PublicClient } from "viem";
import type { SharedChainReads } from "../chain/shared-reads.js";
import type { Limits } from "../config.js";
import type { ReservedFunds } from "../store/settlements-repo.js";
import type { SignatureVerdict } from "../exact-evm/payer-signature.js";
import type { ResolvedPayment } from "../exact-evm/resolve.js";
import type { ContractCall } from "../exact-evm/transfer-call.js";
import type { VerifyContext, VerifyOptions, VerifyResult } from "../exact-evm/verify.js";
import type { PaymentRequest, Rejection, TransferMethod } from "../protocol/types.js";
import type { ReceiptVerdict } from "../settlement/chain-verdict.js";
import { eip3009Driver } from "./eip3009.js";
import { permit2Driver } from "./permit2.js";

/** What the payer holds for a settlement: its token balance, and (Permit2) its allowance to Permit2. */
export interface PayerFunds {
  balanceAtomic: bigint;
  /** Permit2 only; undefined for EIP-3009 (no allowance involved). */
  permit2AllowanceAtomic?: bigint;
}

/** What /settle's checks before Postgres need: the same facts as /verify's. */
export type SettleCheckContext = Pick<VerifyContext, "signerAddresses" | "permit2Contracts" | "limits" | "recoverSigner">;

/**
 * Everything that differs between the two ways a payer's tokens move — the token's own EIP-3009
 * transferWithAuthorization (eip3009.ts) and a Permit2 signature settled through x402's proxies
 * (permit2.ts, schemes `exact` and `upto`) — so that verify, the engine, prepare and the verdict
 * each read as one flow. One implementation per method, chosen by transferMethodDriver from the
 * request's (or the row's) transferMethod. What is the same for both stays with the callers.
 */
export interface TransferMethodDriver {
  readonly name: TransferMethod;
  /**
   * The contract whose namespace the payment's nonce lives in, which a settlement row is unique on:
   * the token for EIP-3009 (`authorizationState(from, nonce)`), Permit2 for Permit2 (one nonce
   * bitmap per owner across every token and spender).
   */
  nonceContract(payment: ResolvedPayment): Address;
  /** /verify, cheapest check first. */
  verify(request: PaymentRequest, context: VerifyContext, options: VerifyOptions): Promise<VerifyResult>;
  /**
   * Everything /settle checks before it looks at Postgres: binding and terms (pure), the signature
   * and the asset's code (for Permit2 also Permit2 and the proxy deployed). The payer's kind, or why not.
   * No window: /settle answers a payment it already holds from its row whatever the clock says (checkWindow).
   */
  checkForSettle(client: PublicClient, payment: ResolvedPayment, context: SettleCheckContext): Promise<SignatureVerdict>;
  /** The signature is valid now and stays valid long enough to be mined. */
  checkWindow(request: PaymentRequest, nowSeconds: bigint): Rejection | undefined;
  /**
   * Right before its transaction is signed (a settlement may have queued for its signer since the
   * claim): still valid long enough to be mined, with a smaller margin than checkWindow's.
   */
  checkValidityAtSigning(request: PaymentRequest, nowSeconds: bigint, call: ContractCall): Rejection | undefined;
  /**
   * Whether a settlement of this payment may submit the payer's EIP-2612 permit, and so takes its
   * (chain, token, owner) permit lane with the claim (settlements_eip2612_permit_lane, see permit2.ts).
   */
  takesPermitLane(payment: ResolvedPayment): boolean;
  /** Whether its settlements may share a BatchSettler transaction (the engine adds the conditions common to both). */
  readonly batchable: boolean;
  /** The call that settles the payment (without the data suffix), or why it cannot be sent. */
  settlementCall(client: PublicClient, payment: ResolvedPayment): Promise<ContractCall | Rejection>;
  /**
   * A failed estimate explained by the payer's own state (nonce used, balance or allowance short),
   * read only once the estimate failed; undefined when that state does not say why.
   */
  explainFailedEstimate(client: PublicClient, payment: ResolvedPayment, signer: Address, limits: Pick<Limits, "gasPerSettlementMax" | "gasPerDeployingSettlementMax">): Promise<Rejection | undefined>;
  /** A failed estimate that neither the payer's state, the signer's funds nor the gas cap explain: the revert, in the method's codes. */
  rejectionOfRevert(estimate: { error: unknown; revertText: string }): Rejection;
  /** The payer's funds this method spends (engine.reserveFunds reads them only when others are reserved). */
  readFunds(reads: SharedChainReads, payment: ResolvedPayment): Promise<PayerFunds>;
  /**
   * Whether `funds` still cover this payment on top of what the payer's other unfinished settlements
   * of the token have reserved — each of them passed its simulation alone at `latest`, where the
   * others are still pending. Pure (it runs under the payer's lock). Why not, in the method's codes.
   */
  fundsShortfall(funds: PayerFunds, payment: ResolvedPayment, reserved: ReservedFunds): Rejection | undefined;
  /** The chain's verdict on a row's receipt (paid by us or a front-runner, failed, or not known yet). */
  readonly verdict: ReceiptVerdict;
}

/** The driver of a transfer method; a row written before Permit2 existed says "eip3009" (the column's default). */
export function transferMethodDriver(method: TransferMethod): TransferMethodDriver {
  return method === "permit2" ? permit2Driver : eip3009Driver;
}

/**
 * The identity of the authorization a settlement row is unique on: the nonce in the namespace the
 * chain keeps it in (TransferMethodDriver.nonceContract).
 */
export function authorizationKeyOf(payment: ResolvedPayment): { chainId: number; nonceContract: Address; payer: Address; nonce: Hex } {
  return {
    chainId: payment.network.chainId,
    nonceContract: transferMethodDriver(payment.request.transferMethod).nonceContract(payment),
    payer: payment.request.authorization.from,
    nonce: payment.request.authorization.nonce,
  };
}
