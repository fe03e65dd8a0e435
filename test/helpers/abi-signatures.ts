import { toEventSignature, toFunctionSignature, type Abi, type AbiEvent, type AbiFunction } from "viem";

type AbiError = Extract<Abi[number], { type: "error" }>;

/** "function f(uint256)", "error E(uint256)", "event V(address)" for every item of an ABI: equal signatures mean equal selectors. */
export function abiSignatures(abi: Abi): string[] {
  return abi.flatMap((item) => {
    if (item.type === "function") return [`function ${toFunctionSignature(item as AbiFunction)}`];
    if (item.type === "event") return [`event ${toEventSignature(item as AbiEvent)}`];
    if (item.type === "error") return [`error ${toFunctionSignature({ ...(item as AbiError), type: "function", outputs: [], stateMutability: "pure" } as AbiFunction)}`];
    return [];
  });
}
