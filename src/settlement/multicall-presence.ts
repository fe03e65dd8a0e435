import type { PublicClient } from "viem";
import { multicall3Address } from "../exact-evm/multicall3.js";

/** A chain without Multicall3 is asked again after this long (it may be deployed later). */
const absentRecheckMs = 5 * 60_000;

/**
 * Whether Multicall3 has code at its canonical address on a chain, asked once per chain. Batching
 * depends on it: an aggregate3 call to an empty address "succeeds" and pays nobody, so without it
 * settlements go out one per transaction. An RPC fault counts as "not known": send alone this time.
 */
export class MulticallPresence {
  private readonly known = new Map<number, { present: boolean; checkedAtMs: number }>();

  async isDeployed(chainId: number, client: PublicClient): Promise<boolean> {
    const cached = this.known.get(chainId);
    if (cached && (cached.present || Date.now() - cached.checkedAtMs < absentRecheckMs)) return cached.present;
    const code = await client.getCode({ address: multicall3Address }).catch(() => undefined);
    if (code === undefined) return false;
    const present = code !== "0x";
    this.known.set(chainId, { present, checkedAtMs: Date.now() });
    return present;
  }
}
