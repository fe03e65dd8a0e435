import { concat, encodeFunctionData, getContractAddress, parseAbi, zeroHash, type Address, type Hex } from "viem";
import { loadArtifact } from "./artifacts.js";

/**
 * BatchSettler (contracts/BatchSettler.sol): several token calls in one transaction, each with its
 * own gas limit, so one payer's code cannot burn a batch's gas and sink its neighbours (Multicall3's
 * aggregate3 forwards all remaining gas to every call).
 *
 * It lives at one deterministic address on every chain: CREATE2 through the deterministic-deployment
 * proxy (present on Base, Base Sepolia, most EVM chains, and every Anvil), salt 0, the committed
 * creation code. `x402-facilitator batch-settler deploy` puts it on a chain; tests and the sandbox
 * install it directly.
 */
export const batchSettlerArtifact = loadArtifact("BatchSettler");

export const deterministicDeployerAddress: Address = "0x4e59b44847b379578588920ca78fbf26c0b4956c";
const deploymentSalt: Hex = zeroHash;

export const batchSettlerAddress: Address = getContractAddress({
  opcode: "CREATE2",
  from: deterministicDeployerAddress,
  salt: deploymentSalt,
  bytecode: batchSettlerArtifact.bytecode,
});

export const batchSettlerAbi = parseAbi([
  "struct Call { address target; uint256 gasLimit; bytes callData; }",
  "function settle(Call[] calls) returns (uint256 failures)",
  "event CallFailed(uint256 indexed index, bool skipped)",
]);

export interface GasLimitedCall {
  target: Address;
  /** The most gas this call may use; it is skipped when less is left. */
  gasLimit: bigint;
  callData: Hex;
}

export function encodeBatchSettle(calls: readonly GasLimitedCall[]): Hex {
  return encodeFunctionData({ abi: batchSettlerAbi, functionName: "settle", args: [calls] });
}

/** The transaction that deploys BatchSettler at batchSettlerAddress (the proxy takes salt ‖ creation code). */
export function batchSettlerDeployment(): { to: Address; data: Hex } {
  return { to: deterministicDeployerAddress, data: concat([deploymentSalt, batchSettlerArtifact.bytecode]) };
}
