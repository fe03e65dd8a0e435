import { createRequire } from "node:module";
import { keccak256, type Hex } from "viem";

/**
 * keccak256 through the native Keccak of the npm package `keccak` (an N-API binding whose prebuilt
 * binaries for linux-x64 glibc and musl, darwin-x64 and win32-x64 ship inside its tarball under
 * prebuilds/, found at load time by node-gyp-build, as `secp256k1`'s are: nothing is downloaded or
 * compiled at install; its install script is not needed and package.json's allowScripts denies it).
 *
 * Why: viem's keccak256 is @noble/hashes (JavaScript), ~25–40 µs per hash of the sizes verify
 * hashes (the 224-byte EIP-712 struct, the 66-byte digest preimage, a 64-byte public key); a cold
 * verify hashes three of them, about a tenth of its CPU. The native state answers in ~1–2 µs.
 *
 * viem stays the definition: any input that is not well-formed hex (or bytes) goes to viem's
 * keccak256 itself, and the native path answers what viem answers
 * (test/unit/exact-evm/keccak-fast.test.ts, random inputs of every length up to several blocks).
 * When the binding cannot load (another platform, a pruned install), every hash is viem's.
 *
 * The package's own entry point wraps each hash in a stream object (readable-stream) and falls back
 * to JavaScript silently; the raw native state is used here, one instance, reset before each hash
 * (every call runs start to end synchronously, so nothing interleaves).
 */
interface NativeKeccakState {
  initialize(rate: number, capacity: number): void;
  absorb(data: Uint8Array): void;
  squeeze(length: number): Buffer;
}

/** Keccak-256: rate 1088 bits, capacity 512 (the `keccak` package's own parameters for "keccak256"). */
const rateBits = 1088;
const capacityBits = 512;

let state: NativeKeccakState | undefined;
let status: { native: true } | { native: false; reason: string };
try {
  const require = createRequire(import.meta.url);
  const packageJson = require.resolve("keccak/package.json");
  // node-gyp-build as the package itself resolves it, pointed at the package's directory (its prebuilds).
  const load = createRequire(packageJson)("node-gyp-build") as (directory: string) => new () => NativeKeccakState;
  const State = load(packageJson.slice(0, -"package.json".length));
  const probe = new State();
  probe.initialize(rateBits, capacityBits);
  probe.absorb(Buffer.alloc(0));
  // keccak256 of nothing: refuse a binding that does not compute Keccak-256.
  if (probe.squeeze(32).toString("hex") !== "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470") throw new Error("the native keccak256 of the empty input is wrong");
  state = probe;
  status = { native: true };
} catch (error) {
  status = { native: false, reason: (error as Error).message.split("\n")[0] ?? String(error) };
}

/** Whether keccak256Fast runs the native Keccak (else viem), and why not. */
export function fastKeccakStatus(): typeof status {
  return status;
}

const evenHex = /^0x(?:[0-9a-fA-F]{2})*$/;

/** viem's keccak256(value) (hex out), natively where the binding loaded. */
export function keccak256Fast(value: Hex | Uint8Array): Hex {
  if (state === undefined) return keccak256(value);
  let bytes: Uint8Array;
  if (typeof value === "string") {
    if (!evenHex.test(value)) return keccak256(value);
    bytes = Buffer.from(value.slice(2), "hex");
  } else {
    bytes = value;
  }
  state.initialize(rateBits, capacityBits);
  state.absorb(bytes);
  return `0x${state.squeeze(32).toString("hex")}`;
}
