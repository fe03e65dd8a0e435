/**
 * When each block appeared, on this machine's clock: polls Anvil's eth_blockNumber (directly, not
 * through a counting proxy) every pollMs and records the first time each block number was seen.
 * A burst's "block at the last arrival" and "when its last payment was confirmed" are read from it
 * (Anvil's block timestamps are whole seconds: too coarse for 2 s blocks).
 *
 * Times are epoch ms from performance.timeOrigin + performance.now(), the same base the load
 * generator reports its send times in. Accurate to about pollMs (+ one loopback round trip).
 * Bounds: at most BLOCKS_MAX blocks remembered; each poll cut at POLL_TIMEOUT_MS.
 */
import { setTimeout as sleep } from "node:timers/promises";

const BLOCKS_MAX = 20_000;
const POLL_TIMEOUT_MS = 2_000;

export const epochMs = (): number => performance.timeOrigin + performance.now();

export interface BlockClock {
  /** The newest block seen at or before `atEpochMs` (undefined: none seen by then). */
  headAt(atEpochMs: number): bigint | undefined;
  /** When `block` (or a later one, if polls skipped it) was first seen. */
  seenAt(block: bigint): number | undefined;
  /** The newest block seen so far. */
  head(): bigint | undefined;
  stop(): Promise<void>;
}

export async function startBlockClock(rpcUrl: string, pollMs = 20): Promise<BlockClock> {
  /** [block, first seen] in increasing block order. */
  const seen: { block: bigint; atMs: number }[] = [];
  let stopped = false;
  const poll = async (): Promise<void> => {
    const response = await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
      signal: AbortSignal.timeout(POLL_TIMEOUT_MS),
    });
    const { result } = (await response.json()) as { result?: string };
    const atMs = epochMs();
    if (typeof result !== "string") return;
    const block = BigInt(result);
    if (seen.length === 0 || block > seen.at(-1)!.block) {
      seen.push({ block, atMs });
      if (seen.length > BLOCKS_MAX) seen.shift();
    }
  };
  await poll();
  const loop = (async () => {
    while (!stopped) {
      await sleep(pollMs);
      // A failed poll (Anvil busy, stopping) is a gap in the record, not an error of the run.
      await poll().catch(() => {});
    }
  })();
  return {
    headAt: (atEpochMs) => {
      let found: bigint | undefined;
      for (const entry of seen) {
        if (entry.atMs > atEpochMs) break;
        found = entry.block;
      }
      return found;
    },
    seenAt: (block) => seen.find((entry) => entry.block >= block)?.atMs,
    head: () => seen.at(-1)?.block,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
