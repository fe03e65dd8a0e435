import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEther } from "viem";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { paymentBody } from "../../helpers/payments.js";
import { postJson } from "../../helpers/http.js";

/** Signer pool limits and gas refusals, on a real chain (automine). */
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

let chain: TestChain;
let database: TestDatabase;

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(payer, 100_000_000n);
  database = await createTestDatabase("signers");
});

afterAll(async () => {
  await database?.drop();
  await chain?.stop();
});

const body = async () =>
  paymentBody(chain, { payerKey: keys.payer, payTo, amountAtomic });

async function withFacilitator<T>(options: Partial<Parameters<typeof startTestFacilitator>[0]>, run: (f: TestFacilitator) => Promise<T>): Promise<T> {
  const facilitator = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [chain.rpcUrl], token: chain.token, ...options });
  try {
    return await run(facilitator);
  } finally {
    await facilitator.close();
  }
}

const settle = (f: TestFacilitator, payload: unknown) => postJson(f.app, "/settle", payload);

describe("signer pool and gas", () => {
  it("queues settlements beyond the in-flight cap instead of failing them", async () => {
    await withFacilitator({ limits: { inFlightPerSignerMax: 1 } }, async (f) => {
      const bodies = await Promise.all(Array.from({ length: 10 }, body));
      const answers = await Promise.all(bodies.map((b) => settle(f, b)));
      expect(answers.map((a) => a.body.success)).toEqual(Array(10).fill(true));
    });
  });

  it("spreads settlements over several signer keys", async () => {
    const signerKeys = [keys.facilitator2, keys.facilitator3];
    await withFacilitator({ signerKeys, limits: { inFlightPerSignerMax: 4 } }, async (f) => {
      const answers = await Promise.all((await Promise.all(Array.from({ length: 16 }, body))).map((b) => settle(f, b)));
      expect(answers.every((a) => a.body.success)).toBe(true);
      const senders = await Promise.all(answers.map(async (a) => (await chain.publicClient.getTransaction({ hash: a.body.transaction })).from.toLowerCase()));
      expect(new Set(senders)).toEqual(new Set(signerKeys.map((k) => addressOf(k).toLowerCase())));
    });
  });

  it("refuses with 503 when the signer cannot pay for gas, burning no nonce and leaving the payment settleable", async () => {
    const broke = keys.facilitator3;
    const brokeAddress = addressOf(broke);
    await chain.testClient.setBalance({ address: brokeAddress, value: 1000n });
    try {
      const payload = await body();
      await withFacilitator({ signerKeys: [broke] }, async (f) => {
        const nonceBefore = await chain.publicClient.getTransactionCount({ address: brokeAddress });
        const answer = await settle(f, payload);
        expect(answer.status).toBe(503);
        expect(answer.body).toMatchObject({ success: false, errorReason: "service_unavailable", transaction: "" });
        expect(answer.body.errorMessage).toMatch(/fund it/);
        expect(await chain.publicClient.getTransactionCount({ address: brokeAddress })).toBe(nonceBefore);
      });
      await chain.testClient.setBalance({ address: brokeAddress, value: parseEther("10") });
      await withFacilitator({ signerKeys: [broke] }, async (f) => expect((await settle(f, payload)).body).toMatchObject({ success: true }));
    } finally {
      await chain.testClient.setBalance({ address: brokeAddress, value: parseEther("10000") });
    }
  });

  it("refuses with 503 when network fees are above MAX_FEE_PER_GAS_WEI", async () => {
    await withFacilitator({ limits: { maxFeePerGasWei: 1n } }, async (f) => {
      const answer = await settle(f, await body());
      expect(answer.status).toBe(503);
      expect(answer.body.errorMessage).toMatch(/MAX_FEE_PER_GAS_WEI/);
    });
  });

  it("fills a tx-nonce hole left by a rejected send, so later settlements are not stuck behind it", async () => {
    const signer = addressOf(keys.facilitator2);
    // The settlement waits behind the hole until the watcher fills it, so it answers settlement_pending
    // whatever the budget: 5 s only leaves room to prepare, sign and send under load.
    await withFacilitator({ signerKeys: [keys.facilitator2], limits: { settleBudgetMs: 5_000, nonceGapHealAfterMs: 0 } }, async (f) => {
      // As if the tx at nonce n was signed, then refused by the node after n+1 had been handed out.
      const n = await chain.publicClient.getTransactionCount({ address: signer, blockTag: "pending" });
      await withPgClient(database.url, (c) =>
        c.query(
          `insert into signer_nonces (chain_id, address, next_nonce) values ($1, $2, $3)
           on conflict (chain_id, address) do update set next_nonce = excluded.next_nonce`,
          [chain.chainId, signer.toLowerCase(), n + 1],
        ),
      );
      const stuck = await settle(f, await body());
      expect(stuck.body).toMatchObject({ success: false, errorReason: "settlement_pending" }); // waits behind nonce n
      await withPgClient(database.url, (c) =>
        c.query("insert into released_nonces (chain_id, address, nonce) values ($1, $2, $3)", [chain.chainId, signer.toLowerCase(), n]),
      );
      await f.services.watcher.runOnce(); // fills n with a 0-value self-transfer
      await f.services.watcher.runOnce(); // now the settlement at n+1 is mined and confirmed
      const row = await withPgClient(database.url, async (c) => (await c.query("select status, tx_nonce from settlements where tx_hash = $1", [stuck.body.transaction])).rows[0]);
      expect(row).toMatchObject({ status: "confirmed", tx_nonce: String(n + 1) });
      expect(await chain.publicClient.getTransactionCount({ address: signer })).toBe(n + 2);
    });
  });
});
