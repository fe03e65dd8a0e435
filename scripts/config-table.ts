/**
 * The README's limits table, generated from src/limits.ts so the documentation cannot drift from
 * the code (test/unit/config.test.ts fails when README.md differs from what this prints).
 *
 *   npm run config:table            # rewrites the table in README.md
 *   tsx scripts/config-table.ts --check   # exits 1 when README.md is stale
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { limitNames, limitSpecs, type LimitSpec } from "../src/limits.js";

export const tableStart = "<!-- limits table: generated from src/limits.ts by `npm run config:table`; do not edit by hand -->";
export const tableEnd = "<!-- end of limits table -->";
export const readmePath = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "README.md");

/** The table's lines, markers included. */
export function limitsTable(): string[] {
  const rows = limitNames.map((name) => {
    const spec: LimitSpec = limitSpecs[name];
    return `| \`${spec.env}\` | ${defaultOf(spec)} | ${rangeOf(spec)} | ${spec.doc} |`;
  });
  return [tableStart, "| variable | default | range | meaning |", "|---|---|---|---|", ...rows, tableEnd];
}

function defaultOf(spec: LimitSpec): string {
  if (spec.unit === "addresses") return spec.default.length === 0 ? "none" : `\`${spec.default.join(",")}\``;
  return `\`${spec.default}\``;
}

function rangeOf(spec: LimitSpec): string {
  if (spec.unit === "addresses") return `at most ${spec.itemsMax} addresses`;
  return `\`${bound(spec.min)}\`–\`${bound(spec.max)}\` ${spec.unit}`;
}

/** 10^30 rather than 31 digits. */
function bound(value: number | bigint): string {
  const text = String(value);
  return /^10{9,}$/.test(text) ? `10^${text.length - 1}` : text;
}

export const envStart = "# --- limits: generated from src/limits.ts by `npm run config:table`; do not edit by hand ---";
export const envEnd = "# --- end of limits ---";
export const envExamplePath = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", ".env.example");

/** .env.example's limits section (markers included): each limit's doc, range, and its default commented out. */
export function envExampleLimits(): string[] {
  const lines = [envStart];
  for (const name of limitNames) {
    const spec: LimitSpec = limitSpecs[name];
    const range = spec.unit === "addresses" ? `at most ${spec.itemsMax} addresses` : `${bound(spec.min)}–${bound(spec.max)} ${spec.unit}`;
    const value = spec.unit === "addresses" ? spec.default.join(",") : String(spec.default);
    lines.push("", `# ${spec.doc.replace(/`/g, "")} (${range})`, `# ${spec.env}=${value}`);
  }
  return [...lines, "", envEnd];
}

/** The section of `text` between two marker lines (markers included), or undefined. */
export function markedSection(text: string, start: string, end: string): string[] | undefined {
  const lines = text.split("\n");
  const from = lines.indexOf(start);
  const to = lines.indexOf(end);
  return from === -1 || to < from ? undefined : lines.slice(from, to + 1);
}

/** README.md's current table (markers included), or undefined when the markers are missing. */
export function readmeTable(readme: string): string[] | undefined {
  const lines = readme.split("\n");
  const start = lines.indexOf(tableStart);
  const end = lines.indexOf(tableEnd);
  return start === -1 || end < start ? undefined : lines.slice(start, end + 1);
}

function main(): void {
  const targets = [
    { file: readmePath, name: "README.md's limits table", start: tableStart, end: tableEnd, generated: limitsTable() },
    { file: envExamplePath, name: ".env.example's limits section", start: envStart, end: envEnd, generated: envExampleLimits() },
  ];
  for (const target of targets) {
    const text = readFileSync(target.file, "utf8");
    const current = markedSection(text, target.start, target.end);
    if (!current) throw new Error(`${target.file} has no section between "${target.start}" and "${target.end}"`);
    if (process.argv.includes("--check")) {
      if (current.join("\n") !== target.generated.join("\n")) {
        console.error(`${target.name} is stale: run npm run config:table`);
        process.exitCode = 1;
      }
      continue;
    }
    writeFileSync(target.file, text.replace(current.join("\n"), () => target.generated.join("\n")));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
