import type { ChildProcess } from "node:child_process";

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Kills `child` if this process exits while it still runs (a crash, process.exit, a failed test
 * run), so nothing we spawned is left orphaned on its port.
 */
export function killOnExit(child: ChildProcess): void {
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // "exit" handlers must be synchronous: SIGKILL is the only signal sure to land in time.
  process.on("exit", () => {
    for (const live of liveChildren) live.kill("SIGKILL");
  });
}
