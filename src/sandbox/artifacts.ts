/**
 * Compiled test contracts, loaded from the committed artifacts in contracts/build/ (written by
 * scripts/build-contracts.ts), so the sandbox runs without solc.
 */
import { readFileSync } from "node:fs";
import type { Abi, Hex } from "viem";

export interface ContractArtifact {
  abi: Abi;
  bytecode: Hex;
  deployedBytecode: Hex;
}

function loadArtifact(contractName: string): ContractArtifact {
  const url = new URL(`../../contracts/build/${contractName}.json`, import.meta.url);
  let parsed: { abi: Abi; bytecode: Hex; deployedBytecode: Hex };
  try {
    parsed = JSON.parse(readFileSync(url, "utf8")) as typeof parsed;
  } catch (error) {
    throw new Error(
      `cannot load contract artifact ${url.pathname} (run \`npm run contracts:build\`): ${String(error)}`,
    );
  }
  return { abi: parsed.abi, bytecode: parsed.bytecode, deployedBytecode: parsed.deployedBytecode };
}

/** USDC-like EIP-3009 token; install with anvil_setCode + initialize (see deploy.ts). */
export const testUsdcArtifact: ContractArtifact = loadArtifact("TestUSDC");

/** Multicall3-compatible aggregator; stateless, install with anvil_setCode at the canonical address. */
export const multicall3Artifact: ContractArtifact = loadArtifact("Multicall3");

/**
 * ERC-1271 wallet; deploy normally (constructor arg: owner). Its `owner` is an immutable, so its
 * deployedBytecode is NOT usable with anvil_setCode.
 */
export const smartWalletArtifact: ContractArtifact = loadArtifact("SmartWallet");

/** CREATE2 factory for SmartWallet: deploy(owner, salt), predict(owner, salt). */
export const smartWalletFactoryArtifact: ContractArtifact = loadArtifact("SmartWalletFactory");
