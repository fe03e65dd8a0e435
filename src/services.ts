import type { Address } from "viem";
import type { ChainRegistry } from "./chain/registry.js";
import type { RpcUrlChecks } from "./startup-checks.js";
import type { SignerPool } from "./chain/signers.js";
import type { Clock } from "./clock.js";
import { openPolicy, type Limits, type NetworkConfig, type Policy } from "./config.js";
import { listenReconnectInitialMs, listenReconnectMaxMs, operatorReadTimeoutMs, signerBalanceCacheMs, waitersMax, waitersPerKeyMax, waitRecheckMs } from "./limits.js";
import { ApiKeysRepository } from "./store/api-keys-repo.js";
import { DashboardSessionsRepository } from "./store/dashboard-sessions-repo.js";
import { BazaarCataloguer } from "./bazaar/cataloguer.js";
import { BazaarRepository } from "./store/bazaar-repo.js";
import { RecoverPool } from "./exact-evm/recover-pool.js";
import { builderCodeSuffix } from "./protocol/builder-code.js";
import type { VerifyContext, VerifyResult } from "./exact-evm/verify.js";
import { Permit2Contracts } from "./permit2/presence.js";
import { authorizationKeyOf, transferMethodDriver } from "./transfer-methods/driver.js";
import type { X402Version } from "./protocol/types.js";
import type { PaymentRequest } from "./protocol/types.js";
import { SettlementEngine, type Logger } from "./settlement/engine.js";
import { SettlementWatcher } from "./settlement/watcher.js";
import { pingDatabase, type DatabaseHandle } from "./store/db.js";
import { HistoryRepository } from "./store/history-repo.js";
import { GasBudgetRepository } from "./store/gas-budget-repo.js";
import { PayerFailuresRepository } from "./store/payer-failures-repo.js";
import { IdempotencyRepository, type IdempotencyRecord } from "./store/idempotency-repo.js";
import { ChangeListener, ChangeWaiters, idempotencyChangedChannel, settlementChangedChannel } from "./store/notifications.js";
import type { SettlementRow } from "./store/schema.js";
import { SettlementsRepository } from "./store/settlements-repo.js";
import { ClaimReads } from "./store/claim-reads.js";
import { createMetrics, type Metrics, type ScrapeGauges } from "./metrics.js";
import { unfinishedStatuses } from "./store/settlement-states.js";
import { withTimeout } from "./util/with-timeout.js";
import { createScreening, type Screening, type ScreeningConfig } from "./screening/screening.js";

function scrapeCollector(deps: ServiceDeps, settlements: SettlementsRepository) {
  let balancesReadAtMs: number | undefined;
  return async (gauges: ScrapeGauges) => {
    const reads: Array<Promise<unknown>> = [
      settlements.countUnfinishedByStatus().then((counts) => {
        for (const status of unfinishedStatuses) gauges.unfinishedSettlements.set({ status }, counts[status] ?? 0);
      }),
    ];
    for (const [signer, count] of Object.entries(deps.signers.inFlight())) gauges.settlementsInFlight.set({ signer }, count);
    for (const [signer, count] of Object.entries(deps.signers.transactionsInFlight())) gauges.transactionsInFlight.set({ signer }, count);
    const nowMs = deps.clock.monotonicMs();
    if (balancesReadAtMs === undefined || nowMs - balancesReadAtMs > signerBalanceCacheMs) {
      balancesReadAtMs = nowMs;
      for (const handle of deps.chains.all()) {
        for (const signer of deps.signers.addresses()) {
          reads.push(
            handle.publicClient.getBalance({ address: signer }).then((wei) => gauges.signerBalanceWei.set({ network: handle.config.network, signer }, Number(wei))),
          );
        }
      }
    }
    // Reads that miss the bound leave their gauge as it was; the scrape answers now (the reads are not cancelled).
    await withTimeout(Promise.allSettled(reads), operatorReadTimeoutMs, () => undefined, { unref: true });
  };
}

