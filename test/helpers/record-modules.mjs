/**
 * `node --import ./test/helpers/record-modules.mjs …` records every module the process loads, for
 * test/e2e/production-build.test.ts: ES modules through a resolve hook (module.register, which runs
 * on the loader thread and appends each resolved URL to the file as it goes), CommonJS modules
 * (pg and its dependencies, required by other CommonJS code, which the hook does not see) from
 * require.cache when the process exits. Plain JavaScript: it is loaded without tsx.
 *
 * Environment: X402_RECORD_MODULES — the file; one URL or path per line.
 */
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";

const file = process.env.X402_RECORD_MODULES;
if (!file) throw new Error("record-modules.mjs: X402_RECORD_MODULES is not set");

const hooks = `
import { appendFileSync } from "node:fs";
let file;
export function initialize(data) { file = data.file; }
export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  appendFileSync(file, resolved.url + "\\n");
  return resolved;
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`, { data: { file } });

process.on("exit", () => {
  const required = Object.keys(createRequire(import.meta.url).cache);
  appendFileSync(file, required.map((entry) => `${entry}\n`).join(""));
});
