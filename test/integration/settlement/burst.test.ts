import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { addressOf, keys, nodeHolds } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { usePaymentFixture, type PaymentFixture } from "../../helpers/fixture.js";
import { pay, settle } from "../../helpers/batching.js";
import { waitFor } from "../../helpers/wait.js";
import { startFaultyRpcProxy, type FaultyRpcProxy } from "../../helpers/faulty-rpc-proxy.js";
import { startTestFacilitator } from "../../helpers/facilitator.js";
import { batchSettlerAddress } from "../../../src/contracts/batch-settler.js";

/**
 * A burst from one signer key (issue 15): IN_FLIGHT_PER_SIGNER_MAX bounds the key's transactions
 * between send and verdict, not its settlements. While its transactions wait for a block, the
 * settlements that arrive gather into the next batch; transactions go out back to back with
 * consecutive nonces, without waiting for each other's receipts. Automine off: blocks come when
 * the test mines, so "in flight" is what the node's pool holds.
 */
const amountAtomic = 10_000n;
const payTo = addressOf(keys.payTo);
const signer = addressOf(keys.facilitator);

async function inPool(f: PaymentFixture): Promise<number> {
  const [pending, latest] = await Promise.all([
    f.chain.publicClient.getTransactionCount({ address: signer, blockTag: "pending" }),
    f.chain.publicClient.getTransactionCount({ address: signer, blockTag: "latest" }),
  ]);
  return pending - latest;
}

async function rowsOf(f: PaymentFixture, nonces: string[]) {
  return withPgClient(f.database.url, async (client) => (await client.query("select status, tx_hash, tx_nonce from settlements where nonce = any($1)", [nonces.map((nonce) => nonce.toLowerCase())])).rows);
}

const nonceOf = (body: Awaited<ReturnType<typeof pay>>) => body.paymentPayload.payload.authorization.nonce as string;

describe("a burst from one key: the in-flight limit counts transactions (IN_FLIGHT_PER_SIGNER_MAX=1, SETTLE_BATCH_MAX=8)", () => {
  const f = usePaymentFixture({ label: "burst_batches", chain: { noMining: true }, payerBalanceAtomic: 1_000_000n, facilitator: { limits: { inFlightPerSignerMax: 1, settleBatchMax: 8 } } });

  it("gathers the 8 settlements that arrive while the key's one transaction waits for its block into the next transaction, sent as soon as that block comes", async () => {
    const first = await pay(f, keys.payer, payTo, amountAtomic);
    const firstAnswer = settle(f, first);
    await waitFor("the first transaction in the pool", async () => nodeHolds(f.chain, (await rowsOf(f, [nonceOf(first)]))[0]?.tx_hash), 15_000, 25);

    const burst = await Promise.all(Array.from({ length: 8 }, () => pay(f, keys.payer, payTo, amountAtomic)));
    const answers = Promise.all(burst.map((body) => settle(f, body)));
    // All 8 prepared and queued for the key's next transaction; none sent: its one slot is taken.
    await waitFor("8 settlements waiting for the key's next transaction", async () => f.facilitator.services.engine.waitingToSend() === 8, 15_000, 10);
    expect(await inPool(f)).toBe(1);

    await f.chain.testClient.mine({ blocks: 1 });
    expect((await firstAnswer).success).toBe(true);
    const batchHash = await waitFor(
      "one transaction carrying the 8, in the pool",
      async () => {
        const rows = await rowsOf(f, burst.map(nonceOf));
        const hashes = new Set(rows.map((row) => row.tx_hash));
        const [hash] = [...hashes];
        return rows.length === 8 && hashes.size === 1 && hash && (await nodeHolds(f.chain, hash)) ? (hash as `0x${string}`) : undefined;
      },
      15_000,
      25,
    );
    await f.chain.testClient.mine({ blocks: 1 });
    const settled = await answers;
    expect(settled.map((answer) => ({ success: answer.success, transaction: answer.transaction }))).toEqual(burst.map(() => ({ success: true, transaction: batchHash })));
    const firstBlock = (await f.chain.publicClient.getTransactionReceipt({ hash: (await firstAnswer).transaction })).blockNumber;
    expect((await f.chain.publicClient.getTransactionReceipt({ hash: batchHash })).blockNumber).toBe(firstBlock + 1n);
  }, 60_000);
});

