import type { Address } from "viem";

/** An EIP-3009 token the buyer signs for: its address and EIP-712 domain (name, version). */
export interface AssetInfo {
  address: Address;
  name: string;
  version: string;
}

/** One network the proxy can charge on, under both of its x402 names. */
export interface NetworkInfo {
  /** x402 v2 name (CAIP-2). */
  caip2: `eip155:${number}`;
  /** x402 v1 name. */
  v1Name: string;
  chainId: number;
  /** Native USDC (6 decimals) on that network. */
  usdc: AssetInfo;
}

export const NETWORKS: readonly NetworkInfo[] = [
  {
    caip2: "eip155:8453",
    v1Name: "base",
    chainId: 8453,
    usdc: { address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", name: "USD Coin", version: "2" },
  },
  {
    caip2: "eip155:84532",
    v1Name: "base-sepolia",
    chainId: 84532,
    usdc: { address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", name: "USDC", version: "2" },
  },
];

/** Accepts either name ("eip155:8453" or "base"); undefined when the network is not supported. */
export function findNetwork(name: string): NetworkInfo | undefined {
  const wanted = name.trim().toLowerCase();
  return NETWORKS.find((network) => network.caip2 === wanted || network.v1Name === wanted);
}

/** USDC has 6 decimals: 1 USD = 1_000_000 atomic units. */
export const USDC_DECIMALS = 6;
