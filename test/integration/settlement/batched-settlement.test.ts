import { describe, expect, it } from "vitest";
import { parseAbi, parseTransaction, type Address, type Hex } from "viem";
import { batchSettlerAddress } from "../../../src/contracts/batch-settler.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { usePaymentFixture, type PaymentFixture } from "../../helpers/fixture.js";
import { pay as payAmount, settle, settlementRowByNonce, settlementRows, waitForLockWaiters, whileSignerLocked } from "../../helpers/batching.js";

/**
 * SETTLE_BATCH_MAX > 1: settlements that queue for one signer go out as one BatchSettler
 * transaction, each call with its own gas limit and allowed to fail alone. To make a batch form on purpose, the test holds the
 * signer's nonce row lock (as a slow Postgres would): the first settlement waits on it in
 * Postgres, the next ones queue behind it in the process, and on release they share one transaction.
 */
const payer = addressOf(keys.payer);
const richPayer = addressOf(keys.stranger);
const amountAtomic = 10_000n;
const authorizationUsedAbi = parseAbi(["event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)"]);

const pay = (f: PaymentFixture, payerKey: Hex, payTo: Address) => payAmount(f, payerKey, payTo, amountAtomic);

describe("batched settlement (SETTLE_BATCH_MAX=16)", () => {
  const f = usePaymentFixture({ label: "batched", facilitator: { limits: { settleBatchMax: 16 } } });

  it("settles payments queued for one signer in one transaction: one success each, every payee paid once, less gas per settlement", async () => {
    const payTo = addressOf(keys.payTo);
    await f.chain.mint(richPayer, 1_000_000n);
    // Two alone first: they create the signer's nonce row, and the second is the fair baseline
    // (payTo already holds a balance, as it does for every batched payment after the first).
    expect(await settle(f, await pay(f, keys.stranger, payTo))).toMatchObject({ success: true });
    const single = await settle(f, await pay(f, keys.stranger, payTo));
    expect(single).toMatchObject({ success: true });
    const singleGas = (await f.chain.publicClient.getTransactionReceipt({ hash: single.transaction })).gasUsed;

    const payments = await Promise.all(Array.from({ length: 9 }, () => pay(f, keys.stranger, payTo)));
    const answers = await whileSignerLocked(f, payments.length, () => Promise.all(payments.map((body) => settle(f, body))));

    expect(answers.every((answer) => answer.success)).toBe(true);
    const hashes = [...new Set(answers.map((answer) => answer.transaction))];
    expect(hashes).toHaveLength(2); // the one that waited on the lock alone, then everyone who queued behind it
    const batchHash = hashes.find((hash) => answers.filter((answer) => answer.transaction === hash).length === payments.length - 1)!;
    expect(batchHash).toBeDefined();
    const batchTx = await f.chain.publicClient.getTransaction({ hash: batchHash });
    expect(batchTx.to?.toLowerCase()).toBe(batchSettlerAddress.toLowerCase());
    expect(await f.chain.balanceOf(payTo)).toBe(amountAtomic * BigInt(payments.length + 2));

    const rows = await settlementRows(f, batchHash);
    expect(rows).toHaveLength(payments.length - 1);
    const receipt = await f.chain.publicClient.getTransactionReceipt({ hash: batchHash });
    const perSettlementGas = receipt.gasUsed / BigInt(rows.length);
    for (const row of rows) {
      expect(row).toMatchObject({ status: "confirmed", tx_settlements: rows.length, settled_tx_hash: batchHash, success_answered: true });
      expect(BigInt(row.gas_used)).toBe(perSettlementGas); // the sponsor's cost is shared, not counted once per row
    }
    // Operators see the batches: 4 transactions so far carried 1, 1, 1 and 8 settlements.
    const metrics = await f.facilitator.services.metrics.render({ warn: () => {} });
    expect(metrics).toContain("x402_settlements_per_transaction_sum 11");
    expect(metrics).toContain("x402_settlements_per_transaction_count 4");
    // A second settle of a batched payment is a duplicate with the batch's hash, and sends nothing.
    const again = await settle(f, payments[1]!);
    expect(again).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
    console.log(`[batch] ${rows.length} settlements in one transaction: ${perSettlementGas} gas each vs ${singleGas} alone (${((Number(perSettlementGas) / Number(singleGas)) * 100).toFixed(1)} %)`);
    expect(perSettlementGas * 10n).toBeLessThan(singleGas * 7n);
  });

  it("two payments of one payer that its balance covers only one of: the later waits for the earlier (in the batch), then is refused unsent; it stays settleable and its retry succeeds", async () => {
    const payTo = addressOf(keys.facilitator2);
    await f.chain.mint(payer, amountAtomic); // enough for exactly one of the payer's two payments
    await f.chain.mint(richPayer, 1_000_000n);
    const first = await pay(f, keys.stranger, payTo);
    const payerA = await pay(f, keys.payer, payTo);
    const payerB = await pay(f, keys.payer, payTo); // each simulates fine alone; together the balance runs out (review 16 attack 1)
    const others = await Promise.all([pay(f, keys.stranger, payTo), pay(f, keys.stranger, payTo)]);
    const queued = [payerA, payerB, ...others];

    // All five are claimed; the first waits on the lock, and only three queue behind it: the payer's
    // later payment waits for the earlier one's funds to be final, which takes the lock's release.
    const [firstAnswer, ...answers] = await whileSignerLocked(
      f,
      queued.length + 1,
      async () => {
        const firstPromise = settle(f, first);
        // Until it blocks on the lock, not merely until it is claimed: a later one could finish
        // simulating first and go alone.
        await waitForLockWaiters(f, 1);
        return Promise.all([firstPromise, ...queued.map((body) => settle(f, body))]);
      },
      { queued: queued.length - 1 },
    );
    expect(firstAnswer).toMatchObject({ success: true });
    const [a, b, ...rest] = answers;
    const batchHash = rest[0]!.transaction;
    expect(rest.every((answer) => answer.success && answer.transaction === batchHash)).toBe(true);
    expect([a!.success, b!.success].sort()).toEqual([false, true]);
    const [winner, loser] = a!.success ? [a!, b!] : [b!, a!];
    expect(winner.transaction).toBe(batchHash);
    // The loser was claimed after the winner: its funds (what the winner takes added) fell short, so it
    // waited for the winner to be final, then its own simulation refused it before anything was sent
    // (the balance is gone). No call of ours failed in the batch.
    expect(loser).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "", payer });

    const receipt = await f.chain.publicClient.getTransactionReceipt({ hash: batchHash });
    expect(receipt.status).toBe("success");
    expect(await f.chain.balanceOf(payer)).toBe(0n);
    expect(await f.chain.balanceOf(payTo)).toBe(amountAtomic * 4n); // first + one of the payer's + two others
    const loserBody = loser === a ? payerA : payerB;
    const loserNonce = loserBody.paymentPayload.payload.authorization.nonce;
    expect(await settlementRowByNonce(f, loserNonce)).toMatchObject({ status: "failed", error_reason: "invalid_exact_evm_insufficient_balance", broadcast_at: null });
    const used = await f.chain.publicClient.getContractEvents({ address: f.chain.token, abi: authorizationUsedAbi, eventName: "AuthorizationUsed", args: { authorizer: payer, nonce: loserNonce }, fromBlock: 0n });
    expect(used).toHaveLength(0); // the failed call left the authorization unused

    // An honest payment never ends failed while its authorization is unused: once funded, the
    // identical retry settles it.
    await f.chain.mint(payer, amountAtomic);
    expect(await settle(f, loserBody)).toMatchObject({ success: true, payer });
    expect(await f.chain.balanceOf(payTo)).toBe(amountAtomic * 5n);
  });
});

