import { afterAll, beforeAll } from "vitest";
import { addressOf, keys, startTestChain, type TestChain, type TestChainOptions } from "./chain.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { startTestFacilitator, type TestFacilitator, type TestFacilitatorOptions } from "./facilitator.js";

export interface PaymentFixture {
  chain: TestChain;
  database: TestDatabase;
  facilitator: TestFacilitator;
}

export interface PaymentFixtureOptions {
  /** Names the test database. */
  label: string;
  chain?: TestChainOptions;
  /** TestUSDC minted to the default payer (keys.payer) before the tests. */
  payerBalanceAtomic?: bigint;
  facilitator?: Omit<TestFacilitatorOptions, "databaseUrl" | "rpcUrls" | "token">;
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
    fixture.facilitator = await startTestFacilitator({
      databaseUrl: fixture.database.url,
      rpcUrls: [fixture.chain.rpcUrl],
      token: fixture.chain.token,
      ...options.facilitator,
    });
  });
  afterAll(async () => {
    await fixture.facilitator?.close();
    await fixture.database?.drop();
    await fixture.chain?.stop();
  });
  return fixture;
}
