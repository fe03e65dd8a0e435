#!/usr/bin/env node
// Runs the compiled CLI: dist/ is built from src/ by `npm run build`, which `npm ci` runs (`prepare`).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/index.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("x402-facilitator: dist/ is not built; run `npm run build` (npm ci and npm install run it)\n");
  process.exit(1);
}
await import(entry.href);
