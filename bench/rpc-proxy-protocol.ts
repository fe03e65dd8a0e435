/** Messages between bench/rpc-proxy.ts and the counting proxy process (bench/rpc-proxy-worker.ts). */

/** What one proxy listener forwarded since it opened (cumulative: callers diff two readings). */
export interface ProxyCounts {
  /** HTTP requests (round trips to the node). */
  httpRequests: number;
  /** HTTP requests whose body was a JSON-RPC batch array. */
  batches: number;
  /** JSON-RPC calls: a batch of n counts n. */
  calls: number;
  /** Bodies that were not JSON (forwarded all the same, counted as a request and no call). */
  unparsable: number;
  /** Upstream requests that failed or timed out (answered 502/504). */
  upstreamErrors: number;
  /** Calls by JSON-RPC method. */
  byMethod: Record<string, number>;
}

export type ProxyRequest =
  | { id: number; op: "open"; upstreamUrl: string }
  | { id: number; op: "close"; port: number }
  | { id: number; op: "counts"; port: number };

export type ProxyReply = { id: number; port?: number; counts?: ProxyCounts; error?: string };
