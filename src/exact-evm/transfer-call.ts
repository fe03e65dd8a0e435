import { encodeFunctionData, type Address, type Hex } from "viem";
import type { Authorization } from "../protocol/types.js";
import { eip3009Abi } from "./abi.js";
import { encodeAggregate3, multicall3Address } from "./multicall3.js";
import type { PayerKind } from "./payer-signature.js";
import { erc6492Deployment, parseSignatureMemo, tokenSignature } from "./signature.js";
import { authorizationFields } from "./typed-data.js";

export interface ContractCall {
  to: Address;
  data: Hex;
}

/**
 * The transaction that settles a payment; the same bytes are simulated, estimated and signed, so
 * what was checked is what is sent (the estimate and the signature add the operator's builder-code
 * suffix, which no contract reads: settlement/prepare-sign-send.ts).
 * - eoa: `transferWithAuthorization(…, v, r, s)`, what every USDC deployment has;
 * - contract: the `bytes` overload (ERC-1271), ERC-6492 wrapping removed;
 * - counterfactual: Multicall3 `aggregate3([deploy wallet (may fail: already deployed), transfer])`,
 *   so the wallet is deployed only together with a payment that succeeds in the same transaction.
 */
export function settlementCall(token: Address, authorization: Authorization, signature: Hex, payerKind: PayerKind): ContractCall {
  const transfer = transferWithAuthorizationCall(token, authorization, signature, payerKind);
  const deployment = payerKind === "counterfactual" ? erc6492Deployment(signature) : undefined;
  if (!deployment) return transfer;
  return {
    to: multicall3Address,
    data: encodeAggregate3([
      { target: deployment.factory, allowFailure: true, callData: deployment.factoryData },
      { target: transfer.to, allowFailure: false, callData: transfer.data },
    ]),
  };
}

// One ABI item per overload: viem would otherwise match the arguments against both on every call.
const transferWithVrs = eip3009Abi.find((item) => item.type === "function" && item.name === "transferWithAuthorization" && item.inputs.length === 9) as Extract<
  (typeof eip3009Abi)[number],
  { name: "transferWithAuthorization"; inputs: { length: 9 } }
>;
const transferWithBytes = eip3009Abi.find((item) => item.type === "function" && item.name === "transferWithAuthorization" && item.inputs.length === 7) as Extract<
  (typeof eip3009Abi)[number],
  { name: "transferWithAuthorization"; inputs: { length: 7 } }
>;

/** The token call alone (no deployment). */
export function transferWithAuthorizationCall(token: Address, authorization: Authorization, signature: Hex, payerKind: PayerKind = "eoa"): ContractCall {
  const head = authorizationFields(authorization);
  if (payerKind === "eoa") {
    const { r, s, yParity } = parseSignatureMemo(signature);
    // USDC's ECRecover accepts only v = 27 | 28; a 0/1 v from some wallets is normalised here.
    const data = encodeFunctionData({ abi: [transferWithVrs], functionName: "transferWithAuthorization", args: [...head, 27 + yParity, r, s] });
    return { to: token, data };
  }
  const data = encodeFunctionData({ abi: [transferWithBytes], functionName: "transferWithAuthorization", args: [...head, tokenSignature(signature)] });
  return { to: token, data };
}
