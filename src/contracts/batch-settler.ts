import { concat, decodeFunctionData, encodeFunctionData, getAddress, getContractAddress, hexToBigInt, numberToHex, parseAbi, size, slice, zeroHash, type Address, type Hex } from "viem";
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
  "function settle(bytes packed) returns (uint256 failures)",
  "event CallFailed(uint256 indexed index, bool skipped)",
  "error MalformedBatch(uint256 index)",
]);

export interface GasLimitedCall {
  target: Address;
  /** The most gas this call may use; it is skipped when less is left. */
  gasLimit: bigint;
  callData: Hex;
}

/** The packed framing's field widths (BatchSettler.sol): gasLimit 4 bytes, length 2 bytes. */
const gasLimitMax = 2n ** 32n - 1n;
const callDataBytesMax = 2 ** 16 - 1;
const headerBytes = 26;

/**
 * `settle(packed)`: each call as target (20 bytes) ‖ gasLimit (4) ‖ length (2) ‖ callData, back to
 * back. Packed rather than an ABI array of structs, which costs ~2k gas a call in zero-padded
 * framing and decoding (BatchSettler.sol). The call data is carried as it is: the bytes each call
 * was simulated and estimated with are the bytes the token receives.
 */
export function encodeBatchSettle(calls: readonly GasLimitedCall[]): Hex {
  const packed = concat(
    calls.flatMap((call, index) => {
      if (call.gasLimit < 0n || call.gasLimit > gasLimitMax) throw new RangeError(`batch call ${index}: gas limit ${call.gasLimit} does not fit in 4 bytes`);
      const length = size(call.callData);
      if (length > callDataBytesMax) throw new RangeError(`batch call ${index}: ${length} bytes of call data, above ${callDataBytesMax}`);
      return [call.target, numberToHex(call.gasLimit, { size: 4 }), numberToHex(length, { size: 2 }), call.callData];
    }),
  );
  return encodeFunctionData({ abi: batchSettlerAbi, functionName: "settle", args: [packed] });
}

/** The calls of a `settle` transaction's input (anything after its argument, a builder-code suffix, is ignored as the contract does). */
export function decodeBatchSettle(data: Hex): GasLimitedCall[] {
  const { args } = decodeFunctionData({ abi: batchSettlerAbi, data });
  const [packed] = args;
  const calls: GasLimitedCall[] = [];
  for (let cursor = 0; cursor < size(packed); ) {
    if (cursor + headerBytes > size(packed)) throw new Error(`batch call ${calls.length}: truncated framing`);
    const length = Number(hexToBigInt(slice(packed, cursor + 24, cursor + headerBytes)));
    if (cursor + headerBytes + length > size(packed)) throw new Error(`batch call ${calls.length}: truncated call data`);
    calls.push({
      target: getAddress(slice(packed, cursor, cursor + 20)),
      gasLimit: hexToBigInt(slice(packed, cursor + 20, cursor + 24)),
      callData: length === 0 ? "0x" : slice(packed, cursor + headerBytes, cursor + headerBytes + length),
    });
    cursor += headerBytes + length;
  }
  return calls;
}

/** The transaction that deploys BatchSettler at batchSettlerAddress (the proxy takes salt ‖ creation code). */
export function batchSettlerDeployment(): { to: Address; data: Hex } {
  return { to: deterministicDeployerAddress, data: concat([deploymentSalt, batchSettlerArtifact.bytecode]) };
}
