import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { recoverAddress, type Address, type Hex } from "viem";
import { fastRecoveryStatus, recoverAddressFast } from "./recover-fast.js";

/**
 * ECDSA signer recovery for verify and settle: the services' one RecoverSigner.
 *
 * Normally (`native`): recoverAddressFast (libsecp256k1, ~0.1 ms) on the calling thread, and no
 * worker ever starts. Measured (`npm run bench:recover`): on two worker threads it costs the event
 * loop ~15 µs of messaging instead of ~75 µs of recovery but the process 1.3–1.7× the CPU in all
 * (structured clone, two wake-ups), and on this 2-core machine the other core is not idle under load
 * (Postgres, the RPC node, the load generator), so a pool no longer pays for itself.
 *
 * When the binding did not load (recover-fast.ts): viem's recoverAddress, JS secp256k1
 * (@noble/curves), ~1.5–5 ms of CPU that would block the event loop — so on worker threads, as
 * before: they use the machine's other cores and the main thread keeps serving HTTP, Postgres and
 * RPC answers. The work is the same viem call; only the thread differs.
 *
 * Bounds: at most `recoveryWorkersMax` workers, started after `recoveriesBeforeWorkers` recoveries; at most `recoveryPendingMax`
 * recoveries waiting on them (beyond that, recovered inline); each waits at most
 * `recoveryTimeoutMs` (then inline). A worker that dies is replaced on the next use; after
 * `workerFailuresMax` failures the pool is off and every recovery runs inline, as before.
 *
 * One pool per Services (createServices builds it, Services.close() closes it); nothing here but the
 * once-per-process warning is
 * module state. Hand-written rather than piscina/tinypool: those queue a task until a worker is up
 * (here a recovery never waits for a worker to load viem) and would leave the lazy start, the
 * inline fallbacks and the failure budget to be written around them anyway.
 */
export const recoveryWorkersMax = Math.max(1, Math.min(4, availableParallelism()));
export const recoveryPendingMax = 1_024;
export const recoveryTimeoutMs = 5_000;
/**
 * Workers (each a thread with its own copy of viem, ~30 MB) start only once this pool has
 * recovered this many signatures inline: a CLI command or a quiet test never pays for them, a
 * loaded server has them within its first second.
 */
export const recoveriesBeforeWorkers = 32;
const workerFailuresMax = 8;

/** The signer of `hash`; rejects as viem's recoverAddress does for a signature that does not recover. */
export type RecoverSigner = (hash: Hex, signature: Hex) => Promise<Address>;

/** viem's recoverAddress on this thread (what the pool falls back to). */
export const recoverInline: RecoverSigner = (hash, signature) => recoverAddress({ hash, signature });

interface Pending {
  resolve: (address: Address) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface PoolWorker {
  worker: Worker;
  /** False until the worker has loaded viem: until then recoveries run inline, so starting adds no latency. */
  ready: boolean;
  pending: Map<number, Pending>;
  /** Takes the worker out of the pool (its pending recoveries then run inline) and stops it. */
  fail(error: Error): void;
}

const workerUrl = new URL("./recover-worker.mjs", import.meta.url);

/** A recovery the worker refused (the signature's fault), as opposed to a worker failure. */
class RecoveryRefused extends Error {}

export interface RecoverPoolOptions {
  /**
   * Recover with libsecp256k1 on the calling thread (recoverAddressFast) when its binding loaded,
   * and start no worker. Default true; false keeps viem on the workers (the fallback, and its tests).
   */
  native?: boolean;
  /** Told once per process when the binding did not load (recovery then runs viem on the workers). */
  log?: { warn(object: object, message: string): void };
}

/** The binding's absence is logged once per process, not once per pool. */
let nativeAbsenceLogged = false;

export class RecoverPool {
  /** True: every recovery is recoverAddressFast on the calling thread, no worker is ever started. */
  readonly native: boolean;
  private readonly workers: (PoolWorker | undefined)[] = [];
  private nextId = 1;
  private pendingTotal = 0;
  private workerFailures = 0;
  private recoveredOnWorkers = 0;
  private recoveredInline = 0;
  private recoveredNative = 0;
  private closed = false;

  constructor(options: RecoverPoolOptions = {}) {
    const status = fastRecoveryStatus();
    this.native = (options.native ?? true) && status.native;
    if (!status.native && !nativeAbsenceLogged && options.log) {
      nativeAbsenceLogged = true;
      options.log.warn(
        { reason: status.reason },
        "libsecp256k1 (npm package secp256k1) did not load: signer recovery runs viem's JavaScript secp256k1 on worker threads (~30x the CPU per cold verify)",
      );
    }
  }

