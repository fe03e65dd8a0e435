import { BaseError, HttpRequestError, createPublicClient, http, type Chain, type PublicClient, type Transport } from "viem";
import type { Clock } from "../clock.js";
import type { SendMode } from "../config.js";
import { redactUrl } from "../redact.js";
import { isMethodUnsupported, isTransportFailure } from "./rpc-errors.js";

/** EIP-7966: sends a raw transaction and answers with its receipt once it is included (or a timeout error). */
export const syncSendMethod = "eth_sendRawTransactionSync";

/** A URL that could not be asked whether it serves sync sends is asked again after this long (async meanwhile). */
export const syncProbeRetryMs = 30_000;

/** What the settlement engine sends a signed transaction through, when it is to be a sync send. */
export interface SyncSendRoute {
  /** The URL, redacted (scheme://host…), for logs. */
  url: string;
  /**
   * One client for this URL alone: no JSON-RPC batching (a batch answers when its slowest call
   * does, and this one lasts until inclusion), no retries (the bytes are sent once; the caller
   * decides what an unanswered send means), and an HTTP timeout longer than any settle budget.
   */
  client: PublicClient;
  /** The URL answered "method not found" to a send: sends through it are async from now on. */
  unsupported(): void;
}

/**
 * Which URL the network's fallback transport would ask first right now (the first not cooling
 * down after a failure, or the first when every one is): sends follow the same URL, so a sync send
 * never goes where a plain one would not.
 */
export interface UrlOrder {
  first(): number;
  /** The URL failed at the transport level (no answer, HTTP error status): pass over it for a while. */
  failed(index: number): void;
}

export interface SendRoutesOptions {
  mode: SendMode;
  chain: Chain;
  order: UrlOrder;
  clock: Pick<Clock, "monotonicMs">;
  /** The probe's HTTP timeout (RPC_TIMEOUT_MS). */
  probeTimeoutMs: number;
  /** A sync send's HTTP timeout: the settle budget (a send is never waited on longer; the node usually answers first). */
  sendTimeoutMs: number;
  /** Wraps each URL's transport (the registry's RPC-error counting). */
  wrap?: (transport: Transport, index: number) => Transport;
  /** Called once per URL when what it serves becomes known (the engine logs it). */
  onDetected?: (url: string, mode: "sync" | "async", why: string) => void;
}

type Support = { kind: "sync" } | { kind: "async" } | { kind: "unknown"; askAgainAtMs: number } | { kind: "asking"; done: Promise<void> };

/**
 * Per RPC URL of one network: does it serve `eth_sendRawTransactionSync`? Asked once per URL, on
 * the first send (`warm()` starts it earlier), by sending the method an empty transaction: a node
 * that serves it refuses the bytes ("empty transaction data", "invalid params"), one that does not
 * answers "method not found". No transaction is ever sent by the probe. The answer is cached for
 * the life of the process; a URL that could not be asked (down, rate limited) is sent to
 * asynchronously and asked again after syncProbeRetryMs. With SEND_MODE=sync nothing is asked
 * (every URL is assumed to serve it); with async nothing ever goes sync. A URL that answers a sync
 * send with "method not found" (SEND_MODE=sync, or a proxy in front of it changed) is marked async.
 */
export class SendRoutes {
  private readonly support: Support[];
  private readonly clients: Array<{ send: PublicClient; probe: PublicClient } | undefined>;

  constructor(
    private readonly urls: readonly string[],
    private readonly options: SendRoutesOptions,
  ) {
    const initial = (): Support => (options.mode === "sync" ? { kind: "sync" } : options.mode === "async" ? { kind: "async" } : { kind: "unknown", askAgainAtMs: 0 });
    this.support = urls.map(initial);
    this.clients = urls.map(() => undefined);
  }

  get mode(): SendMode {
    return this.options.mode;
  }

  /** Starts finding out whether the URL that serves sends now serves sync sends; never throws. */
  warm(): void {
    if (this.options.mode !== "auto") return;
    void this.supportOf(this.options.order.first()).catch(() => undefined);
  }

