/**
 * Review 16 M1 across instances: one owner's concurrent payments, each with the EIP-2612 permit the
 * 2.27 client signs when its allowance to Permit2 is short, split over two facilitator instances on
 * one Postgres and one chain. The permits share the token's nonce, so only one can be used: at most
 * one settlement carrying a permit per (chain, token, owner) may be unfinished across all instances
 * (a partial unique index on settlements, migration 0011), the others answered 429 payer_busy with
 * nothing claimed. On 2 s blocks, estimates at `latest` (the proxy), where a second transaction
 * would pass its estimate and revert on chain at our cost.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { freshPayer, latestEstimateProxy, ourTransactionsFor, paymentWithPermit, waitForBlocks, type PermitPaymentOptions } from "../../helpers/eip2612-permits.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { postJson, type JsonAnswer } from "../../helpers/http.js";
import { newClaim } from "../../helpers/settlement-rows.js";
import { waitFor } from "../../helpers/wait.js";
import { permit2Address } from "../../../src/contracts/permit2.js";

const signerAddresses = [addressOf(keys.facilitator), addressOf(keys.facilitator2)];
let chain: TestChain;
let database: TestDatabase;
let instances: [TestFacilitator, TestFacilitator];
let proxy: { url: string; stop(): Promise<void> };
let payments: PermitPaymentOptions;

beforeAll(async () => {
  chain = await startTestChain({ blockTimeSeconds: 2 });
  proxy = await latestEstimateProxy(chain.rpcUrl);
  database = await createTestDatabase("permit2_2612_two_instances");
  const start = () =>
    startTestFacilitator({ databaseUrl: database.url, rpcUrls: [proxy.url], token: chain.token, signerKeys: [keys.facilitator, keys.facilitator2], limits: { settleBudgetMs: 15_000 }, startWatcher: true });
  instances = [await start(), await start()];
  payments = { chain, payTo: addressOf(keys.payTo), uptoFacilitator: addressOf(keys.facilitator) };
}, 60_000);
afterAll(async () => {
  for (const instance of instances ?? []) await instance?.close();
  await proxy?.stop();
  await database?.drop();
  await chain?.stop();
});

function settle(instance: TestFacilitator, body: unknown): Promise<JsonAnswer> {
  return postJson(instance.app, "/settle", body);
}

/** The owner's settlement rows, by status. */
async function rowsOf(owner: string): Promise<Record<string, number>> {
  const result = await withPgClient(database.url, (client) =>
    client.query<{ status: string; n: number }>("select status, count(*)::int as n from settlements where payer = $1 group by status", [owner.toLowerCase()]),
  );
  return Object.fromEntries(result.rows.map((row) => [row.status, row.n]));
}

describe("one owner's concurrent EIP-2612 permits over two instances on one database", () => {
  for (const scheme of ["exact", "upto"] as const) {
    it(`${scheme}: 6 at once, alternating instances → one transaction, none reverted, the others 429 payer_busy with nothing claimed; then a new payment settles`, async () => {
      const owner = await freshPayer(chain);
      await waitForBlocks(chain, 1n);
      const fromBlock = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
      const charged = (body: Awaited<ReturnType<typeof paymentWithPermit>>) =>
        scheme === "upto" ? { ...body, paymentRequirements: { ...body.paymentRequirements, amount: "4000" } } : body;
      const bodies = await Promise.all(Array.from({ length: 6 }, () => paymentWithPermit(payments, owner, scheme, 10_000n)));
      const answers = await Promise.all(bodies.map((body, i) => settle(instances[i % 2]!, charged(body))));
      // A settlement_pending answer would still be in flight: wait for two more blocks before counting.
      await waitForBlocks(chain, 2n);

      const successes = answers.filter((answer) => answer.body.success === true);
      const busy = answers.filter((answer) => answer.status === 429);
      // One that came after the winner was final is refused by its permit's used nonce, without gas.
      const stale = answers.filter((answer) => answer.status === 200 && answer.body.errorReason === "permit2_allowance_required");
      expect(successes.length).toBe(1);
      expect(busy.length + stale.length).toBe(5);
      for (const answer of busy) {
        expect(answer.body).toMatchObject({ success: false, errorReason: "payer_busy" });
        expect(JSON.stringify(answer.body)).toMatch(/EIP-2612 permit/);
        expect(answer.body.transaction ?? "").toBe("");
      }
      expect(await ourTransactionsFor(chain, signerAddresses, owner.address, fromBlock)).toEqual({ sent: 1, reverted: 0 });
      // A payer_busy answer claimed nothing: no row of it, in any status.
      expect(await rowsOf(owner.address)).toEqual({ confirmed: 1, ...(stale.length > 0 ? { failed: stale.length } : {}) });

      // The winner is final: the lane is free, on either instance. A new payment signs a new permit
      // (the first one's allowance was spent) and settles.
      const next = await paymentWithPermit(payments, owner, scheme, 10_000n);
      const nextAnswer = await settle(instances[1]!, charged(next));
      expect(nextAnswer.body).toMatchObject({ success: true });
      await waitForBlocks(chain, 1n);
      expect(await ourTransactionsFor(chain, signerAddresses, owner.address, fromBlock)).toEqual({ sent: 2, reverted: 0 });
    }, 120_000);
  }
});

