/**
 * Sync sends (EIP-7966, `eth_sendRawTransactionSync`): the node answers the send with the receipt
 * once the transaction is included, and that receipt is the verdict (SEND_MODE, src/chain/send-routes.ts).
 * Real Anvil (1.7.1 serves the method), real Postgres, and a proxy in front of Anvil that counts what
 * the facilitator asks and can make the RPC not serve the method, lose the answer, or time out.
 *
 * What must hold: an RPC that serves the method is found out once and every settlement is one sync
 * send with no receipt polling, a batch's rows all judged by its one receipt; an RPC that does not
 * serve it gets plain sends and receipt polling with the same outcomes; SEND_MODE=async never sends
 * sync; and a sync send that gets no receipt (automine off, a node timeout, a lost answer) is
 * pending with its hash, never failed, never sent twice, and finished by the watcher or the retry.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseAbi, type Hex } from "viem";
import type { Limits, SendMode } from "../../../src/config.js";
import { batchSettlerAddress } from "../../../src/contracts/batch-settler.js";
import { addressOf, keys, nodeHolds, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { startFaultyRpcProxy, type FaultyRpcProxy } from "../../helpers/faulty-rpc-proxy.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import type { PaymentFixture } from "../../helpers/fixture.js";
import { settle as settleAnswer, whileSignerLocked, type SettleAnswer } from "../../helpers/batching.js";
import { paymentBody } from "../../helpers/payments.js";
import { waitFor } from "../../helpers/wait.js";

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const facilitatorAddress = addressOf(keys.facilitator);
const amountAtomic = 10_000n;
const settleBudgetMs = 3_000;
const syncMethod = "eth_sendRawTransactionSync";

/** One Anvil with its database and a proxy in front of it; the facilitator is started per test. */
interface Rig {
  chain: TestChain;
  database: TestDatabase;
  proxy: FaultyRpcProxy;
  facilitator?: TestFacilitator;
}

function useRig(label: string, chainOptions: Parameters<typeof startTestChain>[0] = {}): Rig {
  const rig = {} as Rig;
  beforeAll(async () => {
    rig.chain = await startTestChain(chainOptions);
    await rig.chain.mint(payer, 100_000_000n);
    await rig.chain.mint(addressOf(keys.stranger), 100_000_000n);
    rig.database = await createTestDatabase(label);
    rig.proxy = await startFaultyRpcProxy({ upstreamUrl: rig.chain.rpcUrl });
  });
  afterAll(async () => {
    await rig.facilitator?.close();
    await rig.proxy?.stop();
    await rig.database?.drop();
    await rig.chain?.stop();
  });
  beforeEach(() => {
    rig.proxy.set("pass");
    rig.proxy.resetCounts();
  });
  afterEach(async () => {
    await rig.facilitator?.close();
    rig.facilitator = undefined;
  });
  return rig;
}

/** A fresh facilitator (what it learnt about the URL must not leak into the next test), through the proxy. */
async function startFacilitator(rig: Rig, sendMode: SendMode, limits: Partial<Limits> = {}): Promise<TestFacilitator> {
  await rig.facilitator?.close();
  rig.facilitator = await startTestFacilitator({
    databaseUrl: rig.database.url,
    rpcUrls: [rig.proxy.url],
    token: rig.chain.token,
    sendMode,
    limits: { settleBudgetMs, duplicateWaitMs: settleBudgetMs, ...limits },
  });
  return rig.facilitator;
}

/** What the facilitator learnt about the proxy's URL (asking it, if nobody has yet). */
const supportOfProxy = (rig: Rig) => rig.facilitator!.services.deps.chains.get(rig.chain.chainId)!.sends.supportOf(0);

const fixtureOf = (rig: Rig): PaymentFixture => ({ chain: rig.chain, database: rig.database, facilitator: rig.facilitator! });
const newBody = (rig: Rig, payerKey: Hex = keys.payer) => paymentBody(rig.chain, { payerKey, payTo, amountAtomic });
const nonceOf = (body: Awaited<ReturnType<typeof newBody>>) => body.paymentPayload.payload.authorization.nonce;
const settle = (rig: Rig, body: object): Promise<SettleAnswer> => settleAnswer(fixtureOf(rig), body);

