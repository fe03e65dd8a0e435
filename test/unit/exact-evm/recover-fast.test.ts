import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { secp256k1 } from "@noble/curves/secp256k1";
import { bytesToHex, recoverAddress, type Hex } from "viem";
import { privateKeyToAddress } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { fastRecoveryStatus, recoverAddressFast } from "../../../src/exact-evm/recover-fast.js";
import { RecoverPool } from "../../../src/exact-evm/recover-pool.js";

/**
 * Differential test: recoverAddressFast (libsecp256k1) against viem's recoverAddress (the source of
 * truth) on 10,000 random signatures, valid and invalid. Both must give the same address, or both
 * fail for the same reason class. Random but reproducible: RECOVER_FAST_SEED picks the seed (the
 * seed of a failing run is in the failure message).
 */

const n = secp256k1.CURVE.n;
const p = secp256k1.CURVE.Fp.ORDER;
const seed = process.env.RECOVER_FAST_SEED ?? String(Date.now());

/** A deterministic stream of random bytes from the seed (SHA-256 in counter mode). */
function randomStream(label: string) {
  let counter = 0;
  const bytes = (length: number): Uint8Array => {
    const out = new Uint8Array(length);
    for (let offset = 0; offset < length; offset += 32) {
      const block = createHash("sha256").update(`${seed}/${label}/${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, length - offset)), offset);
    }
    return out;
  };
  const int = (below: number): number => Number(BigInt(bytesToHex(bytes(6))) % BigInt(below));
  const scalar = (): bigint => (BigInt(bytesToHex(bytes(32))) % (n - 1n)) + 1n;
  return { bytes, int, scalar };
}

const hex64 = (value: bigint): string => value.toString(16).padStart(64, "0");
const vByte = (v: number): string => v.toString(16).padStart(2, "0");
const compose = (r: bigint, s: bigint, v: number): Hex => `0x${hex64(r)}${hex64(s)}${vByte(v)}`;

interface Case {
  kind: string;
  hash: Hex;
  signature: Hex;
  /** The key's address, for the cases viem must recover to the signer. */
  signer?: Hex;
}

/** Each generator builds one case of its kind; `weight` of them per 100. */
function generators(random: ReturnType<typeof randomStream>) {
  const signedCase = () => {
    const key = random.bytes(32);
    const hash = random.bytes(32);
    const signature = secp256k1.sign(hash, key, { lowS: true });
    return { key, hash: bytesToHex(hash), r: signature.r, s: signature.s, bit: signature.recovery, signer: privateKeyToAddress(bytesToHex(key)) };
  };
  const randomV = () => [0, 1, 27, 28][random.int(4)]!;
  const list: { kind: string; weight: number; make: () => Case }[] = [
    { kind: "valid v=27/28", weight: 30, make: () => { const c = signedCase(); return { kind: "valid v=27/28", hash: c.hash, signature: compose(c.r, c.s, 27 + c.bit), signer: c.signer }; } },
    { kind: "valid v=0/1", weight: 6, make: () => { const c = signedCase(); return { kind: "valid v=0/1", hash: c.hash, signature: compose(c.r, c.s, c.bit), signer: c.signer }; } },
    { kind: "wrong parity", weight: 6, make: () => { const c = signedCase(); return { kind: "wrong parity", hash: c.hash, signature: compose(c.r, c.s, 28 - c.bit) }; } },
    {
      kind: "v out of set",
      weight: 5,
      make: () => {
        const c = signedCase();
        const v = [2, 3, 26, 29, 30, 35, 36, 37, 127, 128, 255][random.int(11)]!;
        return { kind: "v out of set", hash: c.hash, signature: compose(c.r, c.s, v) };
      },
    },
    { kind: "high s, parity flipped", weight: 4, make: () => { const c = signedCase(); return { kind: "high s, parity flipped", hash: c.hash, signature: compose(c.r, n - c.s, 28 - c.bit), signer: c.signer }; } },
    { kind: "high s, same v", weight: 3, make: () => { const c = signedCase(); return { kind: "high s, same v", hash: c.hash, signature: compose(c.r, n - c.s, 27 + c.bit) }; } },
    { kind: "other hash", weight: 4, make: () => { const c = signedCase(); return { kind: "other hash", hash: bytesToHex(random.bytes(32)), signature: compose(c.r, c.s, 27 + c.bit) }; } },
    {
      kind: "r or s out of range",
      weight: 10,
      make: () => {
        const c = signedCase();
        const edge = [0n, n, n + 1n, p - 1n, 2n ** 256n - 1n, n + random.scalar() % (2n ** 256n - n)][random.int(6)]!;
        const which = random.int(3);
        const r = which !== 1 ? edge : c.r;
        const s = which !== 0 ? edge : c.s;
        return { kind: "r or s out of range", hash: c.hash, signature: compose(r, s, 27 + c.bit) };
      },
    },
    { kind: "r = n - 1 / s = n - 1", weight: 2, make: () => ({ kind: "r = n - 1 / s = n - 1", hash: bytesToHex(random.bytes(32)), signature: compose(random.int(2) ? n - 1n : random.scalar(), n - 1n, 27 + random.int(2)) }) },
    // About half of all x have no point on the curve: "recovers no point" on both sides.
    { kind: "random r, s", weight: 10, make: () => ({ kind: "random r, s", hash: bytesToHex(random.bytes(32)), signature: compose(random.scalar(), random.scalar(), randomV()) }) },
    {
      kind: "point at infinity",
      weight: 1,
      make: () => {
        // R = kG, s any, hash = s·k: then s·R − hash·G is the point at infinity.
        for (;;) {
          const k = random.scalar();
          const point = secp256k1.ProjectivePoint.BASE.multiply(k).toAffine();
          if (point.x >= n) continue;
          const s = random.scalar();
          const hash = (s * k) % n;
          return { kind: "point at infinity", hash: `0x${hex64(hash)}`, signature: compose(point.x, s, 27 + Number(point.y & 1n)) };
        }
      },
    },
    { kind: "zero bytes", weight: 1, make: () => ({ kind: "zero bytes", hash: bytesToHex(random.bytes(32)), signature: `0x${"00".repeat(64)}${vByte(randomV())}` }) },
    { kind: "random 65 bytes", weight: 8, make: () => ({ kind: "random 65 bytes", hash: bytesToHex(random.bytes(32)), signature: bytesToHex(random.bytes(65)) }) },
    {
      kind: "truncated or extended",
      weight: 5,
      make: () => {
        const c = signedCase();
        const full = compose(c.r, c.s, 27 + c.bit).slice(2);
        const cut = [0, 1, 2, 32, 63, 64, 66, 97].map((bytes) => (bytes <= 65 ? full.slice(0, bytes * 2) : full + "1b".repeat(bytes - 65)));
        return { kind: "truncated or extended", hash: c.hash, signature: `0x${cut[random.int(cut.length)]}` };
      },
    },
    {
      kind: "hash not 32 bytes",
      weight: 3,
      make: () => {
        const c = signedCase();
        // Even lengths viem takes as they are (noble reduces them); odd ones it refuses.
        const hash = [bytesToHex(random.bytes(31)), bytesToHex(random.bytes(33)), bytesToHex(random.bytes(64)), "0x", bytesToHex(random.bytes(32)).slice(0, 65)][random.int(5)] as Hex;
        return { kind: "hash not 32 bytes", hash, signature: compose(c.r, c.s, 27 + c.bit) };
      },
    },
    {
      kind: "upper-case hex",
      weight: 2,
      make: () => {
        const c = signedCase();
        return { kind: "upper-case hex", hash: `0x${c.hash.slice(2).toUpperCase()}`, signature: `0x${compose(c.r, c.s, 27 + c.bit).slice(2).toUpperCase()}`, signer: c.signer };
      },
    },
  ];
  return list;
}

/** The reason a recovery failed, named the same for viem's messages and ours. */
function reasonClass(message: string): string {
  if (/invalid signature length/.test(message)) return "length";
  if (/yParityOrV/.test(message)) return "recovery id";
  if (/expected valid [rs]|not in \[1, n-1\]/.test(message)) return "r or s out of range";
  if (/not on curve|square root|infini|recovers no public key/.test(message)) return "no point";
  if (/msgHash|hex string/.test(message)) return "hash";
  return `unclassified: ${message.split("\n")[0]}`;
}

type Outcome = { address: string } | { error: string };
const outcome = (promise: Promise<string>): Promise<Outcome> =>
  promise.then(
    (address) => ({ address }),
    (error: Error) => ({ error: reasonClass(error.message) }),
  );

describe("recoverAddressFast (libsecp256k1) against viem's recoverAddress", () => {
  it("loads the native binding on linux-x64 (the prebuilt binary inside the npm package)", () => {
    if (process.platform === "linux" && process.arch === "x64") expect(fastRecoveryStatus()).toEqual({ native: true });
  });

  it("agrees exactly on 10,000 random valid and invalid signatures", { timeout: 300_000 }, async () => {
    const random = randomStream("cases");
    const kinds = generators(random);
    const totalWeight = kinds.reduce((sum, kind) => sum + kind.weight, 0);
    const counts = new Map<string, { cases: number; outcomes: Map<string, number> }>();
    const mismatches: string[] = [];
    for (let index = 0; index < 10_000; index += 1) {
      let pick = random.int(totalWeight);
      const generator = kinds.find((kind) => (pick -= kind.weight) < 0)!;
      const item = generator.make();
      const [truth, fast] = await Promise.all([outcome(recoverAddress({ hash: item.hash, signature: item.signature })), outcome(recoverAddressFast(item.hash, item.signature))]);
      if (JSON.stringify(truth) !== JSON.stringify(fast)) mismatches.push(`${item.kind} ${item.hash} ${item.signature}: viem ${JSON.stringify(truth)}, fast ${JSON.stringify(fast)}`);
      if (item.signer !== undefined && !("address" in truth && truth.address === item.signer)) mismatches.push(`${item.kind}: viem did not recover the signer ${item.signer}: ${JSON.stringify(truth)}`);
      const entry = counts.get(item.kind) ?? { cases: 0, outcomes: new Map() };
      const label = "address" in truth ? "address" : truth.error;
      entry.cases += 1;
      entry.outcomes.set(label, (entry.outcomes.get(label) ?? 0) + 1);
      counts.set(item.kind, entry);
    }
    expect({ mismatches: mismatches.length, first: mismatches.slice(0, 10) }, `seed ${seed} (RECOVER_FAST_SEED)`).toEqual({ mismatches: 0, first: [] });
    // No failure fell outside the known reasons, and every kind was drawn.
    const labels = new Set([...counts.values()].flatMap((entry) => [...entry.outcomes.keys()]));
    expect([...labels].filter((label) => label.startsWith("unclassified")), `seed ${seed}`).toEqual([]);
    expect([...counts.keys()].sort()).toEqual(kinds.map((kind) => kind.kind).sort());
    // The generators reach what they are meant to: each reason of failure, and recovered addresses.
    for (const label of ["address", "length", "recovery id", "r or s out of range", "no point", "hash"]) expect(labels, label).toContain(label);
    expect(counts.get("point at infinity")!.outcomes.get("no point")).toBe(counts.get("point at infinity")!.cases);
  });

  it("falls back to viem when the binding cannot load, and the pool says so once per process", async () => {
    // A fresh node (dist/, as production runs it) where requiring secp256k1/bindings fails.
    const repoRoot = path.resolve(import.meta.dirname, "../../..");
    const dir = await mkdtemp(path.join(os.tmpdir(), "recover-fast-"));
    try {
      const preload = path.join(dir, "no-binding.cjs");
      await writeFile(
        preload,
        `const Module = require("node:module");
         const load = Module._load;
         Module._load = function (request, ...rest) {
           if (request === "secp256k1/bindings") throw new Error("No native build was found (test)");
           return load.call(this, request, ...rest);
         };`,
      );
      const script = `
        const { RecoverPool } = await import(${JSON.stringify(path.join(repoRoot, "dist/exact-evm/recover-pool.js"))});
        const { fastRecoveryStatus, recoverAddressFast } = await import(${JSON.stringify(path.join(repoRoot, "dist/exact-evm/recover-fast.js"))});
        const { recoverAddress } = await import("viem");
        const { privateKeyToAccount } = await import("viem/accounts");
        const account = privateKeyToAccount("0x${"42".repeat(32)}");
        const hash = "0x${"17".repeat(32)}";
        const signature = await account.sign({ hash });
        const warnings = [];
        const log = { warn: (object, message) => warnings.push({ object, message }) };
        const pools = [new RecoverPool({ log }), new RecoverPool({ log })];
        const recovered = await pools[0].recover(hash, signature);
        const bad = "0x" + "00".repeat(65);
        const errors = await Promise.all([recoverAddressFast(hash, bad), recoverAddress({ hash, signature: bad })].map((p) => p.then(() => "resolved", (e) => e.message.split("\\n")[0])));
        console.log(JSON.stringify({ status: fastRecoveryStatus(), native: pools.map((pool) => pool.native), right: recovered === account.address, fast: await recoverAddressFast(hash, signature) === account.address, errors, warnings, stats: pools[0].stats() }));
        await Promise.all(pools.map((pool) => pool.close()));`;
      const { stdout } = await promisify(execFile)(process.execPath, ["--require", preload, "--input-type=module", "-e", script], { cwd: repoRoot, timeout: 30_000 });
      const result = JSON.parse(stdout);
      expect(result).toMatchObject({ status: { native: false, reason: "No native build was found (test)" }, native: [false, false], right: true, fast: true, stats: { recoveredNative: 0, recoveredInline: 1 } });
      expect(result.errors[0]).toBe(result.errors[1]);
      expect(result.warnings).toEqual([{ object: { reason: "No native build was found (test)" }, message: expect.stringContaining("did not load: signer recovery runs viem") }]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("is what RecoverPool uses by default (no worker), and viem on the workers with native: false", async () => {
    const pool = new RecoverPool();
    const viemPool = new RecoverPool({ native: false });
    try {
      const key = `0x${"42".repeat(32)}` as Hex;
      const hash = `0x${"17".repeat(32)}` as Hex;
      const signature = secp256k1.sign(hash.slice(2), key.slice(2), { lowS: true });
      const signed = compose(signature.r, signature.s, 27 + signature.recovery);
      expect(await pool.recover(hash, signed)).toBe(privateKeyToAddress(key));
      expect(await viemPool.recover(hash, signed)).toBe(privateKeyToAddress(key));
      expect(pool.native).toBe(fastRecoveryStatus().native);
      if (pool.native) expect(pool.stats()).toMatchObject({ recoveredNative: 1, recoveredInline: 0, workersRunning: 0 });
      expect(viemPool.stats()).toMatchObject({ recoveredNative: 0, recoveredInline: 1 });
    } finally {
      await Promise.all([pool.close(), viemPool.close()]);
    }
  });
});
