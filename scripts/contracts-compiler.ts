/**
 * Compiles contracts/*.sol with solc-js and fingerprints the inputs.
 *
 * The fingerprint (`sourceHash`) covers every source that takes part in compilation (our files plus
 * the transitively imported @openzeppelin files), the solc version and the compiler settings. It is
 * stored in every artifact, so a fast test can tell the committed artifacts are current without
 * loading solc (which costs seconds).
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface Artifact {
  contractName: string;
  abi: unknown[];
  bytecode: `0x${string}`;
  deployedBytecode: `0x${string}`;
  sourceHash: string;
}

export const repoRoot: string = fileURLToPath(new URL("..", import.meta.url));
export const contractsDir: string = path.join(repoRoot, "contracts");
export const buildDir: string = path.join(contractsDir, "build");

const requireFromRepo = createRequire(path.join(repoRoot, "package.json"));

/** Compiler settings; part of the fingerprint, so any change here invalidates the artifacts. */
export const compilerSettings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  // No metadata hash in the bytecode: BatchSettler's CREATE2 address is a hash of its creation
  // code, and the metadata would move it with every edit of a comment or a file path.
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: {
    "*": {
      "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"],
      "": ["ast"],
    },
  },
} as const;

/** Version from solc's package.json: reading it is instant, unlike loading the compiler. */
export function solcVersion(): string {
  const pkg = JSON.parse(readFileSync(requireFromRepo.resolve("solc/package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/** Subfolders of contracts/ that hold sources too: test-only contracts (attackers) live in test/. */
const sourceSubdirs = ["", "test"];

/** Source unit names of our own contracts ("contracts/X.sol", "contracts/test/Y.sol"), sorted for a stable order. */
export function ownSourceUnits(): string[] {
  return sourceSubdirs
    .flatMap((subdir) =>
      readdirSync(path.join(contractsDir, subdir))
        .filter((file) => file.endsWith(".sol"))
        .map((file) => (subdir ? `contracts/${subdir}/${file}` : `contracts/${file}`)),
    )
    .sort();
}

/** Maps a solc source unit name to a file: "contracts/..." in the repo, packages in node_modules. */
export function resolveSourceUnit(unitName: string): string {
  if (unitName.startsWith("contracts/")) return path.join(repoRoot, unitName);
  const packageName = unitName.startsWith("@") ? unitName.split("/").slice(0, 2).join("/") : unitName.split("/")[0]!;
  const packageDir = path.dirname(requireFromRepo.resolve(`${packageName}/package.json`));
  return path.join(packageDir, unitName.slice(packageName.length + 1));
}

const IMPORT_PATTERN = /^\s*import\s+(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm;

/**
 * All source units reachable from our contracts, with contents. Relative imports are normalised
 * against the importing unit the same way solc does, so this is exactly what the compiler reads.
 */
export function collectSources(): Map<string, string> {
  const sources = new Map<string, string>();
  const pending = ownSourceUnits();
  while (pending.length > 0) {
    const unit = pending.pop()!;
    if (sources.has(unit)) continue;
    const content = readFileSync(resolveSourceUnit(unit), "utf8");
    sources.set(unit, content);
    for (const match of content.matchAll(IMPORT_PATTERN)) {
      const imported = match[1]!;
      pending.push(imported.startsWith(".") ? path.posix.normalize(path.posix.join(path.posix.dirname(unit), imported)) : imported);
    }
  }
  return new Map([...sources.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** sha256 over (unit name, content) of every source + solc version + settings, hex without 0x. */
export function sourceHash(sources: Map<string, string> = collectSources()): string {
  const hash = createHash("sha256");
  for (const [unit, content] of sources) {
    // CRLF-normalised so a Windows checkout (autocrlf) does not report the artifacts as stale.
    hash.update(unit).update("\0").update(content.replace(/\r\n/g, "\n")).update("\0");
  }
  hash.update(`solc@${solcVersion()}\0`);
  hash.update(JSON.stringify(compilerSettings));
  return hash.digest("hex");
}

interface SolcError {
  severity: "error" | "warning" | "info";
  formattedMessage: string;
}

interface SolcAstNode {
  nodeType: string;
  name?: string;
  contractKind?: string;
  abstract?: boolean;
}

interface SolcOutput {
  errors?: SolcError[];
  sources?: Record<string, { ast: { nodes: SolcAstNode[] } }>;
  contracts?: Record<
    string,
    Record<string, { abi: unknown[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>
  >;
}

/**
 * Compiles every deployable contract (not interfaces, libraries or abstract contracts) declared in
 * contracts/*.sol. Throws with solc's messages on any compile error.
 */
export async function compileContracts(
  options: { onWarning?: (formattedMessage: string) => void } = {},
): Promise<Record<string, Artifact>> {
  const sources = collectSources();
  const hash = sourceHash(sources);
  // Imported lazily: loading soljson takes about a second and only the build needs it.
  const solc = (await import("solc")).default;

  const input = {
    language: "Solidity",
    sources: Object.fromEntries([...sources].map(([unit, content]) => [unit, { content }])),
    settings: compilerSettings,
  };
  // Every reachable source is already in `input`; the callback only covers a regex miss.
  const findImports = (unitName: string): { contents: string } | { error: string } => {
    try {
      return { contents: readFileSync(resolveSourceUnit(unitName), "utf8") };
    } catch (error) {
      return { error: `cannot read ${unitName}: ${String(error)}` };
    }
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports })) as SolcOutput;

  for (const warning of (output.errors ?? []).filter((e) => e.severity === "warning")) {
    options.onWarning?.(warning.formattedMessage);
  }
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) {
    throw new Error(`solc failed:\n${errors.map((e) => e.formattedMessage).join("\n")}`);
  }

  const artifacts: Record<string, Artifact> = {};
  for (const unit of ownSourceUnits()) {
    const deployable = (output.sources?.[unit]?.ast.nodes ?? []).filter(
      (node) => node.nodeType === "ContractDefinition" && node.contractKind === "contract" && !node.abstract,
    );
    for (const node of deployable) {
      const name = node.name!;
      const compiled = output.contracts?.[unit]?.[name];
      if (!compiled) throw new Error(`solc produced no output for ${unit}:${name}`);
      if (artifacts[name]) throw new Error(`duplicate contract name ${name}`);
      artifacts[name] = {
        contractName: name,
        abi: compiled.abi,
        bytecode: `0x${compiled.evm.bytecode.object}`,
        deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
        sourceHash: hash,
      };
    }
  }
  return artifacts;
}