describe("batching on a chain without BatchSettler", () => {
  const f = usePaymentFixture({ label: "batched_no_multicall", facilitator: { limits: { settleBatchMax: 16 } } });

  it("settles one payment per transaction instead of sending batches to an empty address", async () => {
    const payTo = addressOf(keys.payTo);
    await f.chain.testClient.setCode({ address: batchSettlerAddress, bytecode: "0x" });
    await f.chain.mint(richPayer, 1_000_000n);
    expect(await settle(f, await pay(f, keys.stranger, payTo))).toMatchObject({ success: true });
    const payments = await Promise.all(Array.from({ length: 3 }, () => pay(f, keys.stranger, payTo)));
    const answers = await whileSignerLocked(f, payments.length, () => Promise.all(payments.map((body) => settle(f, body))));
    expect(answers.every((answer) => answer.success)).toBe(true);
    expect(new Set(answers.map((answer) => answer.transaction)).size).toBe(3);
    expect(await f.chain.balanceOf(payTo)).toBe(amountAtomic * 4n);
  });
});

describe("a queue longer than one batch transaction may carry (BATCH_GAS_MAX)", () => {
  // One settlement is estimated ~74k gas and padded to ~89k: two fit in 200k, three do not.
  const f = usePaymentFixture({ label: "batched_gas_cap", facilitator: { limits: { settleBatchMax: 16, batchGasMax: 200_000n } } });

  it("goes out as several batch transactions, each within the cap, in order of nonce", async () => {
    const payTo = addressOf(keys.payTo);
    await f.chain.mint(richPayer, 1_000_000n);
    expect(await settle(f, await pay(f, keys.stranger, payTo))).toMatchObject({ success: true });
    const payments = await Promise.all(Array.from({ length: 5 }, () => pay(f, keys.stranger, payTo)));
    const answers = await whileSignerLocked(f, payments.length, () => Promise.all(payments.map((body) => settle(f, body))));
    expect(answers.every((answer) => answer.success)).toBe(true);
    const hashes = [...new Set(answers.map((answer) => answer.transaction))];
    expect(hashes).toHaveLength(3); // the lone one, then 2 + 2
    const batches = await Promise.all(hashes.map((hash) => f.chain.publicClient.getTransaction({ hash })));
    for (const tx of batches) expect(tx.gas).toBeLessThanOrEqual(200_000n);
    expect(batches.filter((tx) => tx.to?.toLowerCase() === batchSettlerAddress.toLowerCase())).toHaveLength(2);
    const nonces = batches.map((tx) => tx.nonce).sort((a, b) => a - b);
    expect(nonces).toEqual([nonces[0], nonces[0]! + 1, nonces[0]! + 2]);
    expect(await f.chain.balanceOf(payTo)).toBe(amountAtomic * 6n);
  });
});

