import { describe, expect, it } from "vitest";
import { addressOf, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { paymentBody } from "../../helpers/payments.js";
import { postJson } from "../../helpers/http.js";

/**
 * A key's daily gas budget under concurrent settles. It was checked against what settlements had
 * already cost, so settles running at the same time all saw an unspent budget: a 1-wei budget let 6
 * concurrent settles through. Now each reserves its worst case (gas limit × fee cap) in Postgres
 * before anything is signed, in one statement, and the reservation becomes the real cost afterwards.
 */
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

const fx = usePaymentFixture({
  label: "gas_budget",
  payerBalanceAtomic: 100_000_000n,
  facilitator: { policy: { auth: "api-keys", allowedPayTo: [], amountMaxAtomic: undefined }, limits: { settleBatchMax: 1 } },
});

const payment = async () =>
  paymentBody(fx.chain, { payerKey: keys.payer, payTo, amountAtomic });

const settle = (body: object, apiKey: string) => postJson(fx.facilitator.app, "/settle", body, { authorization: `Bearer ${apiKey}` });

async function keyWithBudget(name: string, dailyGasBudgetWei: bigint) {
  const { key, row } = await fx.facilitator.services.apiKeys.create({ name, role: "client", dailyGasBudgetWei });
  return { key, id: row.id };
}

async function reservationsOf(apiKeyId: string): Promise<bigint[]> {
  return withPgClient(fx.database.url, async (client) =>
    (await client.query("select reserved_wei from gas_reservations where api_key_id = $1", [apiKeyId])).rows.map((row) => BigInt(row.reserved_wei)),
  );
}

describe("a key's daily gas budget under concurrent settles", () => {
  it("lets no concurrent settle through beyond the budget: a 1-wei budget settles none of 6, and sends nothing", async () => {
    const tiny = await keyWithBudget("tiny", 1n);
    const signerNonceBefore = await fx.chain.publicClient.getTransactionCount({ address: addressOf(keys.facilitator) });
    const answers = await Promise.all(Array.from({ length: 6 }, async () => settle(await payment(), tiny.key)));
    expect(answers.map((answer) => answer.status)).toEqual([429, 429, 429, 429, 429, 429]);
    expect(answers.every((answer) => answer.body.errorReason === "gas_budget_exhausted")).toBe(true);
    expect(await fx.chain.publicClient.getTransactionCount({ address: addressOf(keys.facilitator) })).toBe(signerNonceBefore);
    expect(await fx.facilitator.services.gasBudget.todayWei(tiny.id)).toEqual({ spentWei: 0n, reservedWei: 0n });
  });

  it("settles of 6 concurrent payments only what the budget covers, and spends within it", async () => {
    // One settlement's worst case, measured: a key with room for far more settles once.
    const probe = await keyWithBudget("probe", 10n ** 24n);
    expect((await settle(await payment(), probe.key)).body).toMatchObject({ success: true });
    const [worstCaseWei] = await reservationsOf(probe.id);
    expect(worstCaseWei).toBeGreaterThan(0n);

    const budgetWei = (worstCaseWei! * 5n) / 2n; // room for two at their worst case, not three
    const limited = await keyWithBudget("limited", budgetWei);
    const answers = await Promise.all(Array.from({ length: 6 }, async () => settle(await payment(), limited.key)));
    const settled = answers.filter((answer) => answer.body.success === true);
    const refused = answers.filter((answer) => answer.status === 429);
    expect(settled.length + refused.length).toBe(6);
    expect(settled.length).toBeGreaterThanOrEqual(1);
    // A reservation is released down to the real cost (well below the worst case) once its settle is
    // final, so how many fit depends on how they overlap; what never varies: spent ≤ budget.
    const today = await fx.facilitator.services.gasBudget.todayWei(limited.id);
    expect(today.reservedWei).toBe(0n); // every reservation became a real cost (or was released)
    expect(today.spentWei).toBeGreaterThan(0n);
    expect(today.spentWei).toBeLessThanOrEqual(budgetWei);
    console.log(`[attack] 6 concurrent settles, budget ${budgetWei} wei (2.5 worst cases of ${worstCaseWei}): ${settled.length} settled, ${refused.length} refused, ${today.spentWei} wei spent`);
  });
});
