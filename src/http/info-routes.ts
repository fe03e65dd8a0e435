import type { FastifyInstance } from "fastify";
import type { Services } from "../services.js";
import { redactedMessage } from "../redact.js";

/** How long /ready waits for each dependency before calling it down. */
const readinessProbeTimeoutMs = 2_000;

export async function infoRoutes(app: FastifyInstance, options: { services: Services }): Promise<void> {
  const { services } = options;
  const supported = supportedAnswer(services);

  app.get("/supported", async () => supported);

  /** Prometheus exposition format; see README "Metrics". */
  app.get("/metrics", async (request, reply) => {
    return reply.header("content-type", services.metrics.registry.contentType).send(await services.metrics.render(request.log));
  });

  /** Process is up. Load balancers should use /ready. */
  app.get("/health", async () => ({ status: "ok" }));

  /** Postgres and every network's RPC answer: this instance can take payments. */
  app.get("/ready", async (_request, reply) => {
    const [postgres, ...networks] = await Promise.all([
      probe(() => services.pingDatabase()),
      ...services.deps.chains.all().map(async (handle) => ({
        network: handle.config.network,
        status: await probe(async () => {
          await handle.publicClient.getBlockNumber({ cacheTime: 0 });
        }),
      })),
    ]);
    const ready = postgres === "ok" && networks.every((entry) => entry.status === "ok");
    return reply.code(ready ? 200 : 503).send({
      status: ready ? "ready" : "unavailable",
      postgres,
      networks: Object.fromEntries(networks.map((entry) => [entry.network, entry.status])),
    });
  });
}

/** v2 kinds (CAIP-2) for every network, v1 kinds where the network has a v1 name; concrete names only. */
export function supportedAnswer(services: Services) {
  const kinds = services.networks.flatMap((network) => [
    { x402Version: 2, scheme: "exact", network: network.network },
    ...(network.v1Name ? [{ x402Version: 1, scheme: "exact", network: network.v1Name }] : []),
  ]);
  return { kinds, extensions: [] as string[], signers: { "eip155:*": services.deps.signers.addresses() } };
}

async function probe(check: () => Promise<void>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("timeout")), readinessProbeTimeoutMs);
      }),
    ]);
    return "ok";
  } catch (error) {
    // The first line of an RPC error may quote the RPC URL and its API key: /ready is public.
    return `down: ${redactedMessage(error, 1_000).split("\n")[0]!.slice(0, 200)}`;
  } finally {
    clearTimeout(timer);
  }
}
