import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Address, Hex } from "viem";
import { buildApp } from "../../src/app.js";
import { createChainRegistry } from "../../src/chain/registry.js";
import { createMetrics } from "../../src/metrics.js";
import { createSignerPool } from "../../src/chain/signers.js";
import { systemClock, type Clock } from "../../src/clock.js";
import { defaultLimits, type AssetConfig, type Limits, type NetworkConfig, type Policy, type SendMode } from "../../src/config.js";
import { createServices, type Services } from "../../src/services.js";
import type { ScreeningConfig } from "../../src/screening/screening.js";
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
  /** Default: TestUSDC's domain ("USDC", "2", 6 decimals) at `token`. */
  asset?: AssetConfig;
  /** Default: "base-sepolia" on chain 84532, else none. */
  v1Name?: string | null;
  /** The network's block explorer (the dashboard links to it). Default: none. */
  explorerUrl?: string;
  /** Listen on 127.0.0.1:0 (SDK clients, browsers); otherwise tests use app.inject. */
  listen?: boolean;
  /** A real pino logger for the services and the app, as server-process.ts wires it. Default: silent. */
  log?: Logger;
  /** BUILDER_CODE (ERC-8021 attribution on every settlement transaction). Default: none. */
  builderCode?: string;
  /** Sanctions screening: the denylist and the oracle failure mode (src/screening/). Default: none. */
  screening?: ScreeningConfig;
  /** The network's sanctions oracle contract. Default: none. */
  sanctionsOracle?: Address;
  /** SEND_MODE. Default auto: Anvil serves eth_sendRawTransactionSync, so settlements are sync sends. */
  sendMode?: SendMode;
}

export interface TestFacilitator {
  app: FastifyInstance;
  services: Services;
  /** http://127.0.0.1:<port> when listening. */
  baseUrl: string | undefined;
  close(): Promise<void>;
}

const silentLog = { info: () => {}, warn: () => {}, error: () => {} };

/** A real facilitator (real Postgres, real chain) built the way server-process.ts builds it, without listening. */
export async function startTestFacilitator(options: TestFacilitatorOptions): Promise<TestFacilitator> {
  await runMigrations(options.databaseUrl);
  const chainId = options.chainId ?? 84532;
  const network: NetworkConfig = {
    network: `eip155:${chainId}`,
    chainId,
    v1Name: options.v1Name !== undefined ? options.v1Name : chainId === 84532 ? "base-sepolia" : null,
    rpcUrls: options.rpcUrls,
    assets: [options.asset ?? { address: options.token, name: "USDC", version: "2", decimals: 6 }],
    ...(options.explorerUrl === undefined ? {} : { explorerUrl: options.explorerUrl }),
    ...(options.sanctionsOracle ? { sanctionsOracle: options.sanctionsOracle } : {}),
  };
  const limits: Limits = { ...defaultLimits, rpcTimeoutMs: 3_000, settleBudgetMs: 10_000, reconcileIntervalMs: 200, ...options.limits };
  const database = openDatabase(options.databaseUrl, limits);
  const clock = options.clock ?? systemClock;
  const metrics = createMetrics();
  const services = createServices({
    database,
    metrics,
    chains: createChainRegistry([network], limits, { clock, onRpcError: metrics.rpcError, sendMode: options.sendMode }),
    signers: createSignerPool(options.signerKeys ?? [keys.facilitator], limits, clock),
    clock,
    limits,
    log: options.log ?? silentLog,
    policy: options.policy,
    builderCode: options.builderCode,
    screening: options.screening,
  });
  const app = await buildApp({ services, logger: options.log });
  if (options.startWatcher) services.watcher.start();
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
      await services.close();
      await database.close();
    },
  };
}
