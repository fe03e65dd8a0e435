import type { FastifyInstance } from "fastify";
import { buildApp } from "../../src/app.js";
import { createChainRegistry } from "../../src/chain/registry.js";
import { createSignerPool } from "../../src/chain/signers.js";
import { systemClock } from "../../src/clock.js";
import { defaultLimits, openPolicy, type Limits, type NetworkConfig, type Policy } from "../../src/config.js";
import { createServices, type Services } from "../../src/services.js";
import { openDatabase } from "../../src/store/db.js";
import { runMigrations } from "../../src/store/migrate.js";
import { keys } from "./chain.js";
import type { TestFacilitatorOptions } from "./facilitator.js";

export interface OperatorFacilitatorOptions extends Omit<TestFacilitatorOptions, "startWatcher"> {
  /** Default: openPolicy (AUTH=off). */
  policy?: Policy;
  /** Listen on 127.0.0.1:0 (for a browser); otherwise tests use app.inject. */
  listen?: boolean;
}

export interface OperatorFacilitator {
  app: FastifyInstance;
  services: Services;
  /** http://127.0.0.1:<port> when listening. */
  baseUrl: string | undefined;
  close(): Promise<void>;
}

const silentLog = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * A facilitator built like test/helpers/facilitator.ts, with an operator policy (AUTH=api-keys)
 * and optionally listening on a real port, for the history, OpenAPI and dashboard tests.
 */
export async function startOperatorFacilitator(options: OperatorFacilitatorOptions): Promise<OperatorFacilitator> {
  await runMigrations(options.databaseUrl);
  const chainId = options.chainId ?? 84532;
  const network: NetworkConfig = {
    network: `eip155:${chainId}`,
    chainId,
    v1Name: chainId === 84532 ? "base-sepolia" : null,
    rpcUrls: options.rpcUrls,
    assets: [{ address: options.token, name: "USDC", version: "2", decimals: 6 }],
  };
  const limits: Limits = { ...defaultLimits, rpcTimeoutMs: 3_000, settleBudgetMs: 10_000, reconcileIntervalMs: 200, ...options.limits };
  const database = openDatabase(options.databaseUrl, limits);
  const services = createServices({
    database,
    chains: createChainRegistry([network], limits),
    signers: createSignerPool(options.signerKeys ?? [keys.facilitator], limits.inFlightPerSignerMax),
    clock: options.clock ?? systemClock,
    limits,
    log: silentLog,
    policy: options.policy ?? openPolicy,
  });
  const app = await buildApp({ services });
  let baseUrl: string | undefined;
  if (options.listen) {
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === "string") throw new Error("expected a TCP address");
    baseUrl = `http://127.0.0.1:${address.port}`;
  }
  return {
    app,
    services,
    baseUrl,
    close: async () => {
      await services.watcher.stop();
      await app.close();
      await database.close();
    },
  };
}
