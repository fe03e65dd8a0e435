import fc from "fast-check";
import { getAddress, hashTypedData, maxUint256, toHex, type Address, type Hex } from "viem";
import { describe, expect, it } from "vitest";
import { authorizationDigest, cachedDomainSeparator, transferAuthorizationTypedData, type Eip712TokenDomain } from "../../../src/exact-evm/typed-data.js";
import type { Authorization } from "../../../src/protocol/types.js";

const address = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((bytes) => getAddress(toHex(bytes)) as Address);
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => toHex(bytes) as Hex);
const uint256 = fc.oneof(fc.bigInt({ min: 0n, max: maxUint256 }), fc.constantFrom(0n, 1n, maxUint256), fc.bigInt({ min: 0n, max: 2n ** 64n }));

const domain: fc.Arbitrary<Eip712TokenDomain> = fc.record({
  name: fc.oneof(fc.constantFrom("USDC", "USD Coin", ""), fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 10 })),
  version: fc.oneof(fc.constantFrom("2", "1"), fc.string({ maxLength: 8 })),
  chainId: fc.oneof(fc.constantFrom(8453, 84532, 1, 31337), fc.integer({ min: 1, max: 2 ** 31 })),
  verifyingContract: address,
});

const authorization: fc.Arbitrary<Authorization> = fc.record({
  from: address,
  to: address,
  valueAtomic: uint256,
  validAfterSeconds: uint256,
  validBeforeSeconds: uint256,
  nonce: bytes32,
});

describe("authorizationDigest", () => {
  it("equals viem's hashTypedData for random domains and authorizations", () => {
    fc.assert(
      fc.property(domain, authorization, (d, a) => {
        const expected = hashTypedData(transferAuthorizationTypedData(d, a));
        expect(authorizationDigest(d, a)).toBe(expected);
        expect(authorizationDigest({ ...d }, { ...a })).toBe(expected); // memo hit
      }),
      { numRuns: 500 },
    );
  });

  it("keeps domains apart that differ in one field only, with the separator cached", () => {
    const base: Eip712TokenDomain = { name: "USDC", version: "2", chainId: 84532, verifyingContract: "0x036CbD53842c5426634e7929541eC2318f3dCF7e" };
    const variants: Eip712TokenDomain[] = [
      base,
      { ...base, name: "USD Coin" },
      { ...base, version: "1" },
      { ...base, chainId: 8453 },
      { ...base, verifyingContract: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913" },
      // A key made by joining with a separator would confuse these two.
      { ...base, name: "a:b", version: "c" },
      { ...base, name: "a", version: "b:c" },
    ];
    const separators = variants.map((d) => cachedDomainSeparator(d));
    expect(new Set(separators).size).toBe(variants.length);
    // Asked again (cache hits): the same values, and still viem's.
    for (const [index, d] of variants.entries()) {
      expect(cachedDomainSeparator(d)).toBe(separators[index]);
      const a: Authorization = { from: d.verifyingContract, to: d.verifyingContract, valueAtomic: 1n, validAfterSeconds: 0n, validBeforeSeconds: 9n, nonce: `0x${"11".repeat(32)}` };
      expect(authorizationDigest(d, a)).toBe(hashTypedData(transferAuthorizationTypedData(d, a)));
    }
  });

  it("throws on a value that does not fit uint256, as hashTypedData does", () => {
    const d: Eip712TokenDomain = { name: "USDC", version: "2", chainId: 1, verifyingContract: "0x036CbD53842c5426634e7929541eC2318f3dCF7e" };
    const a: Authorization = { from: d.verifyingContract, to: d.verifyingContract, valueAtomic: maxUint256 + 1n, validAfterSeconds: 0n, validBeforeSeconds: 9n, nonce: `0x${"11".repeat(32)}` };
    expect(() => hashTypedData(transferAuthorizationTypedData(d, a))).toThrow();
    expect(() => authorizationDigest(d, a)).toThrow();
  });
});
