/**
 * One owner's concurrent payments, each with the eip2612GasSponsoring permit the 2.27 client signs
 * when its allowance to Permit2 is short: the permits share the token's nonce, so only one can be
 * used (review 16 M1). On 2 s blocks, behind a proxy that makes eth_estimateGas use `latest` (as
 * reth and op-geth do; Anvil defaults to pending, which hides the problem): none of our
 * transactions reverts, at most one settles with the permit, the others are refused cleanly.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/database.js";
import { freshPayer, latestEstimateProxy, ourTransactionsFor, paymentWithPermit, waitForBlocks, type PermitPaymentOptions } from "../../helpers/eip2612-permits.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";

const payTo = addressOf(keys.payTo);
const signerAddresses = [addressOf(keys.facilitator), addressOf(keys.facilitator2)];
let chain: TestChain;
let database: TestDatabase;
let facilitator: TestFacilitator;
let proxy: { url: string; stop(): Promise<void> };
let payments: PermitPaymentOptions;

beforeAll(async () => {
  chain = await startTestChain({ blockTimeSeconds: 2 });
  proxy = await latestEstimateProxy(chain.rpcUrl);
  database = await createTestDatabase("permit2_2612_lanes");
  facilitator = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [proxy.url], token: chain.token, signerKeys: [keys.facilitator, keys.facilitator2], limits: { settleBudgetMs: 15_000 } });
  payments = { chain, payTo, uptoFacilitator: addressOf(keys.facilitator) };
}, 60_000);
afterAll(async () => {
  await facilitator?.close();
  await proxy?.stop();
  await database?.drop();
  await chain?.stop();
});

async function settle(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await facilitator.app.inject({ method: "POST", url: "/settle", payload: body as Record<string, unknown> });
  return { status: response.statusCode, json: response.json() as Record<string, unknown> };
}

describe("one owner's concurrent EIP-2612 permits (they share the token's nonce)", () => {
  for (const scheme of ["exact", "upto"] as const) {
    it(`${scheme}: 6 at once → one settles with the permit, the rest refused cleanly, no transaction of ours reverts`, async () => {
      const owner = await freshPayer(chain);
      await waitForBlocks(chain, 1n);
      const fromBlock = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
      const bodies = await Promise.all(Array.from({ length: 6 }, () => paymentWithPermit(payments, owner, scheme, 10_000n)));
      const answers = await Promise.all(bodies.map((body) => settle(scheme === "upto" ? { ...body, paymentRequirements: { ...body.paymentRequirements, amount: "4000" } } : body)));
      // A settlement_pending answer would still be in flight: wait for two more blocks before counting.
      await waitForBlocks(chain, 2n);
      const successes = answers.filter((answer) => answer.json.success === true);
      const refused = answers.filter((answer) => answer.json.success !== true);
      expect(successes.length).toBe(1);
      for (const answer of refused) {
        expect([429, 200]).toContain(answer.status);
        expect(["payer_busy", "permit2_allowance_required"]).toContain(answer.json.errorReason ?? answer.json.error);
        expect(answer.json.transaction ?? "").toBe("");
      }
      const { sent, reverted } = await ourTransactionsFor(chain, signerAddresses, owner.address, fromBlock);
      expect({ sent, reverted }).toEqual({ sent: successes.length, reverted: 0 });

      // Afterwards the used permit is refused without gas: its nonce is no longer the token's.
      const refusedBody = bodies[answers.findIndex((answer) => answer.json.success !== true)]!;
      const again = await settle(scheme === "upto" ? { ...refusedBody, paymentRequirements: { ...refusedBody.paymentRequirements, amount: "10000" } } : refusedBody);
      expect(again.json).toMatchObject({ success: false, errorReason: "permit2_allowance_required" });
      expect(String(again.json.errorMessage ?? again.json.message ?? "")).toMatch(/nonce/);
      expect(await ourTransactionsFor(chain, signerAddresses, owner.address, fromBlock)).toEqual({ sent: 1, reverted: 0 });
    }, 90_000);
  }
});
