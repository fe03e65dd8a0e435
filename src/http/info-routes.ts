import type { FastifyInstance } from "fastify";
import type { Services } from "../services.js";
import { paymentIdentifierExtension } from "../protocol/payment-identifier.js";
import { eip2612GasSponsoringExtension } from "../protocol/eip2612-extension.js";
import { redactedFirstLine } from "../redact.js";
import { withTimeout } from "../util/with-timeout.js";

export async function infoRoutes(app: FastifyInstance, options: { services: Services }): Promise<void> {
  const { services } = options;
  app.get("/supported", async () => supportedAnswer(services));

  /** Prometheus exposition format; see README "Metrics". */
  app.get("/metrics", async (request, reply) => {
    return reply.header("content-type", services.metrics.registry.contentType).send(await services.metrics.render(request.log));
  });

  /** Process is up. Load balancers should use /ready. */
  app.get("/health", async () => ({ status: "ok" }));

  /** Postgres and every network's RPC answer: this instance can take payments. */
  app.get("/ready", async (_request, reply) => {
    const timeoutMs = services.deps.limits.readinessTimeoutMs;
    // RPC URLs not known to serve their chain: an unreachable one is listed (failover covers it), one
    // that answers another chain makes this instance unready (it could read another chain's receipts).
    const rpcUrlChecks = services.deps.rpcUrlChecks;
    const rpcUrlProblems = rpcUrlChecks ? rpcUrlChecks.problems(timeoutMs) : Promise.resolve([]);
    const [postgres, ...networks] = await Promise.all([
      probe(() => services.pingDatabase(), timeoutMs),
      ...services.deps.chains.all().map(async (handle) => ({
        network: handle.config.network,
        status: await probe(async () => {
          await handle.publicClient.getBlockNumber({ cacheTime: 0 });
        }, timeoutMs),
      })),
    ]);
    const urlProblems = await rpcUrlProblems;
    const wrongChain = (rpcUrlChecks?.wrongChains().length ?? 0) > 0;
    const ready = postgres === "ok" && !wrongChain && networks.every((entry) => entry.status === "ok");
    return reply.code(ready ? 200 : 503).send({
      status: ready ? "ready" : "unavailable",
      postgres,
      networks: Object.fromEntries(networks.map((entry) => [entry.network, entry.status])),
      ...(urlProblems.length > 0 ? { rpcUrls: urlProblems } : {}),
    });
  });
}

/**
 * v2 kinds (CAIP-2) for every network, v1 kinds where the network has a v1 name; concrete names only.
 * `upto` (v2 only) where Permit2 and x402's upto proxy have code (asked once per chain and kept;
 * during an RPC outage the last known answer: permit2/presence.ts `listed`), with `extra.facilitatorAddress` — the key upto payers must name in their
 * witness, and the one that sends their settlements. It is the first signer key, so it stays the
 * same across restarts and instances while resource servers cache it (2.27's own facilitator picks
 * one at random per call); any of our keys is accepted in a witness. `exact` needs no extra: its
 * Permit2 payloads are told apart by their shape.
 * Extensions: payment-identifier (its id is /settle's idempotency key, see payment-routes.ts),
 * eip2612GasSponsoring (Permit2 payments may carry the payer's EIP-2612 permit for Permit2).
 */
export async function supportedAnswer(services: Services) {
  const facilitatorAddress = services.deps.signers.addresses()[0]!;
  const kinds = await Promise.all(
    services.networks.map(async (network) => {
      const handle = services.deps.chains.get(network.chainId);
      // Cached, bounded, and from the last known state during an RPC outage (Permit2Contracts.listed).
      const upto = handle ? await services.permit2Contracts.listed(network.chainId, handle.publicClient, "upto", services.deps.limits.readinessTimeoutMs) : false;
      return [
        { x402Version: 2, scheme: "exact", network: network.network },
        ...(upto ? [{ x402Version: 2, scheme: "upto", network: network.network, extra: { facilitatorAddress } }] : []),
        ...(network.v1Name ? [{ x402Version: 1, scheme: "exact", network: network.v1Name }] : []),
      ];
    }),
  );
  // Extension keys this facilitator implements (x402 v2 §7.3): "bazaar" unless BAZAAR_ENTRIES_MAX=0.
  const extensions: string[] = [paymentIdentifierExtension, eip2612GasSponsoringExtension, ...(services.bazaar.enabled ? ["bazaar"] : [])];
  return { kinds: kinds.flat(), extensions, signers: { "eip155:*": services.deps.signers.addresses() } };
}

/** "ok", or "down: " and why, within timeoutMs (READINESS_TIMEOUT_MS). */
async function probe(check: () => Promise<void>, timeoutMs: number): Promise<string> {
  try {
    await withTimeout(check(), timeoutMs, () => {
      throw new Error("timeout");
    });
    return "ok";
  } catch (error) {
    // The first line of an RPC error may quote the RPC URL and its API key: /ready is public.
    return `down: ${redactedFirstLine(error)}`;
  }
}
