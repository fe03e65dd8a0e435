/**
 * Signer recovery, the options side by side (issue 15, cold verify): what one ECDSA recovery of a
 * never-seen signature costs each way, in one process, one run.
 *
 *   npm run bench:recover            # builds dist/, prints a table
 *   node bench/recover-options.mjs --json [--quick]   # one JSON object on stdout (bench/run.ts uses it)
 *
 * Plain JavaScript run by plain node (no tsx): viem's recoverPublicKey does
 * `await import("@noble/curves/secp256k1")` on every call, which tsx's loader hooks would slow down
 * (src/exact-evm/recover-worker.mjs). Ours is measured from dist/ (what `npm start` runs).
 *
 * Options:
 * - viem inline: viem's recoverAddress (@noble/curves, JavaScript) on the calling thread;
 * - viem on workers: the same on RecoverPool's worker threads (the fallback when the binding does
 *   not load; what verify did before), 64 in flight;
 * - native inline: recoverAddressFast, libsecp256k1 through the npm package `secp256k1` (N-API,
 *   prebuilt binary in its tarball) — what verify uses now;
 * - native on workers: recoverAddressFast on two worker threads, 64 in flight: is a pool still
 *   worth its messages at ~0.1 ms a recovery?
 * - WASM inline: tiny-secp256k1 2.x `recover` (libsecp256k1 compiled to WebAssembly), same hashing.
 * The third option of the issue — let the token's signature check inside the simulation decide and
 * recover only to explain a failure — has no recovery to time; see bench/README.md for why it is not
 * the one chosen.
 *
 * Every signature is distinct (fresh random key and hash, signed with libsecp256k1 beforehand), so
 * no cache (viem's checksum cache, our signer memo) helps. Columns: wall µs per recovery (sequential
 * for inline, throughput at 64 in flight for workers), main-thread CPU µs per recovery (what the
 * event loop pays: /proc/self/task/<pid>/stat), process CPU µs per recovery (all threads).
 */
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { Worker } from "node:worker_threads";
import { keccak256, checksumAddress, recoverAddress, toHex } from "viem";

const require = createRequire(import.meta.url);
const secp = require("secp256k1/bindings");
const tiny = await import("tiny-secp256k1");
const { recoverAddressFast, fastRecoveryStatus } = await import("../dist/exact-evm/recover-fast.js");
const { RecoverPool } = await import("../dist/exact-evm/recover-pool.js");

const json = process.argv.includes("--json");
const quick = process.argv.includes("--quick");
const scale = quick ? 0.25 : 1;
const counts = { viemInline: 800, viemWorkers: 1_600, nativeInline: 20_000, nativeWorkers: 20_000, wasmInline: 4_000 };
for (const key of Object.keys(counts)) counts[key] = Math.max(200, Math.round(counts[key] * scale));

/** Distinct (hash, signature, signer) triples: a fresh key each, signed with libsecp256k1. */
function signed(count) {
  const out = [];
  while (out.length < count) {
    const key = randomBytes(32);
    if (!secp.privateKeyVerify(key)) continue;
    const hash = randomBytes(32);
    const { signature, recid } = secp.ecdsaSign(hash, key);
    const publicKey = secp.publicKeyCreate(key, false);
    const signer = checksumAddress(`0x${keccak256(publicKey.subarray(1)).slice(26)}`);
    out.push({ hash: toHex(hash), signature: `${toHex(signature)}${(27 + recid).toString(16)}`, signer });
  }
  return out;
}

