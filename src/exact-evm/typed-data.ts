import { concat, domainSeparator, encodeAbiParameters, keccak256, toHex, type Address, type Hex, type TypedDataDomain } from "viem";
import type { Authorization } from "../protocol/types.js";
import { approximateStringBytes, LruCache, lruEntryOverheadBytes } from "../util/lru-cache.js";
import { keccak256Fast } from "./keccak-fast.js";

export const transferWithAuthorizationTypes = {
  TransferWithAuthorization: [
    { name: "from", type: "address" },
    { name: "to", type: "address" },
    { name: "value", type: "uint256" },
    { name: "validAfter", type: "uint256" },
    { name: "validBefore", type: "uint256" },
    { name: "nonce", type: "bytes32" },
  ],
} as const;

export interface Eip712TokenDomain {
  name: string;
  version: string;
  chainId: number;
  verifyingContract: Address;
}

export function transferAuthorizationTypedData(domain: Eip712TokenDomain, authorization: Authorization) {
  return {
    domain: domain satisfies TypedDataDomain,
    types: transferWithAuthorizationTypes,
    primaryType: "TransferWithAuthorization" as const,
    message: {
      from: authorization.from,
      to: authorization.to,
      value: authorization.valueAtomic,
      validAfter: authorization.validAfterSeconds,
      validBefore: authorization.validBeforeSeconds,
      nonce: authorization.nonce,
    },
  };
}

/** keccak256 of the EIP-712 type string; what hashStruct puts first. */
export const transferWithAuthorizationTypeHash = keccak256(
  toHex("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"),
);

const structParameters = [
  { type: "bytes32" },
  { type: "address" },
  { type: "address" },
  { type: "uint256" },
  { type: "uint256" },
  { type: "uint256" },
  { type: "bytes32" },
] as const;

/**
 * Domain separators by (chainId, verifyingContract, name, version). Domains come from the
 * configured assets, so a handful exist; the bound only guards against a surprise.
 */
const domainSeparatorEntriesMax = 256;
const domainSeparators = new LruCache<string, Hex>(domainSeparatorEntriesMax);

/** JSON keeps the key unambiguous whatever characters the name or version hold. */
function domainKey(domain: Eip712TokenDomain): string {
  let key = domainKeys.get(domain);
  if (key === undefined) {
    key = JSON.stringify([domain.chainId, domain.verifyingContract.toLowerCase(), domain.name, domain.version]);
    domainKeys.set(domain, key);
  }
  return key;
}

/** Per domain object: resolve.ts hands out one per configured asset, so the JSON is built once, not per payment. */
const domainKeys = new WeakMap<Eip712TokenDomain, string>();

export function cachedDomainSeparator(domain: Eip712TokenDomain): Hex {
  const key = domainKey(domain);
  let separator = domainSeparators.get(key);
  if (separator === undefined) {
    separator = domainSeparator({ domain });
    domainSeparators.set(key, separator);
  }
  return separator;
}

/**
 * The EIP-712 digest the payer signed. It names the payment independently of the signature bytes,
 * so a malleated copy of a signature is recognised as the same payment.
 *
 * Equal to viem's hashTypedData(transferAuthorizationTypedData(domain, authorization)) (unit-tested
 * on random inputs), built from the same viem primitives with the domain separator cached:
 * keccak256(0x1901 ‖ domainSeparator ‖ keccak256(abi.encode(typeHash, from, to, value, validAfter,
 * validBefore, nonce))). About 3–4× cheaper than hashTypedData, which re-derives the domain and the
 * type encoding on every call. encodeAbiParameters still validates every field (address, uint256
 * range, bytes32 size) and throws on a bad one, as hashTypedData does.
 */
export function authorizationDigest(domain: Eip712TokenDomain, authorization: Authorization): Hex {
  // After the domain's JSON (which ends in "]"), every field has a fixed alphabet: unambiguous.
  const key = `${domainKey(domain)}${authorization.from}|${authorization.to}|${authorization.valueAtomic}|${authorization.validAfterSeconds}|${authorization.validBeforeSeconds}|${authorization.nonce}`;
  let digest = digests.get(key);
  if (digest === undefined) {
    digest = computeAuthorizationDigest(domain, authorization);
    digests.set(key, digest);
  }
  return digest;
}

/**
 * Digests already computed (two keccak256 and an ABI encoding each): a payment verified again, or
 * verified and then settled, is hashed once. Pure, so always right; bounded like the signer memo, by
 * bytes (the key is the domain's JSON and every field, ~300 characters) and by count.
 */
export const authorizationDigestsMax = 10_000;
export const authorizationDigestsBytesMax = 4 * 1024 * 1024;
const digests = new LruCache<string, Hex>(authorizationDigestsMax, {
  maxBytes: authorizationDigestsBytesMax,
  sizeOf: (key, digest) => approximateStringBytes(key) + approximateStringBytes(digest) + lruEntryOverheadBytes,
});

/** The authorization's fields in the order of the EIP-712 struct and of transferWithAuthorization's arguments. */
export function authorizationFields(authorization: Authorization) {
  return [
    authorization.from,
    authorization.to,
    authorization.valueAtomic,
    authorization.validAfterSeconds,
    authorization.validBeforeSeconds,
    authorization.nonce,
  ] as const;
}

function computeAuthorizationDigest(domain: Eip712TokenDomain, authorization: Authorization): Hex {
  // keccak256Fast: viem's keccak256, natively (keccak-fast.ts); the two hashes were a tenth of a cold verify's CPU.
  const structHash = keccak256Fast(encodeAbiParameters(structParameters, [transferWithAuthorizationTypeHash, ...authorizationFields(authorization)]));
  return keccak256Fast(concat(["0x1901", cachedDomainSeparator(domain), structHash]));
}
