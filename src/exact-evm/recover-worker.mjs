/**
 * Worker thread of recover-pool.ts: recovers ECDSA signers with viem's recoverAddress, off the main
 * thread. Plain JavaScript, started without the parent's loader hooks (execArgv: []), because viem's
 * recoverPublicKey does `await import("@noble/curves/secp256k1")` on every call, and under tsx's
 * off-thread hooks each such import costs ~0.5–0.9 ms of CPU.
 *
 * Message in: { id, hash, signature }. Message out: { id, address } or { id, error } (the error's
 * message); { ready: true } once, first, when viem is loaded.
 */
import { parentPort } from "node:worker_threads";
import { recoverAddress } from "viem";

parentPort.on("message", async ({ id, hash, signature }) => {
  try {
    parentPort.postMessage({ id, address: await recoverAddress({ hash, signature }) });
  } catch (error) {
    parentPort.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
});

parentPort.postMessage({ ready: true });
