import type { Address, PublicClient } from "viem";

/**
 * Whether `address` has code (a contract, or an EIP-7702 delegated key). viem answers `undefined`
 * for an address without code, which is easy to mistake for "not known"; a failed read throws.
 * Callers decide what an RPC fault means for them.
 */
export async function hasCode(client: PublicClient, address: Address): Promise<boolean> {
  const code = await client.getCode({ address });
  return code !== undefined && code !== "0x";
}
