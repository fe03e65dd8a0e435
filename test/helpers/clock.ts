import type { Clock } from "../../src/clock.js";

/**
 * A Clock whose monotonic reading (cache ages, cool-downs) moves only when the test calls
 * `advance`; wall time (`nowMs`) stays real, since payments are signed with wall-clock validity
 * windows and Postgres stamps rows with its own clock.
 */
export function steppedMonotonicClock(startMs = 1_000_000): { clock: Clock; advance(ms: number): void } {
  let monotonicMs = startMs;
  return {
    clock: { nowMs: () => Date.now(), monotonicMs: () => monotonicMs },
    advance: (ms) => {
      monotonicMs += ms;
    },
  };
}