describe("the identical payment with its permit, sent to both instances at once", () => {
  it("is one settlement: one success, the others duplicate_settlement, never payer_busy (its own row holds the lane)", async () => {
    const owner = await freshPayer(chain);
    const fromBlock = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
    const body = await paymentWithPermit(payments, owner, "exact", 10_000n);
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => settle(instances[i % 2]!, body)));
    expect(answers.filter((answer) => answer.body.success === true)).toHaveLength(1);
    for (const answer of answers.filter((candidate) => candidate.body.success !== true)) {
      expect(answer.body).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
    }
    await waitForBlocks(chain, 1n);
    expect(await ourTransactionsFor(chain, signerAddresses, owner.address, fromBlock)).toEqual({ sent: 1, reverted: 0 });
  }, 120_000);
});

describe("a crashed instance's settlement carrying a permit", () => {
  it("holds the owner's lane on every instance until the watcher finishes it; a zero charge takes no lane meanwhile", async () => {
    const owner = await freshPayer(chain);
    // What a process that died right after its claim leaves: an unfinished row carrying a permit,
    // leased by the dead process (written here through the repository, as its claim wrote it).
    const crashed = await instances[0].services.settlements.claim(
      newClaim({ asset: chain.token, payer: owner.address, nonceContract: permit2Address, transferMethod: "permit2", scheme: "exact", eip2612Permit: true, leaseMs: 600_000 }),
    );
    expect(crashed).toMatchObject({ status: "claimed", eip2612Permit: true });
    const body = await paymentWithPermit(payments, owner, "exact", 10_000n);
    for (const instance of instances) {
      const busy = await settle(instance, body);
      expect(busy.status).toBe(429);
      expect(busy.body).toMatchObject({ success: false, errorReason: "payer_busy" });
    }
    expect(await rowsOf(owner.address)).toEqual({ claimed: 1 });

    // An upto charge of 0 sends nothing, so it takes no lane: settled (recorded final) meanwhile.
    const zero = await paymentWithPermit(payments, owner, "upto", 10_000n);
    expect(await settle(instances[1], { ...zero, paymentRequirements: { ...zero.paymentRequirements, amount: "0" } })).toMatchObject({ status: 200, body: { success: true, amount: "0" } });

    // The dead process's lease runs out; a watcher (either instance) fails the abandoned claim, which frees the lane.
    await withPgClient(database.url, (client) => client.query("update settlements set lease_until = now() - interval '1 second' where id = $1", [crashed!.id]));
    await waitFor("the watcher to fail the abandoned claim", async () => (await instances[1].services.settlements.findById(crashed!.id))?.status === "failed", 20_000);
    const fromBlock = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
    expect(await settle(instances[1], body)).toMatchObject({ status: 200, body: { success: true } });
    await waitForBlocks(chain, 1n);
    expect(await ourTransactionsFor(chain, signerAddresses, owner.address, fromBlock)).toEqual({ sent: 1, reverted: 0 });
  }, 120_000);
});
