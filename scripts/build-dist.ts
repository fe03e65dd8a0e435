/**
 * `npm run build` (tsc -b tsconfig.build.json: src/ → dist/) for code that needs dist/ current
 * before it spawns the compiled CLI: the test suite's global setup and the benchmark. tsc -b is
 * incremental: when no input changed since the last build it only compares timestamps (~0.3 s).
 */
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** The compiled CLI: what `npm start`, the bin and the Docker image run. */
export const distCliEntry = path.join(repoRoot, "dist/cli/index.js");

export interface BuildResult {
  ok: boolean;
  /** tsc's diagnostics (empty when ok). */
  output: string;
  elapsedMs: number;
}

/** Builds dist/ from src/ as `npm run build` does. Never throws for type errors: they are in `output`. */
export function buildDist(): BuildResult {
  const startedAt = performance.now();
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const run = spawnSync(process.execPath, [tsc, "-b", "tsconfig.build.json"], { cwd: repoRoot, encoding: "utf8" });
  if (run.error) throw run.error;
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}`.trim(), elapsedMs: Math.round(performance.now() - startedAt) };
}