describe("a settlement whose budget runs out while it queues for the signer", () => {
  const settleBudgetMs = 1_000;
  const f = usePaymentFixture({ label: "batched_budget", facilitator: { limits: { settleBatchMax: 16, settleBudgetMs } } });

  it("leaves the queue unsigned with a 503, the authorization still free; the retry settles it once", async () => {
    const payTo = addressOf(keys.payTo);
    await f.chain.mint(richPayer, 1_000_000n);
    expect(await settle(f, await pay(f, keys.stranger, payTo))).toMatchObject({ success: true });
    const payments = await Promise.all(Array.from({ length: 3 }, () => pay(f, keys.stranger, payTo)));
    // The lock is held past the 1 s budget: the first waits on it inside the flush, the others expire
    // in the queue. Their budgets started before their claims, so once both are queued, one budget
    // more has run out every deadline.
    const responses = await whileSignerLocked(
      f,
      payments.length,
      () => Promise.all(payments.map((body) => f.facilitator.app.inject({ method: "POST", url: "/settle", payload: body }))),
      { whileHeld: () => new Promise((resolve) => setTimeout(resolve, settleBudgetMs + 100)) },
    );
    const refused = responses.filter((response) => response.statusCode === 503);
    expect(refused).toHaveLength(2);
    for (const response of refused) expect(response.json()).toMatchObject({ success: false, errorReason: "service_unavailable", transaction: "" });
    const rows = await withPgClient(f.database.url, async (c) => (await c.query("select status, tx_hash, broadcast_at from settlements where status = 'failed'")).rows);
    expect(rows).toEqual([
      { status: "failed", tx_hash: null, broadcast_at: null },
      { status: "failed", tx_hash: null, broadcast_at: null },
    ]);
    // Nothing was signed for them: the same payments settle now, once each.
    const retried = await Promise.all(payments.map((body) => settle(f, body)));
    expect(retried.filter((answer) => answer.success)).toHaveLength(2);
    expect(retried.filter((answer) => answer.errorReason === "duplicate_settlement")).toHaveLength(1);
    expect(await f.chain.balanceOf(payTo)).toBe(amountAtomic * 4n);
  });
});

