import type { Address, PublicClient } from "viem";
import { revertReason, rethrowIfUnavailable } from "../chain/rpc-errors.js";
import { eip3009Abi } from "./abi.js";
import type { ResolvedPayment } from "./resolve.js";
import { transferWithAuthorizationCall } from "./transfer-call.js";

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
export async function readChainState(
  client: PublicClient,
  payment: ResolvedPayment,
  options: { simulate: boolean; simulationAccount: Address },
): Promise<ChainState> {
  const { authorization, signature } = payment.request;
  const token = payment.asset.address;
  const [balanceAtomic, authorizationUsed, simulation] = await Promise.all([
    client.readContract({ address: token, abi: eip3009Abi, functionName: "balanceOf", args: [authorization.from] }).catch((error: unknown) => {
      throw rethrowIfUnavailable(error, "reading the payer's balance");
    }),
    client
      .readContract({ address: token, abi: eip3009Abi, functionName: "authorizationState", args: [authorization.from, authorization.nonce] })
      .catch((error: unknown) => {
        rethrowIfUnavailable(error, "reading authorizationState");
        return undefined;
      }),
    options.simulate ? simulateTransfer(client, payment, options.simulationAccount) : Promise.resolve(undefined),
  ]);
  return { balanceAtomic, authorizationUsed, simulation };
}

export async function simulateTransfer(client: PublicClient, payment: ResolvedPayment, account: Address): Promise<SimulationResult> {
  const call = transferWithAuthorizationCall(payment.asset.address, payment.request.authorization, payment.request.signature);
  try {
    await client.call({ ...call, account });
    return { ok: true };
  } catch (error) {
    rethrowIfUnavailable(error, "simulating transferWithAuthorization");
    return { ok: false, revertText: revertReason(error) ?? "reverted" };
  }
}

/** On-chain EIP-712 name and version, read only to explain a failed simulation. */
export async function readTokenDomain(client: PublicClient, token: Address): Promise<{ name?: string; version?: string }> {
  const [name, version] = await Promise.all([
    client.readContract({ address: token, abi: eip3009Abi, functionName: "name" }).catch((error: unknown) => {
      rethrowIfUnavailable(error, "reading the token name");
      return undefined;
    }),
    client.readContract({ address: token, abi: eip3009Abi, functionName: "version" }).catch((error: unknown) => {
      rethrowIfUnavailable(error, "reading the token version");
      return undefined;
    }),
  ]);
  return { name, version };
}
