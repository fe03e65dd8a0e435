import { createRequire } from "node:module";
import { checksumAddress, recoverAddress, type Address, type Hex } from "viem";
import { keccak256Fast } from "./keccak-fast.js";

/**
 * ECDSA signer recovery through libsecp256k1 (the npm package `secp256k1`, an N-API binding whose
 * prebuilt binaries for linux-x64 glibc and musl, darwin-arm64 and win32-x64 ship inside its
 * tarball under prebuilds/ and are found at load time by node-gyp-build: nothing is downloaded or
 * compiled at install, and its install script is not needed — package.json's allowScripts denies
 * it). ~0.1 ms per recovery against ~3 ms for viem's recoverAddress (@noble/curves, JavaScript):
 * `npm run bench:recover` measures both side by side.
 *
 * viem stays the definition: every input the native path does not take (a hash that is not 32
 * bytes, a signature that is not 65 bytes, a v byte outside {0, 1, 27, 28}, anything that is not
 * plain lowercase/uppercase hex) is handed to viem's recoverAddress itself, and on the inputs it takes
 * the native path answers what viem answers — the same address, or an error for the same reason
 * (r or s outside [1, n-1]; an (r, s) that recovers no point) — which
 * test/unit/exact-evm/recover-fast.test.ts checks on 10,000 random valid and invalid signatures.
 * When the binding cannot load (another platform, a pruned install), every recovery is viem's.
 *
 * The package's own entry point (`secp256k1`) silently falls back to `elliptic` (JavaScript, slower
 * than noble) when the binding does not load; `secp256k1/bindings` is the binding alone, so a
 * failed load is seen here and reported by `fastRecoveryStatus`.
 */

interface NativeSecp256k1 {
  ecdsaRecover(signature: Uint8Array, recoveryId: number, message32: Uint8Array, compressed: boolean): Uint8Array;
}

export type FastRecoveryStatus = { native: true } | { native: false; reason: string };

let native: NativeSecp256k1 | undefined;
let status: FastRecoveryStatus;
try {
  native = createRequire(import.meta.url)("secp256k1/bindings") as NativeSecp256k1;
  status = { native: true };
} catch (error) {
  status = { native: false, reason: (error as Error).message.split("\n")[0] ?? String(error) };
}

/** Whether recoverAddressFast runs libsecp256k1 (else viem), and why not. */
export function fastRecoveryStatus(): FastRecoveryStatus {
  return status;
}

/** The secp256k1 group order n, as 64 lowercase hex digits (fixed width: string order is numeric order). */
const orderHex = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
const zeroHex = "0".repeat(64);
const hash32 = /^0x[0-9a-fA-F]{64}$/;
const signature65 = /^0x[0-9a-fA-F]{130}$/;

/** A scalar r or s of a signature, in [1, n-1] (noble's Signature.fromCompact refuses anything else). */
function inScalarRange(hex: string): boolean {
  const lower = hex.toLowerCase();
  return lower !== zeroHex && lower < orderHex;
}

/** viem's toRecoveryBit: 0/1 as they are, 27/28 → 0/1, anything else none. */
function recoveryBit(v: number): 0 | 1 | undefined {
  if (v === 0 || v === 27) return 0;
  if (v === 1 || v === 28) return 1;
  return undefined;
}

/**
 * The signer of `hash` (checksummed), as viem's `recoverAddress({ hash, signature })` answers it;
 * rejects for a signature that does not recover, as viem does. Synchronous work on the native path
 * (~0.1 ms); the promise is viem's on every other path.
 */
export async function recoverAddressFast(hash: Hex, signature: Hex): Promise<Address> {
  if (native === undefined || !hash32.test(hash) || !signature65.test(signature)) return recoverAddress({ hash, signature });
  const recovery = recoveryBit(Number.parseInt(signature.slice(130, 132), 16));
  if (recovery === undefined) return recoverAddress({ hash, signature });
  const r = signature.slice(2, 66);
  const s = signature.slice(66, 130);
  if (!inScalarRange(r) || !inScalarRange(s)) throw new Error("signature r or s is not in [1, n-1]");
  let publicKey: Uint8Array;
  try {
    publicKey = native.ecdsaRecover(Buffer.from(signature.slice(2, 130), "hex"), recovery, Buffer.from(hash.slice(2), "hex"), false);
  } catch {
    // r is no x coordinate of a curve point with this parity, or the recovered point is at infinity.
    throw new Error("signature (r, s, v) recovers no public key");
  }
  // viem's publicKeyToAddress: the last 20 bytes of keccak256 of the 64-byte (x, y), checksummed.
  return checksumAddress(`0x${keccak256Fast(publicKey.subarray(1)).slice(26)}`);
}
