import type { Address, PublicClient } from "viem";
import { hasCode } from "../chain/code.js";
import type { Clock } from "../clock.js";

/** A chain without the contract is asked again after this long (it may be deployed later). */
const absentRecheckMs = 5 * 60_000;

/**
 * Whether a contract has code at its address on a chain, asked once per chain. Batching depends
 * on BatchSettler: a call to an empty address "succeeds" and pays nobody, so without it
 * settlements go out one per transaction. An RPC fault counts as "not known": send alone this time.
 */
export class ContractPresence {
  private readonly known = new Map<number, { present: boolean; checkedAtMs: number }>();

  constructor(
    private readonly address: Address,
    private readonly clock: Pick<Clock, "monotonicMs">,
  ) {}

  async isDeployed(chainId: number, client: PublicClient): Promise<boolean> {
    const cached = this.known.get(chainId);
    if (cached && (cached.present || this.clock.monotonicMs() - cached.checkedAtMs < absentRecheckMs)) return cached.present;
    // Only a failed read means "not known" (not remembered); no code is an answer.
    const present = await hasCode(client, this.address).catch(() => undefined);
    if (present === undefined) return false;
    this.known.set(chainId, { present, checkedAtMs: this.clock.monotonicMs() });
    return present;
  }
}
