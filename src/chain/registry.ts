import { createPublicClient, defineChain, fallback, http, type Chain, type PublicClient } from "viem";
import type { Limits, NetworkConfig } from "../config.js";

export interface ChainHandle {
  config: NetworkConfig;
  chain: Chain;
  publicClient: PublicClient;
}

export interface ChainRegistry {
  get(chainId: number): ChainHandle | undefined;
  all(): ChainHandle[];
}

/**
 * One viem client per network, built once at start (never per request).
 * Transport: fallback over the configured URLs, each with an explicit timeout and JSON-RPC
 * batching, so the reads of one verify (balance, authorizationState, simulation) travel in one
 * HTTP request. A 429 or timeout on one URL moves on to the next.
 */
export function createChainRegistry(networks: NetworkConfig[], limits: Pick<Limits, "rpcTimeoutMs" | "rpcRetryCount">): ChainRegistry {
  const handles = new Map<number, ChainHandle>();
  for (const config of networks) {
    const chain = defineChain({
      id: config.chainId,
      name: config.network,
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: config.rpcUrls } },
    });
    const transports = config.rpcUrls.map((url) =>
      http(url, { timeout: limits.rpcTimeoutMs, retryCount: limits.rpcRetryCount, retryDelay: 50, batch: { batchSize: 64, wait: 0 } }),
    );
    const transport = transports.length === 1 ? transports[0]! : fallback(transports, { rank: false, retryCount: 0 });
    // pollingInterval bounds how often receipt waits ask the node; 250 ms keeps settle latency low on fast chains.
    const publicClient = createPublicClient({ chain, transport, pollingInterval: 250, cacheTime: 0 }) as PublicClient;
    handles.set(config.chainId, { config, chain, publicClient });
  }
  return {
    get: (chainId) => handles.get(chainId),
    all: () => [...handles.values()],
  };
}
