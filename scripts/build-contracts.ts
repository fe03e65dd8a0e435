/**
 * Compiles contracts/*.sol and writes contracts/build/<ContractName>.json.
 * The artifacts are committed: the zero-config sandbox loads them at runtime without solc.
 *
 * Usage: npx tsx scripts/build-contracts.ts
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { buildDir, compileContracts, repoRoot } from "./contracts-compiler.js";

async function main(): Promise<void> {
  const startedAtMs = Date.now();
  const artifacts = await compileContracts({ onWarning: (message) => console.warn(message) });

  mkdirSync(buildDir, { recursive: true });
  const written = new Set<string>();
  for (const artifact of Object.values(artifacts)) {
    const file = `${artifact.contractName}.json`;
    writeFileSync(path.join(buildDir, file), `${JSON.stringify(artifact, null, 2)}\n`);
    written.add(file);
  }
  // Drop artifacts of contracts that no longer exist, so stale files cannot be loaded by mistake.
  for (const file of readdirSync(buildDir)) {
    if (file.endsWith(".json") && !written.has(file)) rmSync(path.join(buildDir, file));
  }

  const elapsedMs = Date.now() - startedAtMs;
  const names = [...written].sort().join(", ");
  console.log(`compiled ${written.size} contracts in ${elapsedMs} ms -> ${path.relative(repoRoot, buildDir)}/: ${names}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
