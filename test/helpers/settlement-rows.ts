import { randomBytes } from "node:crypto";
import type { Hex } from "viem";
import type { NewSettlement } from "../../src/store/settlements-repo.js";

export const randomAddress = (): Hex => `0x${randomBytes(20).toString("hex")}`;
const randomBytes32 = (): Hex => `0x${randomBytes(32).toString("hex")}`;

/**
 * A claim for a settlements row in store-level tests: a fresh authorization (random payer, nonce,
 * payee and digest) on Base Sepolia's USDC address; the fields that matter to a test are overridden.
 */
export function newClaim(overrides: Partial<NewSettlement> = {}): NewSettlement {
  return {
    chainId: 84532,
    asset: "0x036cbd53842c5426634e7929541ec2318f3dcf7e",
    payer: randomAddress(),
    nonce: randomBytes32(),
    payTo: randomAddress(),
    valueAtomic: 1n,
    validAfterSeconds: 0n,
    validBeforeSeconds: 9_999_999_999n,
    authorizationDigest: randomBytes32(),
    signature: "0x00",
    x402Version: 2,
    network: "eip155:84532",
    leaseMs: 60_000,
    ...overrides,
  };
}
