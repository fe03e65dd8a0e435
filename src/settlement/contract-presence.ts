import type { Address, PublicClient } from "viem";
import { hasCode } from "../chain/code.js";
import { throwIfTransportFailure } from "../chain/rpc-errors.js";
import type { Clock } from "../clock.js";

/** A chain without the contract is asked again after this long (it may be deployed later). */
export const absentRecheckMs = 5 * 60_000;

/**
 * What a failed read means to the caller. "absent": not known, answer false this time (batching:
 * send alone). "throw": the caller must not decide without the chain (Permit2: verify and settle
 * answer 503 through throwIfTransportFailure).
 */
export type PresenceFault = "absent" | "throw";

/**
 * Whether a contract has code at its address, asked once per chain. Code, once seen, stays
 * (EIP-6780): a positive answer is kept for the process' life, a negative one for absentRecheckMs.
 * A failed read is never remembered; `lastKnown` is the last answer the chain gave, of any age.
 * Used for BatchSettler (a call to an empty address "succeeds" and pays nobody, so without it
 * settlements go out one per transaction) and for Permit2 and its proxies (permit2/presence.ts).
 */
export class ContractPresence {
  private readonly known = new Map<number, { present: boolean; checkedAtMs: number }>();

  constructor(
    private readonly address: Address,
    private readonly clock: Pick<Clock, "monotonicMs">,
    private readonly onFault: PresenceFault = "absent",
  ) {}

  async isDeployed(chainId: number, client: PublicClient): Promise<boolean> {
    const cached = this.known.get(chainId);
    if (cached && (cached.present || this.clock.monotonicMs() - cached.checkedAtMs < absentRecheckMs)) return cached.present;
    // Only a failed read means "not known" (not remembered); no code is an answer.
    const present = await hasCode(client, this.address).catch((error: unknown) => {
      if (this.onFault === "absent") return undefined;
      throwIfTransportFailure(error, `reading the code at ${this.address}`);
      throw error;
    });
    if (present === undefined) return false;
    this.known.set(chainId, { present, checkedAtMs: this.clock.monotonicMs() });
    return present;
  }

  /** The chain's last answer (however old), without asking: undefined when it never answered. */
  lastKnown(chainId: number): boolean | undefined {
    return this.known.get(chainId)?.present;
  }
}
