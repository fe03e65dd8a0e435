/** Forks the load generator (bench/load-worker.ts) and runs jobs on it, each with a time limit. */
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { JobReply, SettleJob, SettleRun, VerifyJob, VerifyRun } from "./load-protocol.js";
import { killOnExit } from "../src/sandbox/child-reaper.js";

const workerEntry = path.join(import.meta.dirname, "load-worker.ts");
const START_TIMEOUT_MS = 30_000;

export interface LoadGenerator {
  pid: number;
  verify(job: Omit<VerifyJob, "kind">, timeoutMs: number): Promise<VerifyRun>;
  settle(job: Omit<SettleJob, "kind">, timeoutMs: number): Promise<SettleRun>;
  stop(): Promise<void>;
}

export async function startLoadGenerator(): Promise<LoadGenerator> {
  const child: ChildProcess = fork(workerEntry, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  killOnExit(child);
  const pending = new Map<number, { resolve: (reply: JobReply) => void }>();
  let nextId = 1;
  let exitedWith: string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exitedWith = `load generator exited (code ${code}, signal ${signal})`;
      for (const { resolve: settle } of pending.values()) settle({ id: -1, error: exitedWith });
      pending.clear();
      resolve();
    }),
  );
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  // The worker says hello with id 0 once its modules are loaded.
  child.on("message", (reply: JobReply) => (reply.id === 0 ? markReady() : pending.get(reply.id)?.resolve(reply)));

  const request = <T>(job: VerifyJob | SettleJob, timeoutMs: number): Promise<T> => {
    const id = nextId++;
    if (exitedWith) return Promise.reject(new Error(exitedWith));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`load job ${job.kind} on ${job.url} did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (reply) => {
          clearTimeout(timer);
          pending.delete(id);
          if (reply.error !== undefined || reply.result === undefined) reject(new Error(reply.error ?? "empty reply"));
          else resolve(reply.result as T);
        },
      });
      child.send({ id, job });
    });
  };

  let startTimer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => "ready" as const),
    exited.then(() => "exited" as const),
    new Promise<"timeout">((resolve) => (startTimer = setTimeout(() => resolve("timeout"), START_TIMEOUT_MS))),
  ]);
  clearTimeout(startTimer);
  if (outcome !== "ready") {
    child.kill("SIGKILL");
    throw new Error(`load generator ${outcome === "exited" ? exitedWith : `not ready within ${START_TIMEOUT_MS} ms`}`);
  }

  return {
    pid: child.pid ?? -1,
    verify: (job, timeoutMs) => request<VerifyRun>({ kind: "verify", ...job }, timeoutMs),
    settle: (job, timeoutMs) => request<SettleRun>({ kind: "settle", ...job }, timeoutMs),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.disconnect();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
