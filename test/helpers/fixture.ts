import { afterAll, beforeAll } from "vitest";
import { addressOf, keys, startTestChain, type TestChain, type TestChainOptions } from "./chain.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { startTestFacilitator, type TestFacilitator, type TestFacilitatorOptions } from "./facilitator.js";
import { startFaultyRpcProxy, type FaultyRpcProxy } from "./faulty-rpc-proxy.js";

export interface PaymentFixture {
  chain: TestChain;
  database: TestDatabase;
  facilitator: TestFacilitator;
  /** With `faultyRpc`: the proxy between the facilitator and the chain (the test's own reads go straight to the chain). */
  rpc?: FaultyRpcProxy;
}

export interface PaymentFixtureOptions {
  /** Names the test database. */
  label: string;
  chain?: TestChainOptions;
  /** TestUSDC minted to the default payer (keys.payer) before the tests. */
  payerBalanceAtomic?: bigint;
  facilitator?: Omit<TestFacilitatorOptions, "databaseUrl" | "rpcUrls" | "token">;
  /** The facilitator talks to the chain through a faulty RPC proxy (fixture.rpc), passing until told otherwise. */
  faultyRpc?: boolean;
}

/**
 * The usual integration setup for one test file: Anvil with TestUSDC, a funded payer, a fresh
 * database and a facilitator on both; torn down after the file. Fields are filled in beforeAll.
 */
export function usePaymentFixture(options: PaymentFixtureOptions): PaymentFixture {
  const fixture = {} as PaymentFixture;
  beforeAll(async () => {
    fixture.chain = await startTestChain(options.chain);
    if (options.payerBalanceAtomic) await fixture.chain.mint(addressOf(keys.payer), options.payerBalanceAtomic);
    fixture.database = await createTestDatabase(options.label);
    if (options.faultyRpc) fixture.rpc = await startFaultyRpcProxy({ upstreamUrl: fixture.chain.rpcUrl });
    fixture.facilitator = await startTestFacilitator({
      databaseUrl: fixture.database.url,
      rpcUrls: [fixture.rpc?.url ?? fixture.chain.rpcUrl],
      token: fixture.chain.token,
      ...options.facilitator,
    });
  });
  afterAll(async () => {
    await fixture.facilitator?.close();
    await fixture.rpc?.stop();
    await fixture.database?.drop();
    await fixture.chain?.stop();
  });
  return fixture;
}

/**
 * Another facilitator instance on the fixture's chain (through its RPC, proxy or not), token and
 * database, with its own options: for tests that need two instances, or one with other limits.
 * Closed by the caller, before the fixture's teardown drops the database.
 */
export function startAnotherInstance(fixture: PaymentFixture, options: Omit<TestFacilitatorOptions, "databaseUrl" | "rpcUrls" | "token">): Promise<TestFacilitator> {
  return startTestFacilitator({ databaseUrl: fixture.database.url, rpcUrls: [fixture.rpc?.url ?? fixture.chain.rpcUrl], token: fixture.chain.token, ...options });
}
