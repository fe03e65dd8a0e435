/**
 * The installed x402 SDKs' own TypeScript, read from their source maps (`sourcesContent`): what the
 * tests compare this facilitator with when a package exports no runtime value for it (2.27 exports
 * no reason-code list and keeps HTTPFacilitatorClient's zod schemas private).
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);

/** The package's root directory and version (`name` as in package.json, e.g. "@x402/evm"). */
export function installedPackage(name: string, entry: string): { root: string; version: string } {
  let dir = path.dirname(require.resolve(entry));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string; version: string };
      if (manifest.name === name) return { root: dir, version: manifest.version };
    } catch {
      // no package.json here: keep going up
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`package ${name} not found above ${entry}`);
    dir = parent;
  }
}

/**
 * The TypeScript source of `sourcePath` (e.g. "src/exact/facilitator/errors.ts") as embedded in the
 * package's ESM source maps. Throws when no map holds it, so a renamed file fails the test loudly.
 */
export function sdkSource(name: string, entry: string, sourcePath: string): string {
  const { root } = installedPackage(name, entry);
  for (const mapFile of mapFiles(path.join(root, "dist", "esm"))) {
    const map = JSON.parse(readFileSync(mapFile, "utf8")) as { sources: string[]; sourcesContent?: (string | null)[] };
    const index = map.sources.findIndex((source) => path.normalize(path.join(path.dirname(mapFile), source)).endsWith(path.normalize(sourcePath)));
    const content = index >= 0 ? map.sourcesContent?.[index] : undefined;
    if (content) return content;
  }
  throw new Error(`${name}: no source map holds ${sourcePath}`);
}

function mapFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return mapFiles(full);
    return entry.name.endsWith(".map") ? [full] : [];
  });
}

/** `export const ErrX = "code";` (the value may be on the next line) → { ErrX: "code" }. */
export function stringConstants(source: string): Record<string, string> {
  return Object.fromEntries([...source.matchAll(/export const (\w+)\s*=\s*"([^"]+)"/g)].map((match) => [match[1]!, match[2]!]));
}

/**
 * The fields of `const <name> ... = z.object({ ... })` in `source`, first level only, each with
 * whether the schema lets it be absent (`.optional()`, `.nullish()` or `.default(...)`).
 */
export function zodObjectFields(source: string, name: string): { key: string; optional: boolean }[] {
  const match = new RegExp(`const ${name}\\b[^=]*=\\s*z\\s*\\.object\\(\\{`).exec(source);
  if (!match) throw new Error(`no z.object named ${name}`);
  const fields: { key: string; optional: boolean }[] = [];
  let depth = 1;
  let text = "";
  let key: string | undefined;
  const finish = () => {
    if (key !== undefined) fields.push({ key, optional: /\.(optional|nullish|default)\(/.test(text) });
    key = undefined;
    text = "";
  };
  for (let index = match.index + match[0].length; index < source.length; index += 1) {
    const char = source[index]!;
    if ("({[".includes(char)) depth += 1;
    if (")}]".includes(char)) depth -= 1;
    if (depth === 0) {
      finish();
      return fields;
    }
    if (depth === 1 && key === undefined && char === ":") {
      key = text.trim();
      text = "";
    } else if (depth === 1 && char === ",") {
      finish();
    } else {
      text += char;
    }
  }
  throw new Error(`unterminated z.object ${name}`);
}