export interface ServiceDeps {
  database: DatabaseHandle;
  chains: ChainRegistry;
  signers: SignerPool;
  clock: Clock;
  limits: Limits;
  log: Logger;
  metrics?: Metrics;
  /** Default: openPolicy. */
  policy?: Policy;
  /** RPC URLs not yet known to serve their chain (start-up self-check); /ready lists them. */
  rpcUrlChecks?: RpcUrlChecks;
  /** BUILDER_CODE: ERC-8021 attribution appended to every settlement transaction; none by default. */
  builderCode?: string;
  /** Sanctions screening settings; the oracles are per network (NetworkConfig.sanctionsOracle). */
  screening?: ScreeningConfig;
}

/** Everything the routes use, built once from explicit dependencies (tests build their own). */
export interface Services {
  deps: ServiceDeps;
  networks: NetworkConfig[];
  settlements: SettlementsRepository;
  idempotency: IdempotencyRepository;
  /** Retries with the same Idempotency-Key waiting for the first one's answer, by idempotencyNotifyKey. */
  idempotencyWaiters: ChangeWaiters<IdempotencyRecord | undefined>;
  /** Duplicate settles waiting for a row's verdict, by row id. */
  settlementWaiters: ChangeWaiters<SettlementRow | undefined>;
  /** The instance's one LISTEN connection (outside the pool), waking both kinds of waiters across instances. */
  changeListener: ChangeListener;
  gasBudget: GasBudgetRepository;
  engine: SettlementEngine;
  watcher: SettlementWatcher;
  metrics: Metrics;
  policy: Policy;
  apiKeys: ApiKeysRepository;
  /** Browser sessions of the operator dashboard (POST /dashboard/login), each tied to an admin key. */
  dashboardSessions: DashboardSessionsRepository;
  /** Read side of settlements for the operator routes (history, dashboard). */
  history: HistoryRepository;
  /** Signer recovery (libsecp256k1 inline; viem on worker threads when it did not load), shared by verify and settle. */
  recoverPool: RecoverPool;
  /** Whether Permit2 and the x402 proxies have code, per chain: Permit2 payments and /supported's upto kinds. */
  permit2Contracts: Permit2Contracts;
  /** Sanctions screening at verify and settle; undefined when none is configured. */
  screening: Screening | undefined;
  /** Catalogues the bazaar extension of successful settlements, apart from the payment path. */
  bazaar: BazaarCataloguer;
  /** The Bazaar catalogue, read by /discovery/resources and /discovery/search. */
  discovery: BazaarRepository;
  /** Resolves when Postgres answers a query. */
  pingDatabase(): Promise<void>;
  networkServed(version: X402Version, network: string): boolean;
  verify(request: PaymentRequest): Promise<VerifyResult>;
  /**
   * Stops what createServices started: the watcher (unfinished rows stay in Postgres for the next
   * start), the recovery workers, the waiters and the LISTEN connection. Call it once the HTTP
   * server took its last request; the database and the chain clients are the caller's (deps) to
   * close. Idempotent.
   */
  close(): Promise<void>;
}

