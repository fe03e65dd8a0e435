import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { batchSettlerAddress } from "../../../src/contracts/batch-settler.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { facilitatorEnv, startFacilitatorProcess, type FacilitatorProcess } from "../../helpers/facilitator-process.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { waitFor } from "../../helpers/wait.js";

/**
 * A facilitator process with SETTLE_BATCH_MAX is SIGKILLed after a batch transaction was persisted
 * on its rows and before it was broadcast (X402_TEST_CRASH_AT=after-batch-sign). A fresh process
 * must send that one stored transaction, confirm every row from its own logs, and never pay twice.
 * The batch is formed on purpose by holding the signer's nonce row lock while the payments queue.
 */
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const signer = addressOf(keys.facilitator);
const amountAtomic = 10_000n;
const settleBudgetMs = 4_000; // above the time the test holds the signer lock: queued settlements must not run out of budget
const queuedPayments = 5; // the first goes alone (it waits on the lock in Postgres), the other 4 as one batch

let chain: TestChain;
let database: TestDatabase;
const children: FacilitatorProcess[] = [];

async function post(url: string, body: unknown) {
  const response = await fetch(`${url}/settle`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
  return (await response.json()) as Record<string, any>;
}

const rows = () => withPgClient(database.url, async (c) => (await c.query("select * from settlements order by created_at")).rows);

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(payer, 1_000_000n);
  database = await createTestDatabase("batch_crash");
}, 60_000);

afterAll(async () => {
  for (const child of children) await child.kill("SIGKILL").catch(() => undefined);
  await database?.drop();
  await chain?.stop();
});

describe("crash after a batch was persisted, before it was broadcast", () => {
  it("is finished by the next process: one transaction carries every row, each row is confirmed, and retries never pay twice", async () => {
    const env = facilitatorEnv({
      databaseUrl: database.url,
      rpcUrl: chain.rpcUrl,
      token: chain.token,
      signerKeys: [keys.facilitator],
      limits: { SETTLE_BATCH_MAX: 8, SETTLE_BUDGET_MS: settleBudgetMs, DUPLICATE_WAIT_MS: settleBudgetMs, RECONCILE_INTERVAL_MS: 200 },
    });
    const bodies = await Promise.all(
      Array.from({ length: queuedPayments + 1 }, async () => {
        const payment = await signPayment({ payerKey: keys.payer, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic });
        return v2Body(payment, v2Requirements({ token: chain.token, payTo, amountAtomic }));
      }),
    );
    const doomed = await startFacilitatorProcess({ env, crashAt: "after-batch-sign" });
    children.push(doomed);
    expect(await post(doomed.url, bodies[0])).toMatchObject({ success: true }); // alone: creates the signer's nonce row
    const txsBefore = await chain.publicClient.getTransactionCount({ address: signer });

    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    await locker.query("begin");
    await locker.query("select * from signer_nonces for update");
    const calls = bodies.slice(1).map((body) => post(doomed.url, body).then((answer) => ({ answer }), (error: unknown) => ({ error: String(error) })));
    await waitFor("queued payments claimed", async () => (await rows()).filter((row) => row.status === "claimed").length >= queuedPayments, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // each is simulated and queued behind the lock
    await locker.query("commit");
    await locker.end();
    expect(await doomed.waitForExit(10_000)).toEqual({ code: null, signal: "SIGKILL" });
    const settled = await Promise.all(calls);

    // The dead process: the lone one went out, the batch is stored on its rows but was never sent.
    const left = (await rows()).slice(1);
    const batchRows = left.filter((row) => row.tx_settlements > 1);
    expect(batchRows).toHaveLength(queuedPayments - 1);
    expect(new Set(batchRows.map((row) => row.tx_hash)).size).toBe(1);
    expect(batchRows.every((row) => row.status === "signed")).toBe(true);
    // No answer from a dead process for any payment of the batch (the lone one's answer may or may
    // not have left before the crash: it raced the batch's signing).
    const batchNonces = new Set(batchRows.map((row) => row.nonce));
    const batchCalls = settled.filter((_, index) => batchNonces.has(bodies[index + 1]!.paymentPayload.payload.authorization.nonce.toLowerCase()));
    expect(batchCalls).toHaveLength(queuedPayments - 1);
    expect(batchCalls.every((call) => "error" in call)).toBe(true);
    expect(await chain.publicClient.getTransactionCount({ address: signer })).toBe(txsBefore + 1);
    const batchHash = batchRows[0]!.tx_hash as Hex;
    expect(await chain.publicClient.getTransaction({ hash: batchHash }).catch(() => undefined)).toBeUndefined();

    // A fresh process: its watcher rebroadcasts the stored batch and confirms every row from its logs.
    const recovering = await startFacilitatorProcess({ env });
    children.push(recovering);
    await waitFor("every batched row confirmed", async () => {
      const current = await rows();
      return batchRows.every((batchRow) => current.find((row) => row.id === batchRow.id)?.status === "confirmed");
    }, 40_000, 200);
    const receipt = await chain.publicClient.getTransactionReceipt({ hash: batchHash });
    expect(receipt.to?.toLowerCase()).toBe(batchSettlerAddress.toLowerCase());
    for (const row of (await rows()).filter((row) => row.tx_hash === batchHash)) expect(row.settled_tx_hash).toBe(batchHash);
    expect(await chain.balanceOf(payTo)).toBe(amountAtomic * BigInt(queuedPayments + 1));

    // Each queued payment: one AuthorizationUsed ever. The caller of a batched one never got an
    // answer, so its retry gets the one success. The lone one raced the batch's signing: if the dead
    // process took its one success answer (success_answered), its retry is a duplicate — whether or
    // not the bytes reached the caller before the SIGKILL; a caller that did get success always
    // finds the answer taken.
    for (const [index, body] of bodies.slice(1).entries()) {
      const nonce = body.paymentPayload.payload.authorization.nonce;
      const used = await chain.publicClient.getContractEvents({ address: chain.token, abi: eip3009Abi, eventName: "AuthorizationUsed", args: { authorizer: payer, nonce }, fromBlock: 0n });
      expect(used).toHaveLength(1);
      const row = (await rows()).find((candidate) => candidate.nonce === nonce.toLowerCase())!;
      const batched = row.tx_hash === batchHash;
      const call = settled[index]!;
      const answeredBeforeCrash = "answer" in call && (call.answer as { success?: boolean }).success === true;
      if (batched) expect(row.success_answered).toBe(false);
      if (answeredBeforeCrash) expect(row.success_answered).toBe(true);
      expect(await post(recovering.url, body)).toMatchObject(
        !row.success_answered ? { success: true, transaction: row.tx_hash } : { success: false, errorReason: "duplicate_settlement", transaction: row.tx_hash },
      );
      expect(await post(recovering.url, body)).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: row.settled_tx_hash });
    }
    expect(await chain.publicClient.getTransactionCount({ address: signer })).toBe(txsBefore + 2);
  }, 120_000);
});
