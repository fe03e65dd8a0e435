import { concat, decodeFunctionData, encodeFunctionData, getAddress, getContractAddress, hexToBigInt, isAddressEqual, numberToHex, parseAbi, size, slice, zeroHash, type Address, type Hex } from "viem";
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

/** The packed framing's fields (BatchSettler.sol): a 2-byte head (flag ‖ 15-bit length), a 4-byte gas limit, the target. */
const gasLimitMax = 2n ** 32n - 1n;
/** The head's low 15 bits: a call's data length at most, and the mask that reads it. */
const callDataBytesMax = 2 ** 15 - 1;
const sameTargetFlag = 0x8000;
/** Head (2) + gas limit (4): what precedes the optional target. */
const headAndGasLimitBytes = 6;
const addressBytes = 20;

/**
 * `settle(packed)`: each call as head (2 bytes: "same target as the call before" ‖ 15-bit length)
 * ‖ gasLimit (4) ‖ target (20, left out when it is the previous call's) ‖ callData, back to back.
 * Packed rather than an ABI array of structs, which costs ~2k gas a call in zero-padded framing
 * and decoding, and the token's address written once for a run of calls to it (BatchSettler.sol).
 * The call data is carried as it is: the bytes each call was simulated and estimated with are the
 * bytes the token receives.
 */
export function encodeBatchSettle(calls: readonly GasLimitedCall[]): Hex {
  const packed = concat(
    calls.flatMap((call, index) => {
      if (call.gasLimit < 0n || call.gasLimit > gasLimitMax) throw new RangeError(`batch call ${index}: gas limit ${call.gasLimit} does not fit in 4 bytes`);
      const length = size(call.callData);
      if (length > callDataBytesMax) throw new RangeError(`batch call ${index}: ${length} bytes of call data, above ${callDataBytesMax}`);
      const sameTarget = index > 0 && isAddressEqual(call.target, calls[index - 1]!.target);
      const head = numberToHex(length | (sameTarget ? sameTargetFlag : 0), { size: 2 });
      return [head, numberToHex(call.gasLimit, { size: 4 }), ...(sameTarget ? [] : [call.target]), call.callData];
    }),
  );
  return encodeFunctionData({ abi: batchSettlerAbi, functionName: "settle", args: [packed] });
}

/** The calls of a `settle` transaction's input (anything after its argument, a builder-code suffix, is ignored as the contract does). */
export function decodeBatchSettle(data: Hex): GasLimitedCall[] {
  const { args } = decodeFunctionData({ abi: batchSettlerAbi, data });
  const [packed] = args;
  const total = size(packed);
  const calls: GasLimitedCall[] = [];
  for (let cursor = 0; cursor < total; ) {
    const index = calls.length;
    if (cursor + headAndGasLimitBytes > total) throw new Error(`batch call ${index}: truncated framing`);
    const head = Number(hexToBigInt(slice(packed, cursor, cursor + 2)));
    const gasLimit = hexToBigInt(slice(packed, cursor + 2, cursor + headAndGasLimitBytes));
    cursor += headAndGasLimitBytes;
    let target: Address;
    if (head & sameTargetFlag) {
      if (index === 0) throw new Error("batch call 0: no target to repeat");
      target = calls[index - 1]!.target;
    } else {
      if (cursor + addressBytes > total) throw new Error(`batch call ${index}: truncated framing`);
      target = getAddress(slice(packed, cursor, cursor + addressBytes));
      cursor += addressBytes;
    }
    const length = head & callDataBytesMax;
    if (cursor + length > total) throw new Error(`batch call ${index}: truncated call data`);
    calls.push({ target, gasLimit, callData: length === 0 ? "0x" : slice(packed, cursor, cursor + length) });
    cursor += length;
  }
  return calls;
}

/** The transaction that deploys BatchSettler at batchSettlerAddress (the proxy takes salt ‖ creation code). */
export function batchSettlerDeployment(): { to: Address; data: Hex } {
  return { to: deterministicDeployerAddress, data: concat([deploymentSalt, batchSettlerArtifact.bytecode]) };
}