describe("a burst from one key without batching (IN_FLIGHT_PER_SIGNER_MAX=3, SETTLE_BATCH_MAX=1)", () => {
  const f = usePaymentFixture({ label: "burst_pipeline", chain: { noMining: true }, payerBalanceAtomic: 1_000_000n, facilitator: { limits: { inFlightPerSignerMax: 3, settleBatchMax: 1 } } });

  it("sends 3 transactions back to back with consecutive nonces, no more until a block frees their slots, and lands 6 in 2 blocks", async () => {
    const bodies = await Promise.all(Array.from({ length: 6 }, () => pay(f, keys.payer, payTo, amountAtomic)));
    const answers = Promise.all(bodies.map((body) => settle(f, body)));
    await waitFor("3 transactions in the pool, 3 settlements waiting", async () => (await inPool(f)) === 3 && f.facilitator.services.engine.waitingToSend() === 3, 15_000, 25);
    const sentFirst = (await rowsOf(f, bodies.map(nonceOf))).filter((row) => row.tx_nonce !== null).map((row) => Number(row.tx_nonce)).sort((a, b) => a - b);
    expect(sentFirst).toHaveLength(3);
    expect(sentFirst).toEqual([sentFirst[0]!, sentFirst[0]! + 1, sentFirst[0]! + 2]);

    await f.chain.testClient.mine({ blocks: 1 });
    await waitFor("the next 3 in the pool", async () => (await inPool(f)) === 3 && f.facilitator.services.engine.waitingToSend() === 0, 15_000, 25);
    await f.chain.testClient.mine({ blocks: 1 });
    const settled = await answers;
    expect(settled.every((answer) => answer.success)).toBe(true);
    const blocks = new Set(await Promise.all(settled.map(async (answer) => (await f.chain.publicClient.getTransactionReceipt({ hash: answer.transaction })).blockNumber)));
    expect(blocks.size).toBe(2);
  }, 60_000);
});

describe("a burst from one key shares the chain reads its settlements have in common", () => {
  let proxy: FaultyRpcProxy;
  const f = usePaymentFixture({
    label: "burst_reads",
    payerBalanceAtomic: 1_000_000n,
    facilitator: { limits: { inFlightPerPayerMax: 64 } },
  });

  it("32 settlements at once: fees, the signer's pending nonce and its balance read far fewer than 32 times, every payment settled", async () => {
    proxy = await startFaultyRpcProxy({ upstreamUrl: f.chain.rpcUrl });
    const facilitator = await startTestFacilitator({ databaseUrl: f.database.url, rpcUrls: [proxy.url], token: f.chain.token, limits: { inFlightPerPayerMax: 64 } });
    try {
      expect((await settle({ ...f, facilitator }, await pay(f, keys.payer, payTo, amountAtomic))).success).toBe(true); // warm: nonce row, send route, caches
      // One payer per payment, as a burst of many buyers is: one payer's settlements pass its funds
      // reservation one at a time (a short transaction under that payer's lock, engine.reserveFunds),
      // so several of one payer reach their preparations in waves (4 each of 8 payers: at least 4)
      // and share fewer reads.
      const payerKeys = Array.from({ length: 32 }, () => generatePrivateKey());
      for (const key of payerKeys) await f.chain.mint(privateKeyToAccount(key).address, 1_000_000n);
      const bodies = await Promise.all(payerKeys.map((key) => pay(f, key, payTo, amountAtomic)));
      proxy.resetCounts();
      const answers = await Promise.all(bodies.map((body) => settle({ ...f, facilitator }, body)));
      expect(answers.every((answer) => answer.success)).toBe(true);
      const counts = proxy.counts().received;
      // Each is read per settlement without sharing (32 each); shared by those preparing at the same moment.
      for (const method of ["eth_getTransactionCount", "eth_getBalance", "eth_maxPriorityFeePerGas"]) {
        // Typically 1 each; a few when the requests' preparations do not overlap fully on a loaded machine.
        expect(counts[method] ?? 0, `${method} (${JSON.stringify(counts)})`).toBeLessThanOrEqual(6);
      }
      console.log(`[burst reads] 32 settlements at once, RPC calls: ${JSON.stringify(counts)}`);
      // Still per payment: its own simulation and state.
      expect(counts.eth_estimateGas).toBeGreaterThanOrEqual(32);
    } finally {
      await facilitator.close();
      await proxy.stop();
    }
  }, 60_000);
});

describe("lone settlements queued together beyond the key's free transaction slots (IN_FLIGHT_PER_SIGNER_MAX=2, no BatchSettler)", () => {
  const f = usePaymentFixture({ label: "burst_lone", chain: { noMining: true }, payerBalanceAtomic: 1_000_000n, facilitator: { limits: { inFlightPerSignerMax: 2, settleBatchMax: 8 } } });

  it("answers each transaction's settlement as it is sent, so the rest of the queue gets the slots its verdicts free: 7 settle, never more than 2 in the pool", async () => {
    // Without BatchSettler every settlement is a transaction of its own: one queue, several transactions.
    await f.chain.testClient.setCode({ address: batchSettlerAddress, bytecode: "0x" });
    const bodies = await Promise.all(Array.from({ length: 7 }, () => pay(f, keys.payer, payTo, amountAtomic)));
    let done = false;
    const answers = Promise.all(bodies.map((body) => settle(f, body))).finally(() => (done = true));
    let inPoolMax = 0;
    // Blocks come when the test mines; a settlement stuck behind its own flush would only be
    // answered (503, nothing sent) at the end of its budget, however many blocks came.
    for (let blocks = 0; blocks < 40 && !done; blocks += 1) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      inPoolMax = Math.max(inPoolMax, await inPool(f));
      await f.chain.testClient.mine({ blocks: 1 });
    }
    const settled = await answers;
    expect(settled.map((answer) => ({ success: answer.success, errorReason: answer.errorReason }))).toEqual(bodies.map(() => ({ success: true, errorReason: undefined })));
    expect(inPoolMax).toBeLessThanOrEqual(2);
    expect(new Set(settled.map((answer) => answer.transaction)).size).toBe(7);
  }, 60_000);
});
