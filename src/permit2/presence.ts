import type { PublicClient } from "viem";
import type { Clock } from "../clock.js";
import { permit2Address, x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress } from "../contracts/permit2.js";
import type { Scheme } from "../protocol/types.js";
import { absentRecheckMs, ContractPresence } from "../settlement/contract-presence.js";
import { withTimeout } from "../util/with-timeout.js";

/** A chain found without one of the contracts is asked again after this long (it may be deployed later). */
export const permit2AbsentRecheckMs = absentRecheckMs;

/** After /supported could not ask a chain, it answers from the last known state this long before asking again. */
export const listingFaultHoldoffMs = 10_000;

/**
 * Whether Permit2 and a scheme's x402 proxy have code on a chain. Their addresses are the same
 * everywhere (CREATE2), but nothing guarantees a deployment on every chain: without it a Permit2
 * payment could never settle (a call to an empty address even "succeeds"), so verify refuses it
 * (`permit2_proxy_not_deployed`) and /supported leaves `upto` out. One ContractPresence per
 * address (positive answers kept for the process' life, negative ones for permit2AbsentRecheckMs).
 * An RPC outage is a 503 for verify and settle (`deployed`); /supported answers from the last
 * known state instead (`listed`).
 */
export class Permit2Contracts {
  private readonly permit2: ContractPresence;
  private readonly proxies: Record<Scheme, ContractPresence>;
  /** Per chain: when /supported last failed to ask (monotonic ms). */
  private readonly listingFaultAtMs = new Map<number, number>();

  constructor(private readonly clock: Pick<Clock, "monotonicMs">) {
    this.permit2 = new ContractPresence(permit2Address, clock, "throw");
    this.proxies = { exact: new ContractPresence(x402ExactPermit2ProxyAddress, clock, "throw"), upto: new ContractPresence(x402UptoPermit2ProxyAddress, clock, "throw") };
  }

  /** Both have code; throws (503) when the chain cannot be asked. */
  async deployed(chainId: number, client: PublicClient, scheme: Scheme): Promise<boolean> {
    const [permit2, proxy] = await Promise.all([this.permit2.isDeployed(chainId, client), this.proxies[scheme].isDeployed(chainId, client)]);
    return permit2 && proxy;
  }

  /**
   * For /supported, which 2.27 resource servers read once at start: never an RPC call once both are
   * known present; a wait bounded by `timeoutMs`; and when the chain cannot be asked, the last
   * known state (false when it never answered), without asking again for listingFaultHoldoffMs, so
   * an outage neither drops a listed `upto` nor makes every request wait for the RPC.
   */
  async listed(chainId: number, client: PublicClient, scheme: Scheme, timeoutMs: number): Promise<boolean> {
    const lastKnown = (this.permit2.lastKnown(chainId) ?? false) && (this.proxies[scheme].lastKnown(chainId) ?? false);
    if (lastKnown) return true; // positives are kept forever: no need to ask
    const faultAtMs = this.listingFaultAtMs.get(chainId);
    if (faultAtMs !== undefined && this.clock.monotonicMs() - faultAtMs < listingFaultHoldoffMs) return lastKnown;
    const answer = await withTimeout(this.deployed(chainId, client, scheme), timeoutMs, () => undefined).catch(() => undefined);
    if (answer === undefined) {
      this.listingFaultAtMs.set(chainId, this.clock.monotonicMs());
      return lastKnown;
    }
    this.listingFaultAtMs.delete(chainId);
    return answer;
  }
}
