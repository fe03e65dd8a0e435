import type { PublicClient } from "viem";
import { hasCode } from "../chain/code.js";
import { rethrowAsUnavailable } from "../chain/rpc-errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Rejection } from "../protocol/types.js";
import type { ResolvedPayment } from "./resolve.js";

/**
 * Assets seen with code, per network (one viem client per network, built once in the registry).
 * Only "has code" is remembered: an address without code may be a token deployed later, and must be
 * asked again on the next payment (as @x402/evm 2.27's asset check does). Code does not go away
 * (SELFDESTRUCT no longer removes it, EIP-6780), so a positive answer never expires.
 */
const assetsWithCode = new WeakMap<PublicClient, Set<string>>();

/**
 * The asset is a contract on this chain. A configured asset without code (deployed on another chain
 * only, or not yet; the start-up self-check stops the facilitator on it, but an RPC that did not
 * answer at start lets it through) would make every read and simulation "succeed" with empty data
 * and a settlement pay nobody: refused with 2.27's `asset_not_deployed_contract`, before any other
 * chain work. One eth_getCode per asset and network for the process' lifetime; an RPC outage is a 503.
 */
export async function checkAssetDeployed(client: PublicClient, payment: ResolvedPayment): Promise<Rejection | undefined> {
  const asset = payment.asset.address.toLowerCase();
  let known = assetsWithCode.get(client);
  if (known?.has(asset)) return undefined;
  const deployed = await hasCode(client, payment.asset.address).catch(rethrowAsUnavailable("reading the asset's code"));
  if (!deployed) {
    return {
      reason: ReasonCode.assetNotDeployedContract,
      message: `asset ${payment.asset.address} has no contract code on chain ${payment.network.chainId}: is it deployed on this network?`,
    };
  }
  if (!known) assetsWithCode.set(client, (known = new Set()));
  known.add(asset);
  return undefined;
}
