import { encodeFunctionData, getAbiItem, toFunctionSelector, type Abi, type AbiFunction, type Hex } from "viem";
import type { ResolvedPayment } from "../exact-evm/resolve.js";
import { tokenSignature } from "../exact-evm/signature.js";
import type { ContractCall } from "../exact-evm/transfer-call.js";
import type { Eip2612Permit } from "../protocol/types.js";
import { exactPermit2ProxyAbi, uptoPermit2ProxyAbi } from "./abi.js";
import { proxyOf } from "./checks.js";

/**
 * The proxy call that settles a Permit2 payment, built as @x402/evm 2.27 builds it
 * (buildExactPermit2SettleArgs / buildUptoPermit2SettleArgs): the permit as signed, the owner, the
 * witness, the signature with any ERC-6492 wrapping removed; upto adds the amount to charge
 * (`settleAmountAtomic`). With `eip2612`, settleWithPermit: the proxy submits the payer's EIP-2612
 * permit for Permit2 first — settle uses it only when the allowance is short (a permit sets the
 * allowance to its value, so it would lower a larger approval); verify simulates it whenever the
 * payload carries one. The same bytes are simulated, estimated and signed.
 */
export function permit2SettlementCall(payment: ResolvedPayment, eip2612?: Eip2612Permit): ContractCall {
  const permit = payment.request.permit2!;
  const signature = tokenSignature(payment.request.signature);
  const permitStruct = { permitted: { token: permit.token, amount: permit.permittedAtomic }, nonce: permit.nonce, deadline: permit.deadlineSeconds };
  const to = proxyOf(payment.scheme);
  if (payment.scheme === "upto") {
    const witness = { to: permit.witness.to, facilitator: permit.witness.facilitator!, validAfter: permit.witness.validAfterSeconds };
    const args = [permitStruct, payment.settleAmountAtomic, permit.owner, witness, signature] as const;
    const data = eip2612
      ? encodeFunctionData({ abi: uptoPermit2ProxyAbi, functionName: "settleWithPermit", args: [eip2612Struct(eip2612), ...args] })
      : encodeFunctionData({ abi: uptoPermit2ProxyAbi, functionName: "settle", args });
    return { to, data };
  }
  const witness = { to: permit.witness.to, validAfter: permit.witness.validAfterSeconds };
  const args = [permitStruct, permit.owner, witness, signature] as const;
  const data = eip2612
    ? encodeFunctionData({ abi: exactPermit2ProxyAbi, functionName: "settleWithPermit", args: [eip2612Struct(eip2612), ...args] })
    : encodeFunctionData({ abi: exactPermit2ProxyAbi, functionName: "settle", args });
  return { to, data };
}

/** The proxy's EIP2612Permit struct from the extension's 65-byte r ‖ s ‖ v (v 0/1 taken as 27/28, as tokens expect). */
function eip2612Struct(permit: Eip2612Permit) {
  const hex = permit.signature.slice(2);
  const v = Number.parseInt(hex.slice(128, 130), 16);
  return {
    value: permit.amountAtomic,
    deadline: permit.deadlineSeconds,
    r: `0x${hex.slice(0, 64)}` as Hex,
    s: `0x${hex.slice(64, 128)}` as Hex,
    v: v < 27 ? v + 27 : v,
  };
}

/** The proxies' settleWithPermit selectors (exact, upto): a call that submits the payer's EIP-2612 permit. */
const settleWithPermitSelectors = new Set(
  [exactPermit2ProxyAbi, uptoPermit2ProxyAbi].map((abi) => toFunctionSelector(getAbiItem({ abi: abi as Abi, name: "settleWithPermit" }) as AbiFunction)),
);

/** Whether `data` calls a proxy's settleWithPermit (prepare chose to submit the payload's permit). */
export function submitsEip2612Permit(data: Hex): boolean {
  return settleWithPermitSelectors.has(data.slice(0, 10).toLowerCase() as Hex);
}