  /** For tests and diagnostics. */
  stats() {
    const { recoveredOnWorkers, recoveredInline, recoveredNative, workerFailures } = this;
    const running = this.workers.filter((entry) => entry !== undefined);
    return { workersRunning: running.length, workersReady: running.filter((entry) => entry.ready).length, recoveredOnWorkers, recoveredInline, recoveredNative, workerFailures };
  }

  /** The signer of `hash`: on a worker when the pool can take it, else inline. Same result, same errors. A RecoverSigner (bound). */
  readonly recover: RecoverSigner = async (hash, signature) => {
    if (this.native) {
      this.recoveredNative += 1;
      return recoverAddressFast(hash, signature);
    }
    const poolOpen =
      !this.closed && this.recoveredInline >= recoveriesBeforeWorkers && this.workerFailures < workerFailuresMax && this.pendingTotal < recoveryPendingMax;
    const target = poolOpen ? this.leastBusyWorker() : undefined;
    if (!target) return this.recoverHere(hash, signature);
    try {
      const address = await this.recoverOn(target, hash, signature);
      this.recoveredOnWorkers += 1;
      return address;
    } catch (error) {
      if (error instanceof RecoveryRefused) throw new Error(error.message);
      // The worker failed or timed out, not the signature: do it here.
      return this.recoverHere(hash, signature);
    }
  };

  /** Stops every worker (pending recoveries then run inline). The pool starts workers again on next use. */
  async stopWorkers(): Promise<void> {
    const running = this.workers.splice(0, this.workers.length).filter((entry) => entry !== undefined);
    for (const entry of running) for (const pending of [...entry.pending.values()]) pending.reject(new Error("recovery workers stopped"));
    await Promise.all(running.map((entry) => entry.worker.terminate()));
  }

  /** Shutdown: stops every worker for good; recoveries still asked for run inline. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stopWorkers();
  }

  private recoverHere(hash: Hex, signature: Hex): Promise<Address> {
    this.recoveredInline += 1;
    return recoverInline(hash, signature);
  }

  private recoverOn(target: PoolWorker, hash: Hex, signature: Hex): Promise<Address> {
    const id = this.nextId++;
    this.pendingTotal += 1;
    return new Promise<Address>((resolve, reject) => {
      const settle = () => {
        clearTimeout(entry.timer);
        target.pending.delete(id);
        this.pendingTotal -= 1;
      };
      const entry: Pending = {
        resolve: (address) => (settle(), resolve(address)),
        reject: (error) => (settle(), reject(error)),
        // A worker that takes this long is stuck or starved: out of the pool, or every later recovery would wait for it too.
        timer: setTimeout(() => {
          const error = new Error(`signer recovery took more than ${recoveryTimeoutMs} ms on a worker`);
          entry.reject(error);
          target.fail(error);
        }, recoveryTimeoutMs),
      };
      target.pending.set(id, entry);
      target.worker.postMessage({ id, hash, signature });
    });
  }

  private leastBusyWorker(): PoolWorker | undefined {
    let best: PoolWorker | undefined;
    for (let index = 0; index < recoveryWorkersMax; index += 1) {
      const candidate = this.workers[index] ?? this.startWorker(index);
      if (!candidate?.ready) continue;
      if (candidate.pending.size === 0) return candidate;
      if (!best || candidate.pending.size < best.pending.size) best = candidate;
    }
    return best;
  }

  private startWorker(index: number): PoolWorker | undefined {
    let worker: Worker;
    try {
      // No loader hooks in the worker: it is plain JS and imports only viem.
      worker = new Worker(workerUrl, { execArgv: [], env: {}, stdout: false, stderr: false });
    } catch {
      this.workerFailures += 1;
      return undefined;
    }
    worker.unref(); // never keeps the process alive
    const entry: PoolWorker = { worker, ready: false, pending: new Map(), fail: (error) => fail(error) };
    const fail = (error: Error) => {
      if (this.workers[index] !== entry) return;
      this.workers[index] = undefined;
      this.workerFailures += 1;
      for (const pending of [...entry.pending.values()]) pending.reject(error);
      void worker.terminate().catch(() => undefined);
    };
    worker.on("message", (message: { id: number; address?: Address; error?: string; ready?: true }) => {
      if (message.ready) {
        entry.ready = true;
        return;
      }
      const pending = entry.pending.get(message.id);
      if (!pending) return;
      if (message.address !== undefined) pending.resolve(message.address);
      else pending.reject(new RecoveryRefused(message.error ?? "recovery failed"));
    });
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`signer recovery worker exited with code ${code}`)));
    this.workers[index] = entry;
    return entry;
  }
}
