import { execFileSync } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * HEAP_GROWTH_PERCENT (src/heap-growth.ts) set at run time, as startServer does, changes how far V8
 * lets garbage pile up. Each child keeps ~10 MB live and allocates garbage that lives long enough
 * to reach the old generation (a ring of recent arrays), and reports its largest heap: sizes, not times.
 */
const module = pathToFileURL(path.resolve(import.meta.dirname, "../../src/heap-growth.ts")).href;
const child = (percent: number) => `
  const { applyHeapGrowth } = await import(${JSON.stringify(module)});
  applyHeapGrowth(${percent});
  const live = Array.from({ length: 50_000 }, (_, i) => ({ text: "live-" + i + "x".repeat(120) }));
  const ring = new Array(6_000);
  let peak = 0;
  for (let i = 0; i < 50_000; i++) {
    ring[i % ring.length] = Array.from({ length: 20 }, (_, j) => i + "-" + j + "y".repeat(80));
    if (i % 1000 === 0) peak = Math.max(peak, process.memoryUsage().heapTotal);
  }
  process.stdout.write(String(live.length > 0 ? peak : 0));
`;

function peakHeapBytes(percent: number): number {
  const output = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", child(percent)], { encoding: "utf8", timeout: 50_000, env: { ...process.env, NODE_OPTIONS: "" } });
  return Number(output);
}

describe("applyHeapGrowth", () => {
  it("keeps the heap closer to what is live than V8's own choice does", () => {
    const v8Default = peakHeapBytes(0);
    const tight = peakHeapBytes(10);
    expect(v8Default).toBeGreaterThan(0);
    expect(tight).toBeLessThan(v8Default * 0.75);
  });
});
