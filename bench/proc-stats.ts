/**
 * Per-process resource readings from Linux procfs: CPU time (utime + stime, all threads) and peak
 * resident set size (VmHWM, which resetPeakRss starts again, so that each measurement has its own
 * peak). Used to charge each facilitator — and the Postgres and Anvil
 * processes behind it — for the work a benchmark phase made them do.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

let clockTicksPerSecond: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on practically every Linux). */
function ticksPerSecond(): number {
  if (clockTicksPerSecond === undefined) {
    try {
      clockTicksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8", timeout: 2_000 }).trim()) || 100;
    } catch {
      clockTicksPerSecond = 100;
    }
  }
  return clockTicksPerSecond;
}

interface StatFields {
  ppid: number;
  cpuTicks: number;
}

/** Parses /proc/<pid>/stat; the command name (field 2) may hold spaces and parentheses. */
function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // gone
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): ppid is field 4, utime field 14, stime field 15.
  return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
}

/** CPU time the process has used so far, in ms (user + system, every thread). */
export function cpuMs(pid: number): number {
  const stat = readStat(pid);
  return stat === undefined ? Number.NaN : (stat.cpuTicks * 1000) / ticksPerSecond();
}

/** The process and all its live descendants (e.g. a postmaster and its backends). */
export function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat === undefined) continue;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(Number(entry));
    children.set(stat.ppid, siblings);
  }
  const tree: number[] = [];
  const queue = [rootPid];
  while (queue.length > 0 && tree.length < 10_000) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/**
 * CPU ms of every process in the tree, by pid. Diff two snapshots with cpuMsSpent: processes that
 * ended in between are lost, which for Postgres means pooled backends must outlive the phase (they do).
 */
export function treeCpuSnapshot(rootPid: number): Map<number, number> {
  const snapshot = new Map<number, number>();
  for (const pid of processTree(rootPid)) {
    const ms = cpuMs(pid);
    if (Number.isFinite(ms)) snapshot.set(pid, ms);
  }
  return snapshot;
}

export function cpuMsSpent(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}

function statusKb(pid: number, field: "VmHWM" | "VmRSS"): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Peak resident set size of the process so far, in MiB. */
export function peakRssMb(pid: number): number {
  return statusKb(pid, "VmHWM") / 1024;
}

export function rssMb(pid: number): number {
  return statusKb(pid, "VmRSS") / 1024;
}

/**
 * Starts the process's peak RSS (VmHWM) again from its current RSS ("5" to /proc/<pid>/clear_refs,
 * Linux ≥ 4.0; needs the right to ptrace it, which a parent running as the same user or root has),
 * so that the next peakRssMb is the peak of what happens from now on. False when the kernel refused:
 * the peak is then the process's lifetime one.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
