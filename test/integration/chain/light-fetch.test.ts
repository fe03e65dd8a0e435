/**
 * The registry's RPC transport (src/chain/light-fetch.ts: viem's http transport over node:http with
 * a keep-alive pool instead of the global fetch): the same answers from a real Anvil, batched or not,
 * and the same error classes viem's callers judge (rpc-errors.ts, registry failover): a JSON-RPC
 * error stays a JSON-RPC error, a refused connection and an HTTP status are HttpRequestErrors, a
 * hung node a TimeoutError. Its bounds: connections per origin, answer size.
 * RPC outages through the whole facilitator are test/integration/http/rpc-faults.test.ts.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BaseError, HttpRequestError, RpcRequestError, TimeoutError, createPublicClient, http as viemHttp, type PublicClient } from "viem";
import { createLightFetch, type LightFetchOptions } from "../../../src/chain/light-fetch.js";
import { createChainRegistry } from "../../../src/chain/registry.js";
import { systemClock } from "../../../src/clock.js";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";

let chain: TestChain;
beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(addressOf(keys.payer), 123_456n);
});
afterAll(() => chain?.stop());

function clientOver(url: string, options?: Partial<LightFetchOptions>, batch = true): { client: PublicClient; close(): void } {
  const light = createLightFetch({ socketsPerOriginMax: 8, idleSocketMs: 4_000, responseBytesMax: 1024 * 1024, ...options });
  const transport = viemHttp(url, { timeout: 1_000, retryCount: 0, batch: batch ? { batchSize: 64, wait: 0 } : false, fetchFn: light.fetch as unknown as typeof fetch });
  return { client: createPublicClient({ transport, cacheTime: 0 }) as PublicClient, close: light.close };
}

/** A local HTTP server answering every request with `answer`, counting connections and requests. */
async function startServer(answer: (request: http.IncomingMessage, response: http.ServerResponse, body: string) => void) {
  const sockets = new Set<Socket>();
  let connections = 0;
  let requests = 0;
  const server = http.createServer((request, response) => {
    requests += 1;
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => answer(request, response, body));
  });
  server.on("connection", (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats: () => ({ connections, requests }),
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("light fetch against Anvil", () => {
  it("answers reads, one at a time and batched, as the global fetch does", async () => {
    const light = clientOver(chain.rpcUrl);
    try {
      const read = (client: PublicClient) =>
        Promise.all([
          client.getChainId(),
          client.readContract({ address: chain.token, abi: eip3009Abi, functionName: "balanceOf", args: [addressOf(keys.payer)] }),
          ...Array.from({ length: 20 }, () => client.getBlockNumber({ cacheTime: 0 })),
        ]);
      const ours = await read(light.client);
      const reference = await read(chain.publicClient);
      expect(ours).toEqual(reference);
      expect(ours[1]).toBe(123_456n);
      const single = clientOver(chain.rpcUrl, {}, false);
      expect(await single.client.getChainId()).toBe(chain.chainId);
      single.close();
    } finally {
      light.close();
    }
  });

  it("keeps a JSON-RPC error a JSON-RPC error (a revert is the node answering, not failing)", async () => {
    const light = clientOver(chain.rpcUrl);
    try {
      const ask = (client: PublicClient): Promise<BaseError> =>
        client.request({ method: "eth_nonexistentMethod" as "eth_chainId" }).then(
          () => {
            throw new Error("the node answered an unknown method");
          },
          (caught: unknown) => caught as BaseError,
        );
      const [error, reference] = await Promise.all([ask(light.client), ask(chain.publicClient)]);
      expect(error.constructor).toBe(reference.constructor);
      expect(error.walk((cause) => cause instanceof RpcRequestError)).toBeInstanceOf(RpcRequestError);
      expect(error.walk((cause) => cause instanceof HttpRequestError)).toBeNull();
    } finally {
      light.close();
    }
  });

  it("serves the registry's reads (the facilitator's one client per network)", async () => {
    const registry = createChainRegistry(
      [{ network: "eip155:84532", chainId: chain.chainId, rpcUrls: [chain.rpcUrl], assets: [] } as never],
      { rpcTimeoutMs: 2_000, rpcRetryCount: 0 },
      { clock: systemClock },
    );
    expect(await registry.get(chain.chainId)!.publicClient.getChainId()).toBe(chain.chainId);
  });
});

describe("light fetch failures and bounds", () => {
  it("turns a refused connection into an HttpRequestError without a status (a connection failure)", async () => {
    const server = await startServer((_request, response) => response.end());
    const { url } = server;
    await server.stop();
    const light = clientOver(url);
    try {
      const error = await light.client.getChainId().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(HttpRequestError);
      expect((error as HttpRequestError).status).toBeUndefined();
    } finally {
      light.close();
    }
  });

  it("turns an HTTP error status into an HttpRequestError with that status", async () => {
    const server = await startServer((_request, response) => {
      response.statusCode = 429;
      response.setHeader("content-type", "text/plain");
      response.end("slow down");
    });
    const light = clientOver(server.url);
    try {
      const error = await light.client.getChainId().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(HttpRequestError);
      expect((error as HttpRequestError).status).toBe(429);
    } finally {
      light.close();
      await server.stop();
    }
  });

  it("lets viem's timeout end a request to a node that never answers (TimeoutError), and closes it", async () => {
    const held: http.ServerResponse[] = [];
    const server = await startServer((_request, response) => held.push(response));
    const light = clientOver(server.url);
    try {
      const error = await light.client.getChainId().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(TimeoutError);
    } finally {
      light.close();
      await server.stop();
    }
  });

  it("refuses an answer larger than responseBytesMax", async () => {
    const server = await startServer((_request, response) => {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: `0x${"ab".repeat(10_000)}` }));
    });
    const light = clientOver(server.url, { responseBytesMax: 4_096 }, false);
    try {
      const error = await light.client.request({ method: "eth_chainId" }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(HttpRequestError);
      expect(String((error as HttpRequestError).cause)).toMatch(/larger than 4096 bytes/);
    } finally {
      light.close();
      await server.stop();
    }
  });

  it("opens at most socketsPerOriginMax connections, and reuses them", async () => {
    const server = await startServer((_request, response, body) => {
      const { id } = JSON.parse(body) as { id: number };
      setTimeout(() => {
        response.setHeader("content-type", "application/json");
        response.end(JSON.stringify({ jsonrpc: "2.0", id, result: "0x1" }));
      }, 20);
    });
    const light = clientOver(server.url, { socketsPerOriginMax: 3 }, false);
    try {
      const answers = await Promise.all(Array.from({ length: 30 }, () => light.client.request({ method: "eth_chainId" })));
      expect(answers).toEqual(Array.from({ length: 30 }, () => "0x1"));
      expect(server.stats().requests).toBe(30);
      expect(server.stats().connections).toBe(3);
    } finally {
      light.close();
      await server.stop();
    }
  });
});
