import { Worker } from "node:worker_threads";

/**
 * Validates a Bazaar extension's `info` against its `schema` (JSON Schema draft 2020-12, Ajv) on one
 * worker thread (schema-worker.mjs), one job at a time. The schema is the payer's: a `pattern` can
 * backtrack for minutes on a crafted string, and on the main thread that would stall every payment.
 * On the worker a job that takes longer than `timeoutMs` is stopped (the worker is terminated and
 * started again for the next job) and reported as `timeout`. The worker starts on the first job, so
 * a facilitator that never sees a Bazaar extension never loads Ajv.
 */
export type SchemaVerdict = { valid: true } | { valid: false; reason: "invalid" | "timeout" | "unavailable"; message: string };

const workerUrl = new URL("./schema-worker.mjs", import.meta.url);
/** A worker that cannot start this many times in a row stays off: every job is then `unavailable`. */
const startFailuresMax = 8;
/** Old space of the worker (a schema compiler fed a hostile schema must not grow without bound). */
const workerHeapMb = 64;

interface Job {
  resolve(verdict: SchemaVerdict): void;
}

export class SchemaValidator {
  private worker: Worker | undefined;
  private ready: Promise<boolean> | undefined;
  private readonly jobs = new Map<number, Job>();
  private nextId = 1;
  private startFailures = 0;
  private closed = false;

  constructor(private readonly timeoutMs: number) {}

  /** Never rejects. `info` and `schema` are JSON texts. */
  async validate(info: string, schema: string): Promise<SchemaVerdict> {
    if (this.closed || this.startFailures >= startFailuresMax) return { valid: false, reason: "unavailable", message: "schema validation is unavailable" };
    const started = Date.now();
    const worker = await this.running();
    if (!worker) return { valid: false, reason: "unavailable", message: "the schema validation worker did not start" };
    const id = this.nextId++;
    return new Promise<SchemaVerdict>((resolve) => {
      const timer = setTimeout(
        () => {
          this.jobs.delete(id);
          // Stuck in a payer's regular expression, probably: stop it; the next job starts a fresh worker.
          this.stop(worker);
          resolve({ valid: false, reason: "timeout", message: `schema validation took more than ${this.timeoutMs} ms` });
        },
        Math.max(1, this.timeoutMs - (Date.now() - started)),
      );
      this.jobs.set(id, {
        resolve: (verdict) => {
          clearTimeout(timer);
          this.jobs.delete(id);
          resolve(verdict);
        },
      });
      worker.postMessage({ id, info, schema });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (worker) {
      this.stop(worker);
      await worker.terminate();
    }
  }

  /** The worker once it has loaded Ajv; undefined when it could not start. */
  private async running(): Promise<Worker | undefined> {
    if (!this.worker) this.start();
    const worker = this.worker;
    return (await this.ready) ? worker : undefined;
  }

  private start(): void {
    let worker: Worker;
    try {
      worker = new Worker(workerUrl, {
        execArgv: [],
        env: {},
        stdout: false,
        stderr: false,
        resourceLimits: { maxOldGenerationSizeMb: workerHeapMb },
      });
    } catch {
      this.startFailures += 1;
      this.ready = Promise.resolve(false);
      return;
    }
    worker.unref();
    this.worker = worker;
    this.ready = new Promise<boolean>((resolveReady) => {
      let isReady = false;
      const failed = () => {
        if (isReady) return;
        this.startFailures += 1;
        resolveReady(false);
      };
      const startTimer = setTimeout(() => {
        failed();
        this.stop(worker);
      }, this.timeoutMs);
      worker.on("message", (message: { ready?: boolean; id?: number; valid?: boolean; errors?: string[] }) => {
        if (message.ready) {
          clearTimeout(startTimer);
          isReady = true;
          this.startFailures = 0;
          resolveReady(true);
          return;
        }
        const job = message.id === undefined ? undefined : this.jobs.get(message.id);
        if (!job) return;
        job.resolve(message.valid ? { valid: true } : { valid: false, reason: "invalid", message: (message.errors ?? []).join("; ").slice(0, 500) || "info does not match schema" });
      });
      const gone = () => {
        clearTimeout(startTimer);
        failed();
        this.stop(worker);
      };
      worker.on("error", gone);
      worker.on("exit", gone);
    });
  }

  /** Takes `worker` out of use (its jobs answer `unavailable`) and terminates it. */
  private stop(worker: Worker): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.ready = undefined;
    for (const job of [...this.jobs.values()]) job.resolve({ valid: false, reason: "unavailable", message: "the schema validation worker stopped" });
    void worker.terminate();
  }
}
