/**
 * Fault injection for crash-recovery tests: with X402_TEST_CRASH_AT=<point> the process kills
 * itself (SIGKILL, no cleanup) the first time a settlement reaches that point. Read once at start;
 * unset in production, where crashPoint() is a comparison and nothing else.
 */
export type CrashPoint =
  | "after-claim"
  | "after-sign"
  | "after-broadcast"
  | "before-receipt"
  /** A batch of several settlements persisted on their rows, not yet broadcast. */
  | "after-batch-sign";

const armedPoint = process.env.X402_TEST_CRASH_AT as CrashPoint | undefined;

export function crashPoint(point: CrashPoint): void {
  if (armedPoint === point) process.kill(process.pid, "SIGKILL");
}
