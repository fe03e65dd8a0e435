/**
 * Compiled test contracts, loaded from the committed artifacts in contracts/build/ (written by
 * scripts/build-contracts.ts), so the sandbox runs without solc.
 */
import { loadArtifact, type ContractArtifact } from "../contracts/artifacts.js";

export type { ContractArtifact };

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

/**
 * SignatureTransfer half of Uniswap Permit2; no constructor, no immutables (domain separator
 * computed per call), so install with anvil_setCode at the canonical address.
 */
export const permit2Artifact: ContractArtifact = loadArtifact("Permit2");

/** x402's exact Permit2 proxy; PERMIT2 is a constant, so install with anvil_setCode at its canonical address. */
export const x402ExactPermit2ProxyArtifact: ContractArtifact = loadArtifact("X402ExactPermit2Proxy");

/** x402's upto Permit2 proxy; PERMIT2 is a constant, so install with anvil_setCode at its canonical address. */
export const x402UptoPermit2ProxyArtifact: ContractArtifact = loadArtifact("X402UptoPermit2Proxy");
