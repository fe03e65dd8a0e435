import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { bytesToHex, keccak256, type Hex } from "viem";
import { describe, expect, it } from "vitest";
import { fastKeccakStatus, keccak256Fast } from "../../../src/exact-evm/keccak-fast.js";

/**
 * Differential test: keccak256Fast (the native Keccak of npm `keccak`) against viem's keccak256 (the
 * source of truth) on random inputs of every length from 0 to 700 bytes (the rate is 136 bytes: 0 to
 * 5 full blocks and every remainder), as hex (lower, upper and mixed case) and as bytes, and on
 * strings that are not well-formed hex (viem's own answer or error). Reproducible through
 * KECCAK_FAST_SEED (the seed of a failing run is in its message).
 */
const seed = process.env.KECCAK_FAST_SEED ?? String(Date.now());

function randomBytes(label: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let offset = 0, counter = 0; offset < length; offset += 32, counter += 1) {
    const block = createHash("sha256").update(`${seed}/${label}/${counter}`).digest();
    out.set(block.subarray(0, Math.min(32, length - offset)), offset);
  }
  return out;
}

const outcome = (hash: (value: Hex | Uint8Array) => Hex, value: Hex | Uint8Array) => {
  try {
    return { hash: hash(value) };
  } catch (error) {
    return { error: (error as Error).constructor.name };
  }
};

describe("keccak256Fast", () => {
  it("runs natively here (the prebuilt binary of npm keccak loaded)", () => {
    expect(fastKeccakStatus()).toEqual({ native: true });
  });

  it(`answers what viem's keccak256 answers on random inputs of every length up to 700 bytes (seed ${seed})`, () => {
    for (let length = 0; length <= 700; length += 1) {
      for (let round = 0; round < 3; round += 1) {
        const bytes = randomBytes(`${length}/${round}`, length);
        const hex = bytesToHex(bytes);
        const expected = keccak256(bytes);
        expect(keccak256Fast(bytes), `seed ${seed}, ${length} bytes`).toBe(expected);
        expect(keccak256Fast(hex), `seed ${seed}, ${length} bytes as hex`).toBe(expected);
        const shouted = `0x${hex.slice(2).toUpperCase()}` as Hex;
        expect(keccak256Fast(shouted), `seed ${seed}, ${length} bytes as upper-case hex`).toBe(expected);
      }
    }
  });

  it("hands viem whatever is not well-formed hex: odd length, other characters, no 0x, a subarray", () => {
    const samples = ["0x", "0x1", "0xabc", "0xzz", "0x12 34", "1234", "0x0g", "0x" + "f".repeat(301)] as Hex[];
    for (const value of samples) expect(outcome(keccak256Fast, value), value).toEqual(outcome(keccak256, value));
    const buffer = randomBytes("subarray", 65);
    expect(keccak256Fast(buffer.subarray(1))).toBe(keccak256(buffer.subarray(1)));
  });

  it("gives the known hash of the EIP-712 type string and of nothing", () => {
    expect(keccak256Fast("0x")).toBe("0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    const typeString = new TextEncoder().encode("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)");
    expect(keccak256Fast(typeString)).toBe("0x7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267");
  });

  it("falls back to viem when the binding cannot load", async () => {
    // A fresh node (dist/, as production runs it) where loading the native build fails.
    const repoRoot = path.resolve(import.meta.dirname, "../../..");
    const dir = await mkdtemp(path.join(os.tmpdir(), "keccak-fast-"));
    try {
      const preload = path.join(dir, "no-binding.cjs");
      await writeFile(
        preload,
        `const Module = require("node:module");
         const load = Module._load;
         Module._load = function (request, ...rest) {
           if (request === "node-gyp-build") throw new Error("No native build was found (test)");
           return load.call(this, request, ...rest);
         };`,
      );
      const script = `
        const { fastKeccakStatus, keccak256Fast } = await import(${JSON.stringify(path.join(repoRoot, "dist/exact-evm/keccak-fast.js"))});
        const { keccak256 } = await import("viem");
        console.log(JSON.stringify({ status: fastKeccakStatus(), same: keccak256Fast("0x1234") === keccak256("0x1234") }));`;
      const { stdout } = await promisify(execFile)(process.execPath, ["--require", preload, "--input-type=module", "-e", script], { cwd: repoRoot, timeout: 30_000 });
      expect(JSON.parse(stdout)).toEqual({ status: { native: false, reason: "No native build was found (test)" }, same: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
