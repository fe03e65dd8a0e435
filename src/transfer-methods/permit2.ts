import type { PublicClient } from "viem";
import { rethrowAsUnavailable } from "../chain/rpc-errors.js";
import { permit2Address } from "../contracts/permit2.js";
import { checkAssetDeployed } from "../exact-evm/asset-code.js";
import { isZeroCharge, type ResolvedPayment } from "../exact-evm/resolve.js";
import type { ContractCall } from "../exact-evm/transfer-call.js";
import { permit2TokenAbi } from "../permit2/abi.js";
import { eip2612PermitOf, explainPermit2Failure, readPermit2ChainState } from "../permit2/chain-state.js";
import { checkPermit2ForSettle, checkPermit2ValidityAtSigning, checkPermit2Window } from "../permit2/checks.js";
import { permit2Revert, reasonForPermit2Revert } from "../permit2/revert-reasons.js";
import { permit2SettlementCall, submitsEip2612Permit } from "../permit2/settle-call.js";
import { checkPermit2Signature } from "../permit2/signature.js";
import { verifyPermit2 } from "../permit2/verify.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Rejection } from "../protocol/types.js";
import { permit2Verdict } from "../settlement/permit2-verdict.js";
import type { TransferMethodDriver } from "./driver.js";

/**
 * Permit2: a PermitWitnessTransferFrom signed for one of x402's two proxies (`exact`, `upto`),
 * settled by calling the proxy; the nonce is Permit2's. Permit2 and the proxy must have code on the
 * chain (a call to an empty address would "succeed" and pay nobody). Never batched: upto's proxy
 * takes calls from the witness's facilitator only (in a batch BatchSettler would be msg.sender),
 * and an exact one's verdict reads the proxy's own transaction.
 */
export const permit2Driver: TransferMethodDriver = {
  name: "permit2",
  nonceContract: () => permit2Address,
  verify: verifyPermit2,
  async checkForSettle(client, payment, context) {
    const pure = checkPermit2ForSettle(payment, { signerAddresses: context.signerAddresses, minAmountAtomic: context.limits.minAmountAtomic });
    if (pure) return { ok: false, rejection: pure };
    const absent = await context.permit2Contracts.rejectionIfAbsent(payment.network.chainId, client, payment.scheme);
    if (absent) return { ok: false, rejection: absent };
    const assetRejection = await checkAssetDeployed(client, payment);
    if (assetRejection) return { ok: false, rejection: assetRejection };
    return checkPermit2Signature(client, payment, context.limits, context.recoverSigner);
  },
  checkWindow: checkPermit2Window,
  checkValidityAtSigning: (request, nowSeconds, call) => checkPermit2ValidityAtSigning(request, nowSeconds, { submitsEip2612Permit: submitsEip2612Permit(call.data) }),
  async readFunds(reads, payment) {
    const owner = payment.request.permit2!.owner;
    const token = payment.asset.address;
    const [balanceAtomic, permit2AllowanceAtomic] = await Promise.all([
      reads.tokenBalance(token, owner).catch(rethrowAsUnavailable("reading the payer's balance")),
      reads.permit2Allowance(token, owner).catch(rethrowAsUnavailable("reading the payer's allowance to Permit2")),
    ]);
    return { balanceAtomic, permit2AllowanceAtomic };
  },
  fundsShortfall(funds, payment, reserved) {
    const amountAtomic = payment.settleAmountAtomic;
    const others = `its ${reserved.count} unfinished settlement(s)`;
    if (funds.balanceAtomic < reserved.valueAtomic + amountAtomic) {
      return {
        reason: ReasonCode.permit2InsufficientBalance,
        message: `payer balance ${funds.balanceAtomic} does not cover ${others} (${reserved.valueAtomic}) and this one (${amountAtomic})`,
      };
    }
    // An EIP-2612 permit in the payload sets the allowance to its own value when it is used — but it
    // is used only when the allowance is short, and it would overwrite what other Permit2 settlements
    // of the owner count on: so it stands in for the allowance only when no other is reserved.
    const permitCovers = eip2612PermitOf(payment) !== undefined && reserved.permit2ValueAtomic === 0n;
    const allowanceAtomic = funds.permit2AllowanceAtomic ?? 0n;
    if (!permitCovers && allowanceAtomic < reserved.permit2ValueAtomic + amountAtomic) {
      return {
        reason: ReasonCode.permit2AllowanceRequired,
        message: `the payer's allowance to Permit2 (${permit2Address}) is ${allowanceAtomic}: it does not cover ${others} through Permit2 (${reserved.permit2ValueAtomic}) and this one (${amountAtomic})`,
      };
    }
    return undefined;
  },

  /**
   * The permits of one owner's concurrent payments share the token's nonce, so only one can be
   * used, and the others' transactions would revert at our cost (their estimates at `latest` pass
   * while the first is pending). While one such row is unfinished on any instance, another's claim
   * throws PermitLaneTakenError (429 payer_busy, nothing claimed); once it is final, prepare refuses
   * a permit whose nonce is used, without gas (settlementCallOf). The lane is taken whether or not
   * prepare ends up using the permit (that is decided after the claim, from the allowance): a
   * conservative refusal, retried once the row is final. A zero charge sends nothing: no lane.
   */
  takesPermitLane: (payment) => eip2612PermitOf(payment) !== undefined && !isZeroCharge(payment),
  batchable: false,
  settlementCall: settlementCallOf,
  async explainFailedEstimate(client, payment) {
    const state = await readPermit2ChainState(client, payment);
    const required = payment.settleAmountAtomic;
    if (!state.nonceUsed && state.balanceAtomic >= required && state.allowanceAtomic >= required) return undefined;
    return explainPermit2Failure(payment, state, { text: "reverted" });
  },
  rejectionOfRevert: ({ error }) => {
    const revert = permit2Revert(error);
    return { reason: reasonForPermit2Revert(revert, ReasonCode.permit2SimulationFailed), message: `simulation reverted: ${revert.text}` };
  },
  verdict: permit2Verdict,
};

