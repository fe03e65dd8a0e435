import { BaseError, HttpRequestError, TimeoutError, createPublicClient, defineChain, fallback, http, type Chain, type PublicClient, type Transport } from "viem";
import { SharedChainReads } from "./shared-reads.js";
import type { Clock } from "../clock.js";
import type { Limits, NetworkConfig, SendMode } from "../config.js";
import { redactUrl } from "../redact.js";
import { SendRoutes, type UrlOrder } from "./send-routes.js";
import { createLightFetch } from "./light-fetch.js";

/**
 * How long an RPC URL that failed at the transport level (timeout, no answer, non-2xx such as 429)
 * is passed over while another URL of the network is healthy. Without it a hung first URL costs
 * rpcTimeoutMs × (1 + rpcRetryCount) on every call: with the defaults 10 s per call, so a verify
 * takes 10 s and a settle (prepare, send, receipt) runs past its SETTLE_BUDGET_MS (20 s).
 */
export const rpcUrlCooldownMs = 30_000;

export interface ChainHandle {
  config: NetworkConfig;
  chain: Chain;
  publicClient: PublicClient;
  /** How settlement transactions are sent on this network: sync (EIP-7966) through the URLs that serve it, else async. */
  sends: SendRoutes;
  /** Fees and signer nonce/balance, shared by the settlements that ask at the same moment. */
  sharedReads: SharedChainReads;
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
export interface ChainRegistryOptions {
  /** Times the RPC URL cool-downs. */
  clock: Pick<Clock, "monotonicMs">;
  /**
   * Called with scheme://host of the URL on every RPC request the URL did not serve: an HTTP error
   * status, a connection failure or a timeout (the x402_rpc_errors_total metric). JSON-RPC error
   * answers (a revert, say) are the node working, not failing.
   */
  onRpcError?: (network: string, url: string, kind: RpcFailureKind) => void;
  /** SEND_MODE; default auto (sync sends through the URLs that serve eth_sendRawTransactionSync). */
  sendMode?: SendMode;
  /** Called once per URL when whether it serves sync sends becomes known. */
  onSendModeDetected?: (network: string, url: string, mode: "sync" | "async", why: string) => void;
}

export type RpcFailureKind = "http" | "connection" | "timeout";

export function createChainRegistry(
  networks: NetworkConfig[],
  limits: Pick<Limits, "rpcTimeoutMs" | "rpcRetryCount"> & Partial<Pick<Limits, "rpcBatchSize" | "settleBudgetMs">>,
  options: ChainRegistryOptions,
): ChainRegistry {
  const { clock, onRpcError } = options;
  const handles = new Map<number, ChainHandle>();
  // One keep-alive connection pool per registry for every read (light-fetch.ts: node:http, not the global fetch).
  const { fetch: fetchFn } = createLightFetch();
  for (const config of networks) {
    const chain = defineChain({
      id: config.chainId,
      name: config.network,
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: config.rpcUrls } },
    });
    const countedBy = (transport: Transport, index: number) =>
      onRpcError ? counted(transport, (kind) => onRpcError(config.network, redactUrl(config.rpcUrls[index]!), kind)) : transport;
    const transports = config.rpcUrls.map((url) =>
      http(url, {
        timeout: limits.rpcTimeoutMs,
        retryCount: limits.rpcRetryCount,
        retryDelay: 50,
        batch: { batchSize: limits.rpcBatchSize ?? 64, wait: 0 },
        fetchFn: fetchFn as unknown as typeof fetch,
      }),
    ).map(countedBy);
    const cooldowns = new UrlCooldowns(config.rpcUrls.length, clock);
    const transport = transports.length === 1 ? transports[0]! : fallback(withCooldowns(config.rpcUrls, transports, cooldowns), { rank: false, retryCount: 0 });
    // pollingInterval bounds how often receipt waits ask the node; 250 ms keeps settle latency low on fast chains.
    const publicClient = createPublicClient({ chain, transport, pollingInterval: 250, cacheTime: 0 }) as PublicClient;
    const sends = new SendRoutes(config.rpcUrls, {
      mode: options.sendMode ?? "auto",
      chain,
      order: cooldowns,
      clock,
      probeTimeoutMs: limits.rpcTimeoutMs,
      sendTimeoutMs: limits.settleBudgetMs ?? 20_000,
      wrap: countedBy,
      onDetected: (url, mode, why) => options.onSendModeDetected?.(config.network, url, mode, why),
    });
    handles.set(config.chainId, { config, chain, publicClient, sends, sharedReads: new SharedChainReads(publicClient) });
  }
  return {
    get: (chainId) => handles.get(chainId),
    all: () => [...handles.values()],
  };
}

