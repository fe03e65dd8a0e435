import { concatHex, encodeAbiParameters, keccak256, parseSignature, recoverAddress, serializeErc6492Signature, stringToHex, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { recoverInline } from "../../../src/exact-evm/recover-pool.js";
import { checkEcdsaSignature as checkWithRecovery, erc6492Deployment, isMalformedErc6492, parseSignatureMemo } from "../../../src/exact-evm/signature.js";

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
      expect(await checkEcdsaSignature(hash, highS(signature))).toEqual({ ok: false, failure: "malleable", message: "signature has a high s value (malleable); sign again with low s" });
    }
  });

  it("refuses a bad v byte, every time, as unparseable (no signer at all)", async () => {
    const hash = digest("five");
    const signature = await account.sign({ hash });
    const badV = `${signature.slice(0, 130)}1d` as Hex;
    for (let round = 0; round < 2; round += 1) {
      expect(await checkEcdsaSignature(hash, badV)).toMatchObject({ ok: false, failure: "unparseable", message: expect.stringMatching(/yParityOrV|v byte/) });
    }
  });

  it("refuses an (r, s) outside the curve order (r = 0) as unparseable", async () => {
    const zeroR = `0x${"00".repeat(32)}${"11".repeat(32)}1b` as Hex;
    expect(await checkEcdsaSignature(digest("six"), zeroR)).toMatchObject({ ok: false, failure: "unparseable", message: expect.stringMatching(/valid r|does not recover/) });
  });
});

describe("isMalformedErc6492", () => {
  const magic = "0x6492649264926492649264926492649264926492649264926492649264926492" as Hex;

  it("is false for plain signatures and for well-formed ERC-6492 wrappers", async () => {
    const inner = await account.sign({ hash: digest("seven") });
    expect(isMalformedErc6492(inner)).toBe(false);
    expect(isMalformedErc6492("0x1234")).toBe(false);
    const wrapped = serializeErc6492Signature({ address: account.address, data: "0xdeadbeef", signature: inner });
    expect(isMalformedErc6492(wrapped)).toBe(false);
    expect(erc6492Deployment(wrapped)).toMatchObject({ factory: account.address, factoryData: "0xdeadbeef", innerSignature: inner });
  });

  it("is true for the magic suffix after bytes that are no (address, bytes, bytes) encoding", () => {
    expect(isMalformedErc6492(concatHex(["0xdeadbeef", magic]))).toBe(true);
    // An offset that points past the end.
    const broken = concatHex([encodeAbiParameters([{ type: "uint256" }, { type: "uint256" }, { type: "uint256" }], [1n, 2n ** 64n, 3n]), magic]);
    expect(isMalformedErc6492(broken)).toBe(true);
  });
});

describe("parseSignatureMemo", () => {
  it("answers what viem's parseSignature answers, remembered or not, and throws again for bytes that are no signature", async () => {
    const account = privateKeyToAccount(`0x${"42".repeat(32)}`);
    for (let index = 0; index < 3; index += 1) {
      const signature = await account.sign({ hash: keccak256(stringToHex(`memo ${index}`)) });
      expect(parseSignatureMemo(signature)).toEqual(parseSignature(signature));
      expect(parseSignatureMemo(signature)).toEqual(parseSignature(signature));
    }
    const zeroR = `0x${"00".repeat(32)}${"11".repeat(32)}1b` as Hex;
    for (let round = 0; round < 2; round += 1) expect(() => parseSignatureMemo(zeroR)).toThrow();
  });
});