async function rowFor(rig: Rig, nonce: string) {
  return withPgClient(rig.database.url, async (client) => (await client.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows[0]);
}

/** AuthorizationUsed(payer, nonce) logs: how many times this authorization moved money on chain. */
async function usesOnChain(rig: Rig, from: Hex, nonce: string): Promise<number> {
  const logs = await rig.chain.publicClient.getContractEvents({
    address: rig.chain.token,
    abi: parseAbi(["event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)"]),
    eventName: "AuthorizationUsed",
    args: { authorizer: from, nonce: nonce as Hex },
    fromBlock: 0n,
  });
  return logs.length;
}

/** Receipt lookups of `hash` the proxy saw (eth_getTransactionReceipt's first param). */
const receiptLookups = (rig: Rig, hash: string) => rig.proxy.lastParams("eth_getTransactionReceipt").filter(([asked]) => String(asked).toLowerCase() === hash.toLowerCase()).length;
/** eth_sendRawTransactionSync calls that carried a transaction (not the empty-transaction probe). */
const syncSends = (rig: Rig) => rig.proxy.lastParams(syncMethod).filter(([raw]) => raw !== "0x").length;
const syncProbes = (rig: Rig) => rig.proxy.lastParams(syncMethod).filter(([raw]) => raw === "0x").length;
const signerTxCount = (rig: Rig) => rig.chain.publicClient.getTransactionCount({ address: facilitatorAddress });

describe("on automine", () => {
  const rig = useRig("sync_send");

  it("finds out at start that Anvil serves eth_sendRawTransactionSync, then settles with one sync send and reads the verdict from its receipt", async () => {
    await startFacilitator(rig, "auto");
    expect(await supportOfProxy(rig)).toBe("sync");
    expect(syncProbes(rig)).toBe(1); // asked once, with an empty transaction: nothing sent
    rig.proxy.resetCounts();

    const body = await newBody(rig);
    const txCountBefore = await signerTxCount(rig);
    const answer = await settle(rig, body);
    expect(answer).toMatchObject({ success: true, payer });
    expect(rig.proxy.transactionsReceived()).toBe(1);
    expect(syncSends(rig)).toBe(1);
    expect(rig.proxy.received("eth_sendRawTransaction")).toBe(0);
    expect(receiptLookups(rig, answer.transaction)).toBe(0); // the send's answer was the receipt
    expect(await rowFor(rig, nonceOf(body))).toMatchObject({ status: "confirmed", tx_hash: answer.transaction, settled_tx_hash: answer.transaction, success_answered: true });
    expect((await rowFor(rig, nonceOf(body))).broadcast_at).not.toBeNull();
    expect(await signerTxCount(rig)).toBe(txCountBefore + 1);
    expect(await usesOnChain(rig, payer, nonceOf(body))).toBe(1);
    // The probe is not asked again.
    await settle(rig, await newBody(rig));
    expect(syncProbes(rig)).toBe(0);
  });

  it("behind an RPC that answers method not found: asks once, then plain sends and receipt polling, with the same outcomes", async () => {
    rig.proxy.set({ mode: "methodNotFound", methods: [syncMethod] });
    await startFacilitator(rig, "auto");
    expect(await supportOfProxy(rig)).toBe("async");
    const bodies = [await newBody(rig), await newBody(rig)];
    const answers = [];
    for (const body of bodies) answers.push(await settle(rig, body));
    for (const [index, answer] of answers.entries()) {
      expect(answer).toMatchObject({ success: true, payer });
      expect(await rowFor(rig, nonceOf(bodies[index]!))).toMatchObject({ status: "confirmed", settled_tx_hash: answer.transaction, success_answered: true });
      expect(await usesOnChain(rig, payer, nonceOf(bodies[index]!))).toBe(1);
      expect(receiptLookups(rig, answer.transaction)).toBeGreaterThan(0);
    }
    expect(rig.proxy.received(syncMethod)).toBe(1); // the probe, once
    expect(syncSends(rig)).toBe(0);
    expect(rig.proxy.received("eth_sendRawTransaction")).toBe(2);
  });

  it("SEND_MODE=sync behind that RPC: the first send finds out and goes out plain at once; the URL gets plain sends from then on", async () => {
    rig.proxy.set({ mode: "methodNotFound", methods: [syncMethod] });
    await startFacilitator(rig, "sync");
    const first = await settle(rig, await newBody(rig));
    const second = await settle(rig, await newBody(rig));
    for (const answer of [first, second]) expect(answer).toMatchObject({ success: true, payer });
    expect(syncProbes(rig)).toBe(0); // sync: nothing asked first
    expect(syncSends(rig)).toBe(1); // the first send, refused as unknown: nothing reached the node
    expect(rig.proxy.received("eth_sendRawTransaction")).toBe(2);
    expect(rig.proxy.transactionsReceived()).toBe(3);
    expect(await supportOfProxy(rig)).toBe("async");
  });

  it("SEND_MODE=async keeps the old path: no probe, a plain send, the receipt polled", async () => {
    await startFacilitator(rig, "async");
    const body = await newBody(rig);
    const answer = await settle(rig, body);
    expect(answer).toMatchObject({ success: true, payer });
    expect(rig.proxy.received(syncMethod)).toBe(0);
    expect(rig.proxy.received("eth_sendRawTransaction")).toBe(1);
    expect(receiptLookups(rig, answer.transaction)).toBeGreaterThan(0);
    expect(await rowFor(rig, nonceOf(body))).toMatchObject({ status: "confirmed", settled_tx_hash: answer.transaction });
  });

  it("judges every row of a batch by the batch's one receipt, from its one sync send", async () => {
    await startFacilitator(rig, "auto", { settleBatchMax: 16 });
    expect(await settle(rig, await newBody(rig, keys.stranger))).toMatchObject({ success: true }); // the signer's nonce row exists
    rig.proxy.resetCounts();
    const bodies = await Promise.all(Array.from({ length: 5 }, () => newBody(rig, keys.stranger)));
    const answers = await whileSignerLocked(fixtureOf(rig), bodies.length, () => Promise.all(bodies.map((body) => settle(rig, body))));
    expect(answers.every((answer) => answer.success)).toBe(true);
    const hashes = [...new Set(answers.map((answer) => answer.transaction))];
    expect(hashes).toHaveLength(2); // the one that waited on the lock alone, then the four queued behind it
    const batchHash = hashes.find((hash) => answers.filter((answer) => answer.transaction === hash).length === 4)!;
    expect((await rig.chain.publicClient.getTransaction({ hash: batchHash })).to?.toLowerCase()).toBe(batchSettlerAddress.toLowerCase());
    expect(syncSends(rig)).toBe(2);
    expect(rig.proxy.received("eth_sendRawTransaction")).toBe(0);
    for (const hash of hashes) expect(receiptLookups(rig, hash)).toBe(0);
    for (const body of bodies) {
      const row = await rowFor(rig, nonceOf(body));
      expect(row).toMatchObject({ status: "confirmed", success_answered: true });
      expect(await usesOnChain(rig, addressOf(keys.stranger), nonceOf(body))).toBe(1);
    }
    const batchRows = await withPgClient(rig.database.url, async (c) => (await c.query("select * from settlements where tx_hash = $1", [batchHash])).rows);
    expect(batchRows).toHaveLength(4);
    for (const row of batchRows) expect(row).toMatchObject({ status: "confirmed", settled_tx_hash: batchHash, tx_settlements: 4 });
  });

  it("never sends a second transaction when a sync send's answer is lost: the same bytes are sent again, and the payment is confirmed once", async () => {
    await startFacilitator(rig, "auto");
    expect(await supportOfProxy(rig)).toBe("sync");
    rig.proxy.set({ mode: "forwardThenDrop", methods: [syncMethod] });
    const body = await newBody(rig);
    const txCountBefore = await signerTxCount(rig);
    const answer = await settle(rig, body);
    expect(answer.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    if (answer.success !== true) expect(answer).toMatchObject({ errorReason: "settlement_pending" });
    expect(syncSends(rig)).toBe(1);
    expect(rig.proxy.received("eth_sendRawTransaction")).toBe(1); // the same bytes: "nonce too low", ours
    rig.proxy.set("pass");
    await rig.facilitator!.services.watcher.runOnce();
    expect(await rowFor(rig, nonceOf(body))).toMatchObject({ status: "confirmed", tx_hash: answer.transaction, settled_tx_hash: answer.transaction });
    expect(await signerTxCount(rig)).toBe(txCountBefore + 1);
    expect(await usesOnChain(rig, payer, nonceOf(body))).toBe(1);
  });
});

describe("automine off: no receipt within the budget", () => {
  const rig = useRig("sync_send_pending", { noMining: true });
  /**
   * Where the answer must be settlement_pending: with nothing mined any budget runs out, so this
   * only has to leave room to prepare, sign and send under load (a budget gone before the send
   * means a plain send, not the sync send these tests are about).
   */
  const pendingBudgetMs = 5_000;
  beforeEach(async () => {
    await rig.chain.testClient.mine({ blocks: 1 }); // nothing left over from the previous test
  });

  it("answers settlement_pending with the hash of a sync send the node is still holding; the watcher confirms it once mined", async () => {
    await startFacilitator(rig, "auto", { settleBudgetMs: pendingBudgetMs });
    expect(await supportOfProxy(rig)).toBe("sync");
    const body = await newBody(rig);
    const txCountBefore = await signerTxCount(rig);
    const first = await settle(rig, body);
    // Nothing is mined: the answer can only come from the budget running out.
    expect(first).toMatchObject({ success: false, errorReason: "settlement_pending", payer });
    expect(first.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(syncSends(rig)).toBe(1);
    expect(await rig.chain.publicClient.getTransaction({ hash: first.transaction })).toMatchObject({ blockNumber: null }); // in the pool
    // The plain resend at the budget's end learnt the node has it: submitted, handed to the watcher.
    expect(await rowFor(rig, nonceOf(body))).toMatchObject({ status: "submitted", pending_answered: true, tx_hash: first.transaction });

    await rig.chain.testClient.mine({ blocks: 1 });
    expect(await rig.facilitator!.services.watcher.runOnce()).toBe(1);
    expect(await rowFor(rig, nonceOf(body))).toMatchObject({ status: "confirmed", settled_tx_hash: first.transaction, success_answered: false });
    // The SDK's retry gets the one success; nothing more was sent.
    expect(await settle(rig, body)).toMatchObject({ success: true, transaction: first.transaction });
    expect(await signerTxCount(rig)).toBe(txCountBefore + 1);
    expect(await usesOnChain(rig, payer, nonceOf(body))).toBe(1);
  });

  it("takes a node's sync timeout (EIP-7966 error 4) as in the pool, not failed: it polls for the receipt within the budget", async () => {
    await startFacilitator(rig, "auto");
    expect(await supportOfProxy(rig)).toBe("sync");
    rig.proxy.set({ mode: "syncTimeout", methods: [syncMethod] });
    const body = await newBody(rig);
    const answering = settle(rig, body);
    // Order, not time: the row is submitted (the timeout said the node has it), then the block comes.
    const row = await waitFor("the row submitted after the node's timeout", async () => {
      const current = await rowFor(rig, nonceOf(body));
      return current?.status === "submitted" ? current : undefined;
    }, 10_000, 25);
    expect(await nodeHolds(rig.chain, row.tx_hash)).toBe(true);
    await rig.chain.testClient.mine({ blocks: 1 });
    const answer = await answering;
    expect(answer).toMatchObject({ success: true, transaction: row.tx_hash, payer });
    expect(receiptLookups(rig, row.tx_hash)).toBeGreaterThan(0); // polled, as after a plain send
    expect(await rowFor(rig, nonceOf(body))).toMatchObject({ status: "confirmed", settled_tx_hash: row.tx_hash, success_answered: true });
    expect(await usesOnChain(rig, payer, nonceOf(body))).toBe(1);
  });

  it("reads a sync send's error it does not know (geth's -32002 \"request timed out\") as unknown: the plain resend learns the node has it, the row is submitted, never failed, and the payment settles", async () => {
    await startFacilitator(rig, "auto");
    expect(await supportOfProxy(rig)).toBe("sync");
    rig.proxy.set({ mode: "syncOtherError", methods: [syncMethod] });
    const body = await newBody(rig);
    const answering = settle(rig, body);
    const row = await waitFor("the row submitted after the plain resend", async () => {
      const current = await rowFor(rig, nonceOf(body));
      return current?.status === "submitted" ? current : undefined;
    }, 10_000, 25);
    expect(await nodeHolds(rig.chain, row.tx_hash)).toBe(true);
    await rig.chain.testClient.mine({ blocks: 1 });
    expect(await answering).toMatchObject({ success: true, transaction: row.tx_hash, payer });
    expect(await rowFor(rig, nonceOf(body))).toMatchObject({ status: "confirmed", settled_tx_hash: row.tx_hash });
    const released = await withPgClient(rig.database.url, async (client) => (await client.query("select count(*)::int as n from released_nonces")).rows[0].n);
    expect(released, "no tx nonce handed back").toBe(0);
    expect(await usesOnChain(rig, payer, nonceOf(body))).toBe(1);
  });

  it("answers a sync timeout settlement_pending once the budget is spent too, and the watcher finishes it", async () => {
    await startFacilitator(rig, "auto", { settleBudgetMs: pendingBudgetMs });
    expect(await supportOfProxy(rig)).toBe("sync");
    rig.proxy.set({ mode: "syncTimeout", methods: [syncMethod] });
    const body = await newBody(rig);
    const first = await settle(rig, body);
    expect(first).toMatchObject({ success: false, errorReason: "settlement_pending", payer });
    expect(await rowFor(rig, nonceOf(body))).toMatchObject({ status: "submitted", pending_answered: true, tx_hash: first.transaction });
    rig.proxy.set("pass");
    await rig.chain.testClient.mine({ blocks: 1 });
    expect(await rig.facilitator!.services.watcher.runOnce()).toBe(1);
    expect(await rowFor(rig, nonceOf(body))).toMatchObject({ status: "confirmed", settled_tx_hash: first.transaction });
    expect(await usesOnChain(rig, payer, nonceOf(body))).toBe(1);
  });
});