export function createServices(deps: ServiceDeps): Services {
  const waiting = { perKeyMax: waitersPerKeyMax, totalMax: waitersMax, recheckMs: waitRecheckMs, clock: deps.clock, log: deps.log };
  const settlementWaiters: ChangeWaiters<SettlementRow | undefined> = new ChangeWaiters({ ...waiting, load: (id) => settlements.findById(id) });
  const settlements = new SettlementsRepository(deps.database.db, { onChange: (row) => settlementWaiters.publish(row.id, row) });
  const idempotencyWaiters: ChangeWaiters<IdempotencyRecord | undefined> = new ChangeWaiters({ ...waiting, load: (key) => idempotency.readByNotifyKey(key) });
  const idempotency = new IdempotencyRepository(deps.database.db, { onChange: (key, record) => idempotencyWaiters.publish(key, record) });
  const changeListener = new ChangeListener({
    connect: () => deps.database.listenerClient(),
    channels: {
      [settlementChangedChannel]: (id) => settlementWaiters.changed(id),
      [idempotencyChangedChannel]: (key) => idempotencyWaiters.changed(key),
    },
    onListening: () => {
      settlementWaiters.changedAll();
      idempotencyWaiters.changedAll();
    },
    log: deps.log,
    backoff: { initialMs: listenReconnectInitialMs, maxMs: listenReconnectMaxMs },
  });
  changeListener.start();
  const metrics = deps.metrics ?? createMetrics();
  const gasBudget = new GasBudgetRepository(deps.database.db);
  const payerFailures = new PayerFailuresRepository(deps.database.db);
  const recoverPool = new RecoverPool({ log: deps.log });
  const screening = createScreening({ config: deps.screening, chains: deps.chains, clock: deps.clock, limits: deps.limits, log: deps.log, metrics });
  const screen = screening?.screen;
  const discovery = new BazaarRepository(deps.database.db);
  const permit2Contracts = new Permit2Contracts(deps.clock);
  const bazaar = new BazaarCataloguer({ repo: discovery, limits: deps.limits, log: deps.log, registry: metrics.registry });
  const engine = new SettlementEngine({
    db: deps.database.db,
    repo: settlements,
    chains: deps.chains,
    signers: deps.signers,
    clock: deps.clock,
    limits: deps.limits,
    dataSuffix: deps.builderCode === undefined ? undefined : builderCodeSuffix(deps.builderCode),
    log: deps.log,
    metrics,
    gasBudget,
    payerFailures,
    recoverSigner: recoverPool.recover,
    permit2Contracts,
    screen,
    rowWaiters: settlementWaiters,
  });
  const watcher = new SettlementWatcher({ db: deps.database.db, repo: settlements, chains: deps.chains, signers: deps.signers, engine, clock: deps.clock, log: deps.log, limits: deps.limits, metrics });
  metrics.onScrape(scrapeCollector(deps, settlements));
  const networks = deps.chains.all().map((handle) => handle.config);
  const v1Names = new Set(networks.flatMap((network) => (network.v1Name ? [network.v1Name] : [])));
  const caip2Names = new Set<string>(networks.map((network) => network.network));
  const simulationAccount: Address = deps.signers.addresses()[0]!;
  // Concurrent verifies share their Postgres reads (one query for many payments, never cached).
  const claimReads = new ClaimReads((keys) => settlements.claimedAmong(keys));
  // Built once: verify runs per request, and these closures are the same every time.
  const verifyContext: VerifyContext = {
    chains: deps.chains,
    clock: deps.clock,
    simulationAccount,
    signerAddresses: deps.signers.addresses(),
    permit2Contracts,
    limits: deps.limits,
    recoverSigner: recoverPool.recover,
    screen,
    isClaimed: (payment) => claimReads.isClaimed(authorizationKeyOf(payment)),
  };
  const verifyOptions = { simulate: true };
  let closing: Promise<void> | undefined;
  return {
    deps,
    networks,
    settlements,
    idempotency,
    idempotencyWaiters,
    settlementWaiters,
    changeListener,
    gasBudget,
    engine,
    watcher,
    metrics,
    policy: deps.policy ?? openPolicy,
    apiKeys: new ApiKeysRepository(deps.database.db),
    dashboardSessions: new DashboardSessionsRepository(deps.database.db),
    history: new HistoryRepository(deps.database.db),
    recoverPool,
    permit2Contracts,
    screening,
    bazaar,
    discovery,
    pingDatabase: () => pingDatabase(deps.database.db),
    networkServed: (version, network) => (version === 1 ? v1Names.has(network) : caip2Names.has(network)),
    verify: (request) => transferMethodDriver(request.transferMethod).verify(request, verifyContext, verifyOptions),
    close: () =>
      (closing ??= (async () => {
        screening?.close();
        await watcher.stop();
        await bazaar.close();
        await recoverPool.close();
        settlementWaiters.close();
        idempotencyWaiters.close();
        await changeListener.close();
      })()),
  };
}
