import { rethrowAsUnavailable } from "../chain/rpc-errors.js";
import { readChainState } from "../exact-evm/chain-state.js";
import { checkAuthorizationTerms, checkBinding, checkValidityAtSigning, checkValidityWindow } from "../exact-evm/checks.js";
import { checkPayerSignature } from "../exact-evm/payer-signature.js";
import { checkAssetDeployed } from "../exact-evm/asset-code.js";
import { reasonForRevert } from "../exact-evm/revert-reasons.js";
import { settlementCall } from "../exact-evm/transfer-call.js";
import { verifyExactEvm } from "../exact-evm/verify.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import { eip3009Verdict } from "../settlement/eip3009-verdict.js";
import type { TransferMethodDriver } from "./driver.js";

/**
 * EIP-3009: the token's own transferWithAuthorization, which anyone may send (a counterfactual
 * wallet's is deployed first, transfer-call.ts); the nonce is the token's. Its settlements may share
 * a BatchSettler transaction and never carry an EIP-2612 permit.
 */
export const eip3009Driver: TransferMethodDriver = {
  name: "eip3009",
  nonceContract: (payment) => payment.asset.address,
  verify: verifyExactEvm,
  async checkForSettle(client, payment, context) {
    const { request } = payment;
    const pure = checkBinding(request) ?? checkAuthorizationTerms(request, context.limits.minAmountAtomic);
    if (pure) return { ok: false, rejection: pure };
    const signature = await checkPayerSignature(client, payment, context.limits, context.recoverSigner);
    if (!signature.ok) return signature;
    const assetRejection = await checkAssetDeployed(client, payment);
    if (assetRejection) return { ok: false, rejection: assetRejection };
    return signature;
  },
  checkWindow: checkValidityWindow,
  checkValidityAtSigning,
  async readFunds(reads, payment) {
    const balanceAtomic = await reads.tokenBalance(payment.asset.address, payment.request.authorization.from).catch(rethrowAsUnavailable("reading the payer's balance"));
    return { balanceAtomic };
  },
  fundsShortfall(funds, payment, reserved) {
    const { valueAtomic } = payment.request.authorization;
    if (funds.balanceAtomic >= reserved.valueAtomic + valueAtomic) return undefined;
    return {
      reason: ReasonCode.insufficientBalance,
      message: `payer balance ${funds.balanceAtomic} does not cover its ${reserved.count} unfinished settlement(s) (${reserved.valueAtomic}) and this one (${valueAtomic})`,
    };
  },

  takesPermitLane: () => false,
  batchable: true,
  settlementCall: (_client, payment) =>
    Promise.resolve(settlementCall(payment.asset.address, payment.request.authorization, payment.request.signature, payment.payerKind ?? "eoa")),
  async explainFailedEstimate(client, payment, signer, limits) {
    const { authorization } = payment.request;
    const state = await readChainState(client, payment, { simulate: false, simulationAccount: signer, limits });
    if (state.authorizationUsed) return { reason: ReasonCode.nonceAlreadyUsed, message: `nonce ${authorization.nonce} is already used on chain` };
    if (state.balanceAtomic < authorization.valueAtomic) {
      return { reason: ReasonCode.insufficientBalance, message: `payer balance ${state.balanceAtomic} is below the authorized value ${authorization.valueAtomic}` };
    }
    return undefined;
  },
  rejectionOfRevert: ({ revertText }) => ({ reason: reasonForRevert(revertText, ReasonCode.simulationFailed), message: `simulation reverted: ${revertText}` }),
  verdict: eip3009Verdict,
};