const ticksPerSecond = 100; // USER_HZ on Linux
function mainThreadCpuMicros() {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / ticksPerSecond;
}
function processCpuMicros() {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** Runs `recover` over `items`, `inFlight` at a time; checks every answer against the known signer. */
async function measure(name, where, items, inFlight, recover) {
  const startedWall = performance.now();
  const startedMain = mainThreadCpuMicros();
  const startedProcess = processCpuMicros();
  let next = 0;
  let wrong = 0;
  async function lane() {
    while (next < items.length) {
      const item = items[next++];
      if ((await recover(item.hash, item.signature)) !== item.signer) wrong += 1;
    }
  }
  await Promise.all(Array.from({ length: inFlight }, lane));
  const n = items.length;
  const row = {
    option: name,
    where,
    recoveries: n,
    inFlight,
    wallMicros: ((performance.now() - startedWall) * 1000) / n,
    mainThreadCpuMicros: (mainThreadCpuMicros() - startedMain) / n,
    processCpuMicros: (processCpuMicros() - startedProcess) / n,
    wrong,
  };
  if (wrong > 0) throw new Error(`${name}: ${wrong} of ${n} recoveries gave the wrong signer`);
  return row;
}

function tinyRecover(hash, signature) {
  const v = Number.parseInt(signature.slice(130, 132), 16);
  const publicKey = tiny.recover(Buffer.from(hash.slice(2), "hex"), Buffer.from(signature.slice(2, 130), "hex"), v - 27, false);
  if (!publicKey) throw new Error("no public key");
  return checksumAddress(`0x${keccak256(publicKey.subarray(1)).slice(26)}`);
}

/** A bench-only pool of worker threads running recoverAddressFast (the message cost a pool adds). */
function nativeWorkers(size) {
  const source = `
    const { parentPort } = require("node:worker_threads");
    import(${JSON.stringify(new URL("../dist/exact-evm/recover-fast.js", import.meta.url).href)}).then(({ recoverAddressFast }) => {
      parentPort.on("message", ({ id, hash, signature }) => {
        recoverAddressFast(hash, signature).then((address) => parentPort.postMessage({ id, address }), (error) => parentPort.postMessage({ id, error: error.message }));
      });
      parentPort.postMessage({ ready: true });
    });`;
  const workers = Array.from({ length: size }, () => new Worker(source, { eval: true, execArgv: [], env: {} }));
  const pending = new Map();
  let nextId = 1;
  let turn = 0;
  const ready = Promise.all(
    workers.map(
      (worker) =>
        new Promise((resolve) => {
          worker.on("message", (message) => {
            if (message.ready) return resolve();
            const entry = pending.get(message.id);
            pending.delete(message.id);
            if (message.address) entry.resolve(message.address);
            else entry.reject(new Error(message.error));
          });
        }),
    ),
  );
  return {
    ready,
    recover: (hash, signature) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        workers[turn++ % workers.length].postMessage({ id, hash, signature });
      }),
    close: () => Promise.all(workers.map((worker) => worker.terminate())),
  };
}

if (!fastRecoveryStatus().native) throw new Error(`the secp256k1 binding did not load: ${fastRecoveryStatus().reason}`);
const loadAverageAtStart = loadavg()[0];
const rows = [];

// Warm-up: JIT, viem's lazy import of noble, the WASM module.
const warm = signed(200);
for (const item of warm) {
  await recoverAddress(item);
  await recoverAddressFast(item.hash, item.signature);
  tinyRecover(item.hash, item.signature);
}

rows.push(await measure("viem recoverAddress (@noble/curves, JS)", "inline", signed(counts.viemInline), 1, (hash, signature) => recoverAddress({ hash, signature })));

const viemPool = new RecoverPool({ native: false });
// The pool starts its workers after its first inline recoveries; wait until one has loaded viem.
for (const item of signed(64)) await viemPool.recover(item.hash, item.signature);
for (const deadline = Date.now() + 15_000; viemPool.stats().workersReady < Math.min(2, availableParallelism()) && Date.now() < deadline; ) {
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const onWorkersBefore = viemPool.stats().recoveredOnWorkers;
const viemPoolRow = await measure("viem recoverAddress on RecoverPool workers", `${viemPool.stats().workersReady} workers`, signed(counts.viemWorkers), 64, viemPool.recover);
viemPoolRow.shareOnWorkers = (viemPool.stats().recoveredOnWorkers - onWorkersBefore) / counts.viemWorkers;
rows.push(viemPoolRow);
await viemPool.close();

rows.push(await measure("recoverAddressFast (libsecp256k1, npm secp256k1 N-API)", "inline", signed(counts.nativeInline), 1, recoverAddressFast));

const pool = nativeWorkers(2);
await pool.ready;
rows.push(await measure("recoverAddressFast on worker threads", "2 workers", signed(counts.nativeWorkers), 64, pool.recover));
await pool.close();

rows.push(await measure("tiny-secp256k1 recover (libsecp256k1 as WASM)", "inline", signed(counts.wasmInline), 1, async (hash, signature) => tinyRecover(hash, signature)));

const baseline = rows[0].processCpuMicros;
for (const row of rows) row.cpuVsViemInline = row.processCpuMicros / baseline;
const result = { date: new Date().toISOString(), node: process.version, cores: availableParallelism(), loadAverageAtStart, loadAverageAtEnd: loadavg()[0], rows };

if (json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const pad = (value, width) => String(value).padStart(width);
  console.log(`signer recovery, one per never-seen signature (node ${result.node}, ${result.cores} cores, load ${loadAverageAtStart.toFixed(1)} → ${result.loadAverageAtEnd.toFixed(1)})`);
  console.log(`${"option".padEnd(56)} ${"where".padEnd(10)} ${pad("n", 6)} ${pad("wall µs", 9)} ${pad("main µs", 9)} ${pad("cpu µs", 9)} ${pad("cpu/viem", 9)}`);
  for (const row of rows) {
    console.log(
      `${row.option.padEnd(56)} ${row.where.padEnd(10)} ${pad(row.recoveries, 6)} ${pad(row.wallMicros.toFixed(1), 9)} ${pad(row.mainThreadCpuMicros.toFixed(1), 9)} ${pad(row.processCpuMicros.toFixed(1), 9)} ${pad(row.cpuVsViemInline.toFixed(3), 9)}`,
    );
  }
}
