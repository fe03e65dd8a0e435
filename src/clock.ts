/**
 * Time as a dependency, so tests can pin it. Every reading of time that decides something (a
 * deadline, a lease, a cache entry's age, a cool-down) goes through the Clock the services were
 * built with; only measurements (log timestamps, request durations in metrics) read the globals.
 */
export interface Clock {
  /**
   * Wall-clock time, ms since the epoch: for deadlines handed between components and for
   * comparisons with timestamps that come from elsewhere (Postgres rows, validity windows).
   */
  nowMs(): number;
  /**
   * Monotonic time, ms from an arbitrary origin (never jumps with NTP or a pinned wall clock): for
   * ages and cool-downs measured inside this process (caches, RPC URL cool-downs). Only differences
   * of two readings mean anything; never compare it with nowMs().
   */
  monotonicMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now(), monotonicMs: () => performance.now() };

export function nowSeconds(clock: Clock): bigint {
  return BigInt(Math.floor(clock.nowMs() / 1000));
}
