import { keccak256, recoverAddress, stringToHex, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { recoverInline } from "../../../src/exact-evm/recover-pool.js";
import { checkEcdsaSignature as checkWithRecovery } from "../../../src/exact-evm/signature.js";

const secp256k1Order = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const account = privateKeyToAccount(keccak256(stringToHex("signature.test/payer")));
const digest = (label: string): Hex => keccak256(stringToHex(label));
const checkEcdsaSignature = (hash: Hex, signature: Hex) => checkWithRecovery(hash, signature, recoverInline);

/** The same signature with s → n - s and v flipped: still valid for ecrecover, but malleable. */
function highS(signature: Hex): Hex {
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = Number(`0x${signature.slice(130)}`);
  return `${signature.slice(0, 66)}${(secp256k1Order - s).toString(16).padStart(64, "0")}${(v === 27 ? 28 : 27).toString(16)}` as Hex;
}

describe("checkEcdsaSignature (with its memo of recovered signers)", () => {
  it("recovers the signer, the same on a repeat (cache hit) as viem's recoverAddress", async () => {
    const hash = digest("one");
    const signature = await account.sign({ hash });
    for (let round = 0; round < 3; round += 1) {
      expect(await checkEcdsaSignature(hash, signature)).toEqual({ ok: true, signer: account.address });
    }
    expect(await recoverAddress({ hash, signature })).toBe(account.address);
  });

  it("does not let a remembered signature answer for another digest", async () => {
    const signature = await account.sign({ hash: digest("two") });
    expect(await checkEcdsaSignature(digest("two"), signature)).toEqual({ ok: true, signer: account.address });
    const other = await checkEcdsaSignature(digest("three"), signature);
    expect(other.ok).toBe(true);
    expect(other.ok && other.signer).not.toBe(account.address);
    expect(other.ok && other.signer).toBe(await recoverAddress({ hash: digest("three"), signature }));
  });

  it("refuses the high-s twin of a remembered signature, every time", async () => {
    const hash = digest("four");
    const signature = await account.sign({ hash });
    expect(await checkEcdsaSignature(hash, signature)).toEqual({ ok: true, signer: account.address });
    for (let round = 0; round < 2; round += 1) {
      expect(await checkEcdsaSignature(hash, highS(signature))).toEqual({ ok: false, message: "signature has a high s value (malleable); sign again with low s" });
    }
  });

  it("refuses a bad v byte, every time", async () => {
    const hash = digest("five");
    const signature = await account.sign({ hash });
    const badV = `${signature.slice(0, 130)}1d` as Hex;
    for (let round = 0; round < 2; round += 1) {
      expect(await checkEcdsaSignature(hash, badV)).toMatchObject({ ok: false, message: expect.stringMatching(/yParityOrV|v byte/) });
    }
  });
});
