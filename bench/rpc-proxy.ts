/**
 * Counting RPC proxies between each facilitator and Anvil (issue 15: RPC calls per verify and per
 * settled payment). One forked process (bench/rpc-proxy-worker.ts) holds every listener; each
 * facilitator gets its own listener, so its calls are counted apart from the others'.
 */
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import { killOnExit } from "../src/sandbox/child-reaper.js";
import type { ProxyCounts, ProxyReply, ProxyRequest } from "./rpc-proxy-protocol.js";

export type { ProxyCounts } from "./rpc-proxy-protocol.js";

const workerEntry = path.join(import.meta.dirname, "rpc-proxy-worker.ts");
const START_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 10_000;

export interface RpcProxy {
  /** Give this to the facilitator as its RPC URL. */
  url: string;
  counts(): Promise<ProxyCounts>;
  close(): Promise<void>;
}

export interface RpcProxyProcess {
  pid: number;
  open(upstreamUrl: string): Promise<RpcProxy>;
  stop(): Promise<void>;
}

type Op = { op: "open"; upstreamUrl: string } | { op: "close"; port: number } | { op: "counts"; port: number };

export async function startRpcProxyProcess(): Promise<RpcProxyProcess> {
  const child: ChildProcess = fork(workerEntry, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  killOnExit(child);
  const pending = new Map<number, (reply: ProxyReply) => void>();
  let nextId = 1;
  let exitedWith: string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exitedWith = `rpc proxy exited (code ${code}, signal ${signal})`;
      for (const settle of pending.values()) settle({ id: -1, error: exitedWith });
      pending.clear();
      resolve();
    }),
  );
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.on("message", (reply: ProxyReply) => (reply.id === 0 ? markReady() : pending.get(reply.id)?.(reply)));

  const request = (op: Op): Promise<ProxyReply> => {
    if (exitedWith) return Promise.reject(new Error(exitedWith));
    const id = nextId++;
    return new Promise<ProxyReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`rpc proxy ${op.op} did not answer within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      pending.set(id, (reply) => {
        clearTimeout(timer);
        pending.delete(id);
        if (reply.error !== undefined) reject(new Error(`rpc proxy ${op.op}: ${reply.error}`));
        else resolve(reply);
      });
      child.send({ id, ...op } satisfies ProxyRequest);
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
    throw new Error(`rpc proxy ${outcome === "exited" ? exitedWith : `not ready within ${START_TIMEOUT_MS} ms`}`);
  }

  return {
    pid: child.pid ?? -1,
    open: async (upstreamUrl) => {
      const { port } = await request({ op: "open", upstreamUrl });
      if (port === undefined) throw new Error("rpc proxy open: no port");
      return {
        url: `http://127.0.0.1:${port}`,
        counts: async () => (await request({ op: "counts", port })).counts!,
        close: async () => {
          await request({ op: "close", port });
        },
      };
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.disconnect();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** What was forwarded between two readings of the same listener. */
export function countsSince(before: ProxyCounts, after: ProxyCounts): ProxyCounts {
  const byMethod: Record<string, number> = {};
  for (const [method, count] of Object.entries(after.byMethod)) {
    const delta = count - (before.byMethod[method] ?? 0);
    if (delta > 0) byMethod[method] = delta;
  }
  return {
    httpRequests: after.httpRequests - before.httpRequests,
    batches: after.batches - before.batches,
    calls: after.calls - before.calls,
    unparsable: after.unparsable - before.unparsable,
    upstreamErrors: after.upstreamErrors - before.upstreamErrors,
    byMethod,
  };
}
