import type { Address, PublicClient } from "viem";
import { decodeRevertData, rethrowAsUnavailable, revertReason, throwIfTransportFailure } from "../chain/rpc-errors.js";
import { eip3009Abi } from "./abi.js";
import type { ResolvedPayment } from "./resolve.js";
import { decodeAggregate3, encodeAggregate3, multicall3Address } from "./multicall3.js";
import { erc6492Deployment } from "./signature.js";
import { settlementCall, transferWithAuthorizationCall } from "./transfer-call.js";
import { settlementGasMax, type PaymentLimits } from "./payment-limits.js";

export interface ChainReadOptions {
  simulate: boolean;
  simulationAccount: Address;
  /** Every simulation gets the settlement's gas cap: the payer's code must not run to the node's cap. */
  limits: Pick<PaymentLimits, "gasPerSettlementMax" | "gasPerDeployingSettlementMax">;
}

export type SimulationResult = { ok: true } | { ok: false; revertText: string };

export interface ChainState {
  balanceAtomic: bigint;
  /** undefined when the token has no authorizationState (not EIP-3009). */
  authorizationUsed: boolean | undefined;
  simulation: SimulationResult | undefined;
}

/**
 * Everything verify asks the chain, in one round trip: the transport batches these concurrent
 * calls into one JSON-RPC request. The simulation runs from the facilitator's own address, as
 * the settlement would.
 */
export async function readChainState(client: PublicClient, payment: ResolvedPayment, options: ChainReadOptions): Promise<ChainState> {
  const { authorization } = payment.request;
  const token = payment.asset.address;
  const [balanceAtomic, authorizationUsed, simulation] = await Promise.all([
    client.readContract({ address: token, abi: eip3009Abi, functionName: "balanceOf", args: [authorization.from] }).catch(rethrowAsUnavailable("reading the payer's balance")),
    client
      .readContract({ address: token, abi: eip3009Abi, functionName: "authorizationState", args: [authorization.from, authorization.nonce] })
      .catch((error: unknown) => {
        throwIfTransportFailure(error, "reading authorizationState");
        return undefined;
      }),
    options.simulate ? simulateTransfer(client, payment, options.simulationAccount, settlementGasMax(payment.payerKind, options.limits)) : Promise.resolve(undefined),
  ]);
  return { balanceAtomic, authorizationUsed, simulation };
}

export async function simulateTransfer(client: PublicClient, payment: ResolvedPayment, account: Address, gasMax: bigint): Promise<SimulationResult> {
  const { authorization, signature } = payment.request;
  const payerKind = payment.payerKind ?? "eoa";
  if (payerKind === "counterfactual") return simulateDeployAndTransfer(client, payment, account, gasMax);
  const call = settlementCall(payment.asset.address, authorization, signature, payerKind);
  try {
    await client.call({ ...call, account, gas: gasMax });
    return { ok: true };
  } catch (error) {
    throwIfTransportFailure(error, "simulating transferWithAuthorization");
    return { ok: false, revertText: revertReason(error) ?? "reverted" };
  }
}

/**
 * A counterfactual wallet: deploy and transfer in one eth_call through Multicall3, with the
 * transfer allowed to fail so its own revert reason comes back for the diagnosis.
 */
async function simulateDeployAndTransfer(client: PublicClient, payment: ResolvedPayment, account: Address, gasMax: bigint): Promise<SimulationResult> {
  const deployment = erc6492Deployment(payment.request.signature)!;
  const transfer = transferWithAuthorizationCall(payment.asset.address, payment.request.authorization, payment.request.signature, "counterfactual");
  const data = encodeAggregate3([
    { target: deployment.factory, allowFailure: true, callData: deployment.factoryData },
    { target: transfer.to, allowFailure: true, callData: transfer.data },
  ]);
  try {
    const result = await client.call({ account, to: multicall3Address, data, gas: gasMax });
    const [, transferResult] = decodeAggregate3(result.data ?? "0x");
    if (transferResult?.success) return { ok: true };
    return { ok: false, revertText: transferResult ? decodeRevertData(transferResult.returnData) : "no result from Multicall3" };
  } catch (error) {
    throwIfTransportFailure(error, "simulating a smart-wallet deployment and transfer");
    return { ok: false, revertText: revertReason(error) ?? "Multicall3 reverted (is it deployed on this chain?)" };
  }
}

/** On-chain EIP-712 name and version, read only to explain a failed simulation. */
export async function readTokenDomain(client: PublicClient, token: Address): Promise<{ name?: string; version?: string }> {
  const [name, version] = await Promise.all([
    client.readContract({ address: token, abi: eip3009Abi, functionName: "name" }).catch((error: unknown) => {
      throwIfTransportFailure(error, "reading the token name");
      return undefined;
    }),
    client.readContract({ address: token, abi: eip3009Abi, functionName: "version" }).catch((error: unknown) => {
      throwIfTransportFailure(error, "reading the token version");
      return undefined;
    }),
  ]);
  return { name, version };
}
