/**
 * Compiled contracts, loaded from the committed artifacts in contracts/build/ (written by
 * scripts/build-contracts.ts), so nothing needs solc at run time.
 */
import { readFileSync } from "node:fs";
import type { Abi, Hex } from "viem";

export interface ContractArtifact {
  abi: Abi;
  bytecode: Hex;
  deployedBytecode: Hex;
}

export function loadArtifact(contractName: string): ContractArtifact {
  const url = new URL(`../../contracts/build/${contractName}.json`, import.meta.url);
  let parsed: { abi: Abi; bytecode: Hex; deployedBytecode: Hex };
  try {
    parsed = JSON.parse(readFileSync(url, "utf8")) as typeof parsed;
  } catch (error) {
    throw new Error(`cannot load contract artifact ${url.pathname} (run \`npm run contracts:build\`): ${String(error)}`);
  }
  return { abi: parsed.abi, bytecode: parsed.bytecode, deployedBytecode: parsed.deployedBytecode };
}
