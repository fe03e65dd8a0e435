import { ConfigError } from "../errors.js";

/**
 * Network names: x402 v1 uses fixed names ("base"), v2 uses CAIP-2 ("eip155:8453").
 * The v1 table mirrors @x402/evm's EVM_NETWORK_CHAIN_ID_MAP so v1 SDK names resolve.
 */
export const v1NetworkChainIds: Readonly<Record<string, number>> = {
  base: 8453,
  "base-sepolia": 84532,
  ethereum: 1,
  sepolia: 11155111,
  abstract: 2741,
  "abstract-testnet": 11124,
  "avalanche-fuji": 43113,
  avalanche: 43114,
  iotex: 4689,
  sei: 1329,
  "sei-testnet": 1328,
  polygon: 137,
  "polygon-amoy": 80002,
  peaq: 3338,
  story: 1514,
  educhain: 41923,
  "skale-base-sepolia": 324705682,
  megaeth: 4326,
  monad: 143,
  stable: 988,
  "stable-testnet": 2201,
};

export type Caip2Network = `eip155:${number}`;

const caip2Pattern = /^eip155:([1-9][0-9]{0,15})$/;

/** Chain id of a CAIP-2 `eip155:<id>` string, or undefined when it is not one. */
export function chainIdFromCaip2(network: string): number | undefined {
  const match = caip2Pattern.exec(network);
  if (!match) return undefined;
  const chainId = Number(match[1]);
  return Number.isSafeInteger(chainId) ? chainId : undefined;
}

/** Chain id of either form ("base" or "eip155:8453"), or undefined. */
export function chainIdFromAnyNetwork(network: string): number | undefined {
  return chainIdFromCaip2(network) ?? v1NetworkChainIds[network];
}

export function caip2(chainId: number): Caip2Network {
  return `eip155:${chainId}`;
}

/**
 * A network named on a command line or in configuration (`base`, `base-sepolia`, `eip155:8453`) as
 * its chain id, or a ConfigError naming `source` (a flag or variable).
 */
export function chainIdOfNetworkArg(name: string, source: string): number {
  const chainId = chainIdFromAnyNetwork(name.trim());
  if (chainId === undefined) throw new ConfigError(`${source}: "${name}" is neither an x402 v1 network name nor eip155:<chainId>`);
  return chainId;
}
