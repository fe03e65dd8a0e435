import type { PublicClient } from "viem";
import type { Clock } from "../clock.js";
import { permit2Address, x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress } from "../contracts/permit2.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Rejection, Scheme } from "../protocol/types.js";
import { ContractPresence } from "../settlement/contract-presence.js";
import { withTimeout } from "../util/with-timeout.js";
import { proxyOf } from "./checks.js";

/** After /supported could not ask a chain, it answers "absent" this long before asking again. */
const listingFaultHoldoffMs = 10_000;

/**
 * Whether Permit2 and a scheme's x402 proxy have code on a chain. Their addresses are the same
 * everywhere (CREATE2), but nothing guarantees a deployment on every chain: without it a Permit2
 * payment could never settle (a call to an empty address even "succeeds"), so verify refuses it
 * (`permit2_proxy_not_deployed`) and /supported leaves `upto` out. One ContractPresence per
 * address (positive answers kept for the process' life, negative ones for contract-presence.ts's absentRecheckMs).
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
   * `permit2_proxy_not_deployed` when Permit2 or the scheme's proxy has no code (a call to an empty
   * address would "succeed" and pay nobody), for verify and settle alike; throws (503) when the
   * chain cannot be asked.
   */
  async rejectionIfAbsent(chainId: number, client: PublicClient, scheme: Scheme): Promise<Rejection | undefined> {
    if (await this.deployed(chainId, client, scheme)) return undefined;
    return { reason: ReasonCode.permit2ProxyNotDeployed, message: `Permit2 or the x402 ${scheme} Permit2 proxy (${proxyOf(scheme)}) has no code on chain ${chainId}` };
  }

  /**
   * For /supported, which 2.27 resource servers read once at start: never an RPC call once both are
   * known present; a wait bounded by `timeoutMs`; and when the chain cannot be asked, "absent",
   * without asking again for listingFaultHoldoffMs, so an outage neither drops a listed `upto` (a
   * chain once found with both is answered from memory) nor makes every request wait for the RPC.
   */
  async listed(chainId: number, client: PublicClient, scheme: Scheme, timeoutMs: number): Promise<boolean> {
    const knownPresent = (this.permit2.lastKnown(chainId) ?? false) && (this.proxies[scheme].lastKnown(chainId) ?? false);
    if (knownPresent) return true; // positives are kept forever: no need to ask
    const faultAtMs = this.listingFaultAtMs.get(chainId);
    // From here on the last known state is never "both present" (that returned above): absent or unknown, answered false.
    if (faultAtMs !== undefined && this.clock.monotonicMs() - faultAtMs < listingFaultHoldoffMs) return false;
    const answer = await withTimeout(this.deployed(chainId, client, scheme), timeoutMs, () => undefined).catch(() => undefined);
    if (answer === undefined) {
      this.listingFaultAtMs.set(chainId, this.clock.monotonicMs());
      return false;
    }
    this.listingFaultAtMs.delete(chainId);
    return answer;
  }
}