/**
 * Which URLs just failed at the transport level (timeout, no answer, non-2xx such as 429): each is
 * passed over for rpcUrlCooldownMs while a later URL is not cooling down itself. A success ends the
 * URL's cool-down. Shared by the network's fallback transport and its sync sends (send-routes.ts).
 */
class UrlCooldowns implements UrlOrder {
  // Monotonic readings; undefined: not cooling down.
  private readonly coolingUntilMs: (number | undefined)[];

  constructor(
    count: number,
    private readonly clock: Pick<Clock, "monotonicMs">,
  ) {
    this.coolingUntilMs = Array.from({ length: count }, () => undefined);
  }

  cooling(index: number, nowMs = this.clock.monotonicMs()): boolean {
    const until = this.coolingUntilMs[index];
    return until !== undefined && until > nowMs;
  }

  /** The URL is skipped now: it is cooling down and a later one is not. */
  skipped(index: number): boolean {
    const nowMs = this.clock.monotonicMs();
    return this.cooling(index, nowMs) && this.coolingUntilMs.some((_, later) => later > index && !this.cooling(later, nowMs));
  }

  /** The URL the fallback transport asks first now. */
  first(): number {
    for (let index = 0; index < this.coolingUntilMs.length; index++) if (!this.skipped(index)) return index;
    return 0;
  }

  failed(index: number): void {
    this.coolingUntilMs[index] = this.clock.monotonicMs() + rpcUrlCooldownMs;
  }

  served(index: number): void {
    this.coolingUntilMs[index] = undefined;
  }
}

/**
 * Failover that remembers: a URL that just failed at the transport level is skipped (an instant
 * failure, so fallback moves on) while it cools down (UrlCooldowns). When every URL is cooling
 * down, each is tried again in order, so an outage is still a bounded 503 and the first URL to
 * come back serves at once.
 */
function withCooldowns(urls: readonly string[], transports: readonly Transport[], cooldowns: UrlCooldowns): Transport[] {
  return transports.map((transport, index): Transport => (parameters) => {
    const inner = transport(parameters);
    const request = (async (args: Parameters<typeof inner.request>[0], options?: Parameters<typeof inner.request>[1]) => {
      if (cooldowns.skipped(index)) {
        // Our own error, so it need not carry the URL's key at all (viem's own errors are redacted where they are written).
        throw new HttpRequestError({ url: redactUrl(urls[index]!), details: `skipped: failed less than ${rpcUrlCooldownMs} ms ago` });
      }
      try {
        const result = await inner.request(args, options);
        cooldowns.served(index);
        return result;
      } catch (error) {
        if (isUrlFailure(error)) cooldowns.failed(index);
        throw error;
      }
    }) as typeof inner.request;
    return { ...inner, request };
  });
}

/** Reports each request the URL did not serve (after viem's retries), then rethrows. Labels are scheme://host only: RPC URLs often carry an API key. */
function counted(transport: Transport, report: (kind: RpcFailureKind) => void): Transport {
  return (parameters) => {
    const inner = transport(parameters);
    const request = (async (args: Parameters<typeof inner.request>[0], options?: Parameters<typeof inner.request>[1]) => {
      try {
        return await inner.request(args, options);
      } catch (error) {
        const kind = failureKind(error);
        if (kind) report(kind);
        throw error;
      }
    }) as typeof inner.request;
    return { ...inner, request };
  };
}

function failureKind(error: unknown): RpcFailureKind | undefined {
  if (!(error instanceof BaseError)) return undefined;
  if (error.walk((cause) => cause instanceof TimeoutError)) return "timeout";
  const httpError = error.walk((cause) => cause instanceof HttpRequestError) as HttpRequestError | null;
  if (!httpError) return undefined;
  return httpError.status !== undefined ? "http" : "connection";
}

/** The URL did not serve (no answer in time, connection lost, HTTP error status), as opposed to a JSON-RPC error answer. */
function isUrlFailure(error: unknown): boolean {
  return error instanceof BaseError && Boolean(error.walk((cause) => cause instanceof TimeoutError || cause instanceof HttpRequestError));
}
