import { hashTypedData, zeroAddress, type Hex } from "viem";
import { permit2Address } from "../contracts/permit2.js";
import type { Permit2Authorization, Scheme } from "../protocol/types.js";
import { LruCache } from "../util/lru-cache.js";

/**
 * The EIP-712 types a Permit2 payer signs for x402's proxies (@x402/evm 2.27 constants.ts
 * permit2WitnessTypes / uptoPermit2WitnessTypes). Permit2 hashes msg.sender as `spender`, so the
 * signature is good for that proxy only; the witness is the proxy's (upto adds `facilitator`).
 */
export const exactPermit2Types = {
  PermitWitnessTransferFrom: [
    { name: "permitted", type: "TokenPermissions" },
    { name: "spender", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
    { name: "witness", type: "Witness" },
  ],
  TokenPermissions: [
    { name: "token", type: "address" },
    { name: "amount", type: "uint256" },
  ],
  Witness: [
    { name: "to", type: "address" },
    { name: "validAfter", type: "uint256" },
  ],
} as const;

export const uptoPermit2Types = {
  ...exactPermit2Types,
  Witness: [
    { name: "to", type: "address" },
    { name: "facilitator", type: "address" },
    { name: "validAfter", type: "uint256" },
  ],
} as const;

/** Permit2's domain: name "Permit2", no version (src/EIP712.sol). */
export function permit2Domain(chainId: number) {
  return { name: "Permit2", chainId, verifyingContract: permit2Address } as const;
}

/** The typed data of a permit as the 2.27 client signs it for `scheme`'s proxy. */
export function permit2TypedData(chainId: number, permit: Permit2Authorization, scheme: Scheme) {
  return scheme === "upto" ? uptoTypedData(chainId, permit) : exactTypedData(chainId, permit);
}

function messageOf(permit: Permit2Authorization) {
  return {
    permitted: { token: permit.token, amount: permit.permittedAtomic },
    spender: permit.spender,
    nonce: permit.nonce,
    deadline: permit.deadlineSeconds,
  };
}

function uptoTypedData(chainId: number, permit: Permit2Authorization) {
  return {
    domain: permit2Domain(chainId),
    types: uptoPermit2Types,
    primaryType: "PermitWitnessTransferFrom" as const,
    message: {
      ...messageOf(permit),
      witness: { to: permit.witness.to, facilitator: permit.witness.facilitator ?? zeroAddress, validAfter: permit.witness.validAfterSeconds },
    },
  };
}

function exactTypedData(chainId: number, permit: Permit2Authorization) {
  return {
    domain: permit2Domain(chainId),
    types: exactPermit2Types,
    primaryType: "PermitWitnessTransferFrom" as const,
    message: { ...messageOf(permit), witness: { to: permit.witness.to, validAfter: permit.witness.validAfterSeconds } },
  };
}

/** Digests already computed: the same permit verified and then settled is hashed once. */
const digestsMax = 10_000;
const digests = new LruCache<string, Hex>(digestsMax);

/**
 * The EIP-712 digest Permit2 checks the signature against (what the payer signed): it names the
 * payment independently of the signature bytes.
 */
export function permit2Digest(chainId: number, permit: Permit2Authorization, scheme: Scheme): Hex {
  const key = `${chainId}|${scheme}|${permit.owner}|${permit.token}|${permit.permittedAtomic}|${permit.spender}|${permit.nonce}|${permit.deadlineSeconds}|${permit.witness.to}|${permit.witness.facilitator ?? ""}|${permit.witness.validAfterSeconds}`;
  let digest = digests.get(key);
  if (digest === undefined) {
    const typedData = permit2TypedData(chainId, permit, scheme);
    // hashTypedData's types are checked per call: one call per witness type.
    digest = typedData.types === uptoPermit2Types ? hashTypedData(typedData as ReturnType<typeof uptoTypedData>) : hashTypedData(typedData as ReturnType<typeof exactTypedData>);
    digests.set(key, digest);
  }
  return digest;
}
