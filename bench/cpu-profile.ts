/**
 * Summarises a V8 .cpuprofile (node --cpu-prof) for the report: where the CPU went, by function
 * (self and inclusive time) and by owner (our files — dist/, compiled from src/ — each npm package, Node internals, GC).
 *
 * Samples can be limited to a time window given in CLOCK_MONOTONIC microseconds
 * (process.hrtime.bigint() / 1000n in any process of this machine): V8's profile timestamps use
 * the same clock on Linux, so the orchestrator can cut out start-up and shutdown.
 */
import { readFileSync } from "node:fs";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  name: string;
  where: string;
  selfMs: number;
  selfPercent: number;
  totalMs: number;
  totalPercent: number;
}

export interface ProfileSummary {
  windowMs: number;
  sampledMs: number;
  byOwner: { owner: string; selfMs: number; selfPercent: number }[];
  topSelf: FunctionTime[];
  /** Inclusive time of functions defined in this repository's dist/ (src/ when run through tsx). */
  topOursInclusive: FunctionTime[];
}

const repoMarker = "/work/main/";

function shortUrl(url: string): string {
  const modules = url.lastIndexOf("node_modules/");
  if (modules >= 0) return url.slice(modules + "node_modules/".length);
  const ours = url.search(/\/(src|dist)\//);
  if (ours >= 0 && !url.includes("node_modules")) return url.slice(ours + 1);
  return url.replace(/^file:\/\//, "").replace(repoMarker, "");
}

function ownerOf(frame: CallFrame): string {
  if (frame.url === "") {
    if (frame.functionName.startsWith("(")) return frame.functionName; // (garbage collector), (program), (idle)
    return "(native/V8)";
  }
  if (frame.url.startsWith("node:")) return "node internals";
  const modules = frame.url.lastIndexOf("node_modules/");
  if (modules >= 0) {
    const rest = frame.url.slice(modules + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (/\/(src|dist)\//.test(frame.url)) return "ours (dist/)";
  return "other";
}

/** Name and place of a function. Code loaded through tsx (the reference) is one line per module: then the column tells functions apart. */
function keyOf(frame: CallFrame): string {
  const place = frame.lineNumber > 0 ? `:${frame.lineNumber + 1}` : frame.url === "" ? "" : `@${frame.columnNumber + 1}`;
  return `${frame.functionName || "(anonymous)"}\u0000${shortUrl(frame.url)}${place}`;
}

export function summariseCpuProfile(file: string, window?: { fromMicros: number; toMicros: number }, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const owners = new Map<string, number>();
  let sampled = 0;
  let timestamp = profile.startTime;
  let firstInWindow: number | undefined;
  let lastInWindow = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    timestamp += profile.timeDeltas[i] ?? 0;
    if (window && (timestamp < window.fromMicros || timestamp > window.toMicros)) continue;
    // A sample's cost is the time until the next sample.
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(profile.samples[i]!);
    if (!node || ms <= 0) continue;
    firstInWindow ??= timestamp;
    lastInWindow = timestamp;
    if (node.callFrame.functionName === "(idle)") continue;
    sampled += ms;
    const key = keyOf(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + ms);
    const owner = ownerOf(node.callFrame);
    owners.set(owner, (owners.get(owner) ?? 0) + ms);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frameKey = keyOf(byId.get(id)!.callFrame);
      if (seen.has(frameKey)) continue;
      seen.add(frameKey);
      total.set(frameKey, (total.get(frameKey) ?? 0) + ms);
    }
  }
  const percent = (ms: number) => (sampled > 0 ? (100 * ms) / sampled : 0);
  const describe = (key: string): FunctionTime => {
    const [name, where] = key.split("\u0000") as [string, string];
    const selfMs = self.get(key) ?? 0;
    const totalMs = total.get(key) ?? 0;
    return { name, where, selfMs, selfPercent: percent(selfMs), totalMs, totalPercent: percent(totalMs) };
  };
  const topSelf = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([key]) => describe(key));
  const topOursInclusive = [...total.entries()]
    .filter(([key]) => /^(?!.*node_modules).*\b(src|dist)\//.test(key.split("\u0000")[1] ?? ""))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key]) => describe(key));
  const byOwner = [...owners.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([owner, ms]) => ({ owner, selfMs: ms, selfPercent: percent(ms) }));
  return {
    windowMs: firstInWindow === undefined ? 0 : (lastInWindow - firstInWindow) / 1000,
    sampledMs: sampled,
    byOwner,
    topSelf,
    topOursInclusive,
  };
}

export function formatProfileSummary(summary: ProfileSummary): string {
  const lines: string[] = [];
  const ms = (value: number) => value.toFixed(0).padStart(7);
  const pct = (value: number) => `${value.toFixed(1).padStart(5)}%`;
  lines.push(`CPU profile: ${summary.sampledMs.toFixed(0)} ms of CPU sampled over ${summary.windowMs.toFixed(0)} ms (idle excluded)`);
  lines.push("", "self time by owner:");
  for (const row of summary.byOwner.slice(0, 15)) lines.push(`  ${ms(row.selfMs)} ms ${pct(row.selfPercent)}  ${row.owner}`);
  lines.push("", "hottest functions (self time):");
  for (const row of summary.topSelf) lines.push(`  ${ms(row.selfMs)} ms ${pct(row.selfPercent)}  ${row.name}  ${row.where}`);
  lines.push("", "our functions (inclusive time):");
  for (const row of summary.topOursInclusive) lines.push(`  ${ms(row.totalMs)} ms ${pct(row.totalPercent)}  ${row.name}  ${row.where}`);
  return lines.join("\n");
}
