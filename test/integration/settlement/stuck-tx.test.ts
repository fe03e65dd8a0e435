import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAbi, parseTransaction, type Hex } from "viem";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";

/** Automine off: a settlement priced below the next base fee sits in the pool until replaced. */
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

let chain: TestChain;
let database: TestDatabase;
let facilitator: TestFacilitator;

beforeAll(async () => {
  chain = await startTestChain({ noMining: true });
  await chain.mint(payer, 10_000_000n);
  database = await createTestDatabase("stuck");
  facilitator = await startTestFacilitator({
    databaseUrl: database.url,
    rpcUrls: [chain.rpcUrl],
    token: chain.token,
    // The first answer is settlement_pending because nothing is mined, not because of the budget:
    // 5 s leaves room to prepare, sign and send under load (a budget gone before the send is a 503).
    limits: { settleBudgetMs: 5_000, stuckAfterMs: 100, feeBumpPercent: 100, feeBumpsMax: 3 },
  });
});

afterAll(async () => {
  await facilitator?.close();
  await database?.drop();
  await chain?.stop();
});

describe("a stuck settlement", () => {
  it("is replaced at the same nonce with a higher fee and confirmed once", async () => {
    const payment = await signPayment({ payerKey: keys.payer, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic });
    const body = v2Body(payment, v2Requirements({ token: chain.token, payTo, amountAtomic }));
    const first = (await facilitator.app.inject({ method: "POST", url: "/settle", payload: body })).json();
    expect(first).toMatchObject({ success: false, errorReason: "settlement_pending" });
    const original = parseTransaction((await withPgClient(database.url, async (c) => (await c.query("select raw_tx from settlements where tx_hash = $1", [first.transaction])).rows[0])).raw_tx as Hex);

    // The base fee jumps above what the transaction offers: mining leaves it in the pool.
    await chain.testClient.request({ method: "anvil_setNextBlockBaseFeePerGas" as never, params: [`0x${(original.maxFeePerGas! + 1n).toString(16)}`] as never });
    await chain.testClient.mine({ blocks: 1 });
    expect(await chain.publicClient.getTransactionReceipt({ hash: first.transaction }).catch(() => undefined)).toBeUndefined();

    await new Promise((resolve) => setTimeout(resolve, 150));
    await facilitator.services.watcher.runOnce(); // rebroadcast finds it already known → replaced with 2× fees
    const row = await withPgClient(database.url, async (c) => (await c.query("select * from settlements where nonce = $1", [payment.authorization.nonce])).rows[0]);
    expect(row.fee_bumps).toBe(1);
    expect(row.replaced_tx_hashes).toEqual([first.transaction]);
    const replacement = parseTransaction(row.raw_tx as Hex);
    expect(replacement.nonce).toBe(original.nonce);
    expect(replacement.maxFeePerGas).toBe(original.maxFeePerGas! * 2n);

    await chain.testClient.mine({ blocks: 1 });
    await facilitator.services.watcher.runOnce();
    const final = await withPgClient(database.url, async (c) => (await c.query("select * from settlements where nonce = $1", [payment.authorization.nonce])).rows[0]);
    expect(final).toMatchObject({ status: "confirmed", settled_tx_hash: row.tx_hash });
    const used = await chain.publicClient.getContractEvents({
      address: chain.token,
      abi: parseAbi(["event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)"]),
      eventName: "AuthorizationUsed",
      args: { authorizer: payer, nonce: payment.authorization.nonce },
      fromBlock: 0n,
    });
    expect(used).toHaveLength(1);
    // The SDK's retry of the pending payment gets its one success, with the transaction that paid.
    expect((await facilitator.app.inject({ method: "POST", url: "/settle", payload: body })).json()).toMatchObject({ success: true, transaction: row.tx_hash });
  });
});