/**
 * The x402 proxy's settle — settleWithPermit when the payload carries an EIP-2612 permit and the
 * payer's allowance to Permit2 is short (a permit sets the allowance to its value, so it is never
 * submitted over a larger approval).
 */
async function settlementCallOf(client: PublicClient, payment: ResolvedPayment): Promise<ContractCall | Rejection> {
  const eip2612 = eip2612PermitOf(payment);
  if (!eip2612) return permit2SettlementCall(payment);
  const allowance = await client
    .readContract({ address: payment.asset.address, abi: permit2TokenAbi, functionName: "allowance", args: [payment.request.permit2!.owner, permit2Address] })
    .catch(rethrowAsUnavailable("reading the payer's allowance to Permit2"));
  if (allowance >= payment.settleAmountAtomic) return permit2SettlementCall(payment);
  // A payer's concurrent payments all carry a permit signed with the token's current nonce (the
  // 2.27 client reads nonces(owner)): once one is used, the others' permits fail in the proxy's
  // try/catch and their transferFrom reverts on chain, at our cost (an estimate at `latest` does
  // not see the pending one). A permit whose nonce is not the token's current one is refused here,
  // nothing sent, with the code 2.27's diagnosis gives the same state (allowance short).
  const tokenNonce = await client
    .readContract({ address: payment.asset.address, abi: permit2TokenAbi, functionName: "nonces", args: [payment.request.permit2!.owner] })
    .catch(rethrowAsUnavailable("reading the payer's EIP-2612 nonce"));
  if (tokenNonce !== eip2612.nonce) {
    return {
      reason: ReasonCode.permit2AllowanceRequired,
      message: `the payer's allowance to Permit2 (${permit2Address}) is ${allowance}, below ${payment.settleAmountAtomic}, and the EIP-2612 permit in the payload cannot set it: its nonce ${eip2612.nonce} is not the token's current nonce ${tokenNonce} (used by another permit); approve Permit2 or sign a new permit`,
    };
  }
  return permit2SettlementCall(payment, eip2612);
}
