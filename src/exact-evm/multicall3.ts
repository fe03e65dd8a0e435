import { decodeFunctionResult, encodeFunctionData, parseAbi, type Address, type Hex } from "viem";

/** Canonical Multicall3: present on Base and Base Sepolia; the sandbox and tests install ours there. */
export const multicall3Address: Address = "0xcA11bde05977b3631167028862bE2a173976CA11";

export const multicall3Abi = parseAbi([
  "struct Call3 { address target; bool allowFailure; bytes callData; }",
  "struct Result { bool success; bytes returnData; }",
  "function aggregate3(Call3[] calls) payable returns (Result[] returnData)",
]);

export interface Call3 {
  target: Address;
  allowFailure: boolean;
  callData: Hex;
}

export function encodeAggregate3(calls: readonly Call3[]): Hex {
  return encodeFunctionData({ abi: multicall3Abi, functionName: "aggregate3", args: [calls] });
}

export function decodeAggregate3(data: Hex): ReadonlyArray<{ success: boolean; returnData: Hex }> {
  return decodeFunctionResult({ abi: multicall3Abi, functionName: "aggregate3", data });
}
