import type { FastifyInstance } from "fastify";
import type { Address, Hex } from "viem";
import { buildApp } from "../../src/app.js";
import { createChainRegistry } from "../../src/chain/registry.js";
import { createSignerPool } from "../../src/chain/signers.js";
import { systemClock, type Clock } from "../../src/clock.js";
import { defaultLimits, type Limits, type NetworkConfig, type Policy } from "../../src/config.js";
import { createServices, type Services } from "../../src/services.js";
import { openDatabase } from "../../src/store/db.js";
import { runMigrations } from "../../src/store/migrate.js";
import { keys } from "./chain.js";

export interface TestFacilitatorOptions {
  databaseUrl: string;
  rpcUrls: string[];
  token: Address;
  chainId?: number;
  signerKeys?: Hex[];
  limits?: Partial<Limits>;
  clock?: Clock;
  startWatcher?: boolean;
  policy?: Policy;
}

export interface TestFacilitator {
  app: FastifyInstance;
  services: Services;
  close(): Promise<void>;
}

const silentLog = { info: () => {}, warn: () => {}, error: () => {} };

/** A real facilitator (real Postgres, real chain) built the way main.ts builds it, without listening. */
export async function startTestFacilitator(options: TestFacilitatorOptions): Promise<TestFacilitator> {
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
    policy: options.policy,
  });
  const app = await buildApp({ services });
  if (options.startWatcher) services.watcher.start();
  return {
    app,
    services,
    close: async () => {
      await services.watcher.stop();
      await app.close();
      await database.close();
    },
  };
}