describe("a stuck batch transaction", () => {
  const f = usePaymentFixture({
    label: "batched_stuck",
    chain: { noMining: true },
    // The budget is above the time the test holds the signer lock: queued settlements must not run out of it.
    facilitator: { limits: { settleBatchMax: 16, settleBudgetMs: 4_000, stuckAfterMs: 100, feeBumpPercent: 100, feeBumpsMax: 3 } },
  });

  it("is replaced once for all its rows at the same nonce, and every row is confirmed with the replacement", async () => {
    const payTo = addressOf(keys.payTo);
    await f.chain.mint(richPayer, 1_000_000n);
    await f.chain.testClient.mine({ blocks: 1 });
    const warmUp = await settle(f, await pay(f, keys.stranger, payTo)); // creates the signer's nonce row; pending (no mining)
    expect(warmUp).toMatchObject({ errorReason: "settlement_pending" });
    await f.chain.testClient.mine({ blocks: 1 });
    await f.facilitator.services.watcher.runOnce();

    const payments = await Promise.all(Array.from({ length: 4 }, () => pay(f, keys.stranger, payTo)));
    const answers = await whileSignerLocked(f, payments.length, () => Promise.all(payments.map((body) => settle(f, body))));
    expect(answers.every((answer) => answer.errorReason === "settlement_pending")).toBe(true);
    const batchHash = answers.find((answer) => answers.filter((other) => other.transaction === answer.transaction).length === 3)!.transaction;
    const batchRows = await settlementRows(f, batchHash);
    expect(batchRows).toHaveLength(3);
    const original = parseTransaction(batchRows[0]!.raw_tx as Hex);

    // Everything pending is mined except the batch, whose fee cap falls below the next base fee.
    await f.chain.testClient.request({ method: "anvil_setNextBlockBaseFeePerGas" as never, params: [`0x${(original.maxFeePerGas! + 1n).toString(16)}`] as never });
    await f.chain.testClient.mine({ blocks: 1 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    await f.facilitator.services.watcher.runOnce(); // leases all three rows at once: only one of them may replace the transaction

    const bumped = await settlementRows(f, undefined, batchRows.map((row) => row.id));
    const replacementHash = bumped[0]!.tx_hash;
    expect(replacementHash).not.toBe(batchHash);
    for (const row of bumped) expect(row).toMatchObject({ tx_hash: replacementHash, fee_bumps: 1, replaced_tx_hashes: [batchHash] });
    expect(parseTransaction(bumped[0]!.raw_tx as Hex).nonce).toBe(original.nonce);

    await f.chain.testClient.mine({ blocks: 1 });
    await f.facilitator.services.watcher.runOnce();
    const final = await settlementRows(f, undefined, batchRows.map((row) => row.id));
    for (const row of final) expect(row).toMatchObject({ status: "confirmed", settled_tx_hash: replacementHash });
    expect(await f.chain.balanceOf(payTo)).toBe(amountAtomic * BigInt(payments.length + 1));
  });
});