  /**
   * The sync route for a send now, or undefined: send it with plain eth_sendRawTransaction through
   * the network's client. Waits for a probe of the URL at most its HTTP timeout; never throws.
   */
  async syncRoute(): Promise<SyncSendRoute | undefined> {
    if (this.options.mode === "async") return undefined;
    const index = this.options.order.first();
    const support = await this.supportOf(index).catch(() => "async" as const);
    if (support !== "sync") return undefined;
    return { url: redactUrl(this.urls[index]!), client: this.clientsOf(index).send, unsupported: () => this.markAsync(index, "it answered a sync send with method not found") };
  }

  /** What the URL is known to serve (asking it if nobody has yet). */
  async supportOf(index: number): Promise<"sync" | "async"> {
    for (;;) {
      const support = this.support[index]!;
      if (support.kind === "sync" || support.kind === "async") return support.kind;
      if (support.kind === "asking") {
        await support.done;
        continue;
      }
      if (support.askAgainAtMs > this.options.clock.monotonicMs()) return "async";
      const done = this.ask(index);
      this.support[index] = { kind: "asking", done };
      await done;
    }
  }

  private async ask(index: number): Promise<void> {
    const answer = await Promise.resolve()
      .then(() => this.clientsOf(index).probe.request({ method: syncSendMethod, params: ["0x"] } as never, { retryCount: 0 }))
      .then(
        () => ({ kind: "sync" as const, why: "it accepted an empty transaction" }),
        (error: unknown) => probeAnswer(error),
      );
    if (answer.kind === "unknown") {
      this.support[index] = { kind: "unknown", askAgainAtMs: this.options.clock.monotonicMs() + syncProbeRetryMs };
      return;
    }
    this.support[index] = { kind: answer.kind };
    this.options.onDetected?.(redactUrl(this.urls[index]!), answer.kind, answer.why);
  }

  private markAsync(index: number, why: string): void {
    if (this.support[index]!.kind === "async") return;
    this.support[index] = { kind: "async" };
    this.options.onDetected?.(redactUrl(this.urls[index]!), "async", why);
  }

  private clientsOf(index: number): { send: PublicClient; probe: PublicClient } {
    let clients = this.clients[index];
    if (!clients) {
      const { chain, wrap } = this.options;
      const build = (timeout: number) => {
        const transport = marksFailures(http(this.urls[index]!, { timeout, retryCount: 0, batch: false }), () => this.options.order.failed(index));
        return createPublicClient({ chain, transport: wrap ? wrap(transport, index) : transport, cacheTime: 0 }) as PublicClient;
      };
      clients = { send: build(this.options.sendTimeoutMs), probe: build(this.options.probeTimeoutMs) };
      this.clients[index] = clients;
    }
    return clients;
  }
}

/** What the probe's refusal says about the URL. */
function probeAnswer(error: unknown): { kind: "sync" | "async"; why: string } | { kind: "unknown" } {
  if (isMethodUnsupported(error)) return { kind: "async", why: "it answered method not found" };
  if (isTransportFailure(error)) return { kind: "unknown" };
  // Any other JSON-RPC answer is the method refusing our empty transaction: it exists.
  if (error instanceof BaseError) return { kind: "sync", why: "it serves eth_sendRawTransactionSync" };
  return { kind: "unknown" };
}

/**
 * A URL that refused the connection or answered an HTTP error status is passed over by the
 * network's other calls too (the registry's cool-down). Not on a timeout: a sync send is meant to
 * wait, and a long wait says the transaction is not included yet, not that the URL is down.
 */
function marksFailures(transport: Transport, failed: () => void): Transport {
  return (parameters) => {
    const inner = transport(parameters);
    const request = (async (args: Parameters<typeof inner.request>[0], options?: Parameters<typeof inner.request>[1]) => {
      try {
        return await inner.request(args, options);
      } catch (error) {
        if (error instanceof BaseError && error.walk((cause) => cause instanceof HttpRequestError) && !isMethodUnsupported(error)) failed();
        throw error;
      }
    }) as typeof inner.request;
    return { ...inner, request };
  };
}
