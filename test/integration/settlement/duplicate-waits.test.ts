import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { generatePrivateKey } from "viem/accounts";
import type { Hex } from "viem";
import { defaultLimits } from "../../../src/config.js";
import { listenerApplicationName, poolApplicationName } from "../../../src/store/db.js";
import type { StartAnvilOptions } from "../../../src/sandbox/anvil.js";
import { addressOf, keys, nodeHolds, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { postJson, type JsonAnswer } from "../../helpers/http.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { waitFor } from "../../helpers/wait.js";

/**
 * Duplicates never poll Postgres (issue 15, item 4). A duplicate /settle (the same payment while
 * its first call is in progress, in this instance or another) and a retry with the same
 * Idempotency-Key wait for the first call's answer: the write that ends it wakes them — handing
 * the row over in-process, or through its NOTIFY to the other instance, which re-reads it once
 * for all its waiters — instead of every waiter re-reading every 100 ms. Before, a storm of 1,000
 * duplicate calls over 2 instances exhausted the 20-connection pools: 49–100 answers were 503.
 *
 * Two facilitator instances on one database (startTestFacilitator twice, as two deployments of
 * one service), real Postgres and Anvil. Reads are counted by a spy on each instance's real
 * repository (the waiters' reads go through it), never by a mock.
 */
const payTo = addressOf(keys.payTo);
const amountAtomic = 1_000n;

interface Pair {
  chain: TestChain;
  database: TestDatabase;
  instances: TestFacilitator[];
  /** findById calls per instance, counted from `resetCounts()`. */
  rowReads: number[];
  /** Idempotency record reads per instance. */
  recordReads: number[];
  resetCounts(): void;
}

function usePair(label: string, chain: Partial<StartAnvilOptions>, limits = {}): Pair {
  const pair = { instances: [] as TestFacilitator[], rowReads: [0, 0], recordReads: [0, 0] } as unknown as Pair;
  beforeAll(async () => {
    pair.chain = await startTestChain(chain);
    pair.database = await createTestDatabase(label);
    for (let i = 0; i < 2; i += 1) {
      // The defaults, not the helper's shorter test budgets: what production runs.
      const instance = await startTestFacilitator({ databaseUrl: pair.database.url, rpcUrls: [pair.chain.rpcUrl], token: pair.chain.token, limits: { ...defaultLimits, ...limits }, startWatcher: true });
      pair.instances.push(instance);
      const settlements = instance.services.settlements;
      const findById = settlements.findById.bind(settlements);
      settlements.findById = (id) => {
        pair.rowReads[i]! += 1;
        return findById(id);
      };
      const idempotency = instance.services.idempotency;
      const read = idempotency.read.bind(idempotency);
      idempotency.read = (id) => {
        pair.recordReads[i]! += 1;
        return read(id);
      };
    }
    await Promise.all(pair.instances.map((instance) => waitFor("the LISTEN connection", async () => instance.services.changeListener.listening, 10_000)));
  });
  pair.resetCounts = () => {
    pair.rowReads = [0, 0];
    pair.recordReads = [0, 0];
  };
  afterAll(async () => {
    for (const instance of pair.instances) await instance.close();
    await pair.database?.drop();
    await pair.chain?.stop();
  });
  return pair;
}

function settle(instance: TestFacilitator, body: unknown, headers: Record<string, string> = {}): Promise<JsonAnswer> {
  return postJson(instance.app, "/settle", body, headers);
}

async function rowOf(database: TestDatabase, nonce: string) {
  return withPgClient(database.url, async (client) => (await client.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows[0]);
}

/** Samples Postgres' and the pools' view of connections until stopped: the maxima seen. */
function sampleConnections(pair: Pair) {
  const seen = { poolConnections: 0, activePoolConnections: 0, listenConnections: 0, otherConnections: 0, perPoolInUse: [0, 0], perPoolWaiting: [0, 0], samples: 0 };
  let stopped = false;
  const client = new pg.Client({ connectionString: pair.database.url, application_name: "duplicate-waits-sampler" });
  const running = (async () => {
    await client.connect();
    try {
      while (!stopped) {
        const { rows } = await client.query<{ application_name: string; state: string | null; n: number }>(
          "select application_name, state, count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() group by 1, 2",
        );
        const count = (filter: (row: (typeof rows)[number]) => boolean) => rows.filter(filter).reduce((sum, row) => sum + row.n, 0);
        seen.poolConnections = Math.max(seen.poolConnections, count((row) => row.application_name === poolApplicationName));
        seen.activePoolConnections = Math.max(seen.activePoolConnections, count((row) => row.application_name === poolApplicationName && row.state !== "idle"));
        seen.listenConnections = Math.max(seen.listenConnections, count((row) => row.application_name === listenerApplicationName));
        seen.otherConnections = Math.max(seen.otherConnections, count((row) => row.application_name !== poolApplicationName && row.application_name !== listenerApplicationName));
        pair.instances.forEach((instance, i) => {
          const pool = instance.services.deps.database.pool;
          seen.perPoolInUse[i] = Math.max(seen.perPoolInUse[i]!, pool.totalCount - pool.idleCount);
          seen.perPoolWaiting[i] = Math.max(seen.perPoolWaiting[i]!, pool.waitingCount);
        });
        seen.samples += 1;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await client.end();
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await running;
      return seen;
    },
  };
}

describe("a duplicate storm over two instances, default limits", () => {
  const pair = usePair("duplicate_storm", {});
  const payments = 100;
  const duplicates = 10;

  it(`answers ${payments * duplicates} calls for ${payments} payments without a 503: one success each, the rest duplicate_settlement with its hash; pools within bounds; waiters do not poll`, async () => {
    const { chain, instances } = pair;
    // One payer per payment: IN_FLIGHT_PER_PAYER_MAX (32 by default) is not what this measures.
    const payerKeys: Hex[] = Array.from({ length: payments }, () => generatePrivateKey());
    for (const key of payerKeys) await chain.mint(addressOf(key), amountAtomic);
    const requirements = v2Requirements({ token: chain.token, payTo, amountAtomic });
    const bodies = await Promise.all(payerKeys.map(async (payerKey) => v2Body(await signPayment({ payerKey, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic }), requirements)));
    const before = instances.map((instance) => instance.services.settlementWaiters.stats());
    pair.resetCounts();

    const sampler = sampleConnections(pair);
    // Round after round: every payment's first call, then every payment's second, …; each call to
    // the instance that did not get the previous copy. All at once.
    const calls = Array.from({ length: duplicates }, (_, round) => bodies.map((body, p) => ({ p, instance: instances[(p + round) % 2]!, body }))).flat();
    const answers = await Promise.all(calls.map(async (call) => ({ p: call.p, answer: await settle(call.instance, call.body) })));
    const connections = await sampler.stop();
    const after = instances.map((instance) => instance.services.settlementWaiters.stats());

    const statuses = new Map<number, number>();
    for (const { answer } of answers) statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    expect(Object.fromEntries(statuses), "HTTP statuses of all calls (no 503)").toEqual({ 200: payments * duplicates });
    for (let p = 0; p < payments; p += 1) {
      const mine = answers.filter((entry) => entry.p === p).map((entry) => entry.answer.body);
      const successes = mine.filter((body) => body.success === true);
      expect(successes, `payment ${p}: one success`).toHaveLength(1);
      const hash = successes[0]!.transaction;
      expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
      const others = mine.filter((body) => body.success !== true).map((body) => ({ errorReason: body.errorReason, transaction: body.transaction }));
      expect(others, `payment ${p}: the others`).toEqual(Array.from({ length: duplicates - 1 }, () => ({ errorReason: "duplicate_settlement", transaction: hash })));
    }
    const rows = await withPgClient(pair.database.url, async (client) => (await client.query("select status, success_answered from settlements")).rows);
    expect(rows.filter((row) => row.status === "confirmed" && row.success_answered)).toHaveLength(payments);

    // Connections: each pool within DB_POOL_MAX, one LISTEN connection per instance outside them, nothing else.
    expect(connections.samples).toBeGreaterThan(0);
    expect(connections.poolConnections).toBeLessThanOrEqual(2 * defaultLimits.dbPoolMax);
    for (const inUse of connections.perPoolInUse) expect(inUse).toBeLessThanOrEqual(defaultLimits.dbPoolMax);
    expect(connections.listenConnections).toBe(2);
    expect(connections.otherConnections).toBe(0);

    // The waiters did not poll. Each instance read a waited row once when the row got its first
    // waiter there, once per notification from the other instance, and on the 3 s recheck — per
    // row, never per waiter: the old 100 ms loop read at least once per waiter (≥ 900 here), and
    // ten times a second while it waited.
    const waits = after.map((stats, i) => stats.waits - before[i]!.waits);
    const waiterReads = after.map((stats, i) => {
      const reads = (s: typeof stats) => s.reads.first + s.reads.notified + s.reads.recheck + s.reads.reconnect;
      return reads(stats) - reads(before[i]!);
    });
    const rechecks = after.map((stats, i) => stats.reads.recheck - before[i]!.reads.recheck);
    const eventReads = after.map((stats, i) => stats.reads.first + stats.reads.notified - before[i]!.reads.first - before[i]!.reads.notified);
    for (let i = 0; i < 2; i += 1) {
      expect(after[i]!.full - before[i]!.full, "waits refused at a cap").toBe(0);
      expect(after[i]!.deadline - before[i]!.deadline, "waits that ran into their deadline").toBe(0);
      // Per row and instance: one first read, and a notification read per verdict (plus one when a notification came during a read).
      expect(eventReads[i]).toBeLessThanOrEqual(3 * payments);
      // Every row read besides the waiters' is the settling path's own (at most one per payment).
      expect(pair.rowReads[i]! - waiterReads[i]!).toBeLessThanOrEqual(payments);
    }
    expect(waits.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    console.log(
      `[duplicate storm] ${payments * duplicates} calls (${payments} payments × ${duplicates}) over 2 instances, default limits: ` +
        `0 of ${answers.length} answered 503; waits ${waits.join(" + ")}; row reads by the waiters ${waiterReads.join(" + ")} (of them rechecks ${rechecks.join(" + ")}), all row reads ${pair.rowReads.join(" + ")}; ` +
        `Postgres connections at most ${connections.poolConnections} pooled (${connections.activePoolConnections} active; per pool in use ${connections.perPoolInUse.join("/")}, waiting for one ${connections.perPoolWaiting.join("/")}) + ${connections.listenConnections} LISTEN; ${connections.samples} samples`,
    );
  }, 240_000);
});

describe("waiting across two instances, each wake-up traced (automine off: a receipt comes when the test mines)", () => {
  const pair = usePair("duplicate_waits", { noMining: true });
  const payerKey = keys.payer;
  const payer = addressOf(payerKey);

  beforeAll(async () => {
    await pair.chain.mint(payer, 100n * amountAtomic);
  });

  const sign = async () => {
    const requirements = v2Requirements({ token: pair.chain.token, payTo, amountAtomic });
    return v2Body(await signPayment({ payerKey, token: pair.chain.token, chainId: pair.chain.chainId, payTo, valueAtomic: amountAtomic }), requirements);
  };

  /** The owner's call on instance A, held at its receipt until the test mines. */
  async function ownerInFlight(body: Awaited<ReturnType<typeof sign>>, headers: Record<string, string> = {}) {
    const owner = settle(pair.instances[0]!, body, headers);
    // In the node's pool, whatever the send method: a sync send keeps the row `signed` until the node answers.
    await waitFor("the owner's transaction in the pool", async () => nodeHolds(pair.chain, (await rowOf(pair.database, body.paymentPayload.payload.authorization.nonce))?.tx_hash), 15_000, 25);
    return { owner }; // not the promise itself: an async function would wait for it
  }

  it("wakes 20 duplicates per instance on the owner's verdict: none read the row in the owner's instance, one read in the other", async () => {
    const [a, b] = pair.instances as [TestFacilitator, TestFacilitator];
    const body = await sign();
    const { owner } = await ownerInFlight(body);
    const beforeWaits = [a, b].map((instance) => instance.services.settlementWaiters.stats());
    const duplicates = [...Array.from({ length: 20 }, () => settle(a, body)), ...Array.from({ length: 20 }, () => settle(b, body))];
    await waitFor("40 duplicates waiting", async () => a.services.settlementWaiters.stats().waiting === 20 && b.services.settlementWaiters.stats().waiting === 20, 15_000, 10);
    const waiting = [a, b].map((instance) => instance.services.settlementWaiters.stats());
    pair.resetCounts();

    await pair.chain.testClient.mine({ blocks: 1 });
    const ownerAnswer = await owner;
    const answers = await Promise.all(duplicates);
    const woken = [a, b].map((instance) => instance.services.settlementWaiters.stats());

    expect(ownerAnswer.body).toMatchObject({ success: true });
    expect(answers.map((answer) => ({ status: answer.status, errorReason: answer.body.errorReason, transaction: answer.body.transaction }))).toEqual(
      answers.map(() => ({ status: 200, errorReason: "duplicate_settlement", transaction: ownerAnswer.body.transaction })),
    );
    // While they waited: one read of the row per instance (its first waiter's), for 20 waiters each.
    expect(waiting.map((stats, i) => stats.reads.first - beforeWaits[i]!.reads.first)).toEqual([1, 1]);
    const wakeReads = woken.map((stats, i) => ({
      notified: stats.reads.notified - waiting[i]!.reads.notified,
      recheck: stats.reads.recheck - waiting[i]!.reads.recheck,
      published: stats.published - waiting[i]!.published,
      deadline: stats.deadline - waiting[i]!.deadline,
    }));
    // A: the owner's confirming write handed the row to its 20 waiters (its own NOTIFY, arriving
    // after, found nobody waiting — or, when it overtook the write's answer, cost one read). B: one
    // read on the NOTIFY.
    expect(wakeReads[0]).toMatchObject({ deadline: 0 });
    expect(wakeReads[0]!.published + wakeReads[0]!.notified).toBeGreaterThanOrEqual(1);
    expect(wakeReads[0]!.notified).toBeLessThanOrEqual(1);
    expect(wakeReads[1]).toMatchObject({ deadline: 0 });
    expect(wakeReads[1]!.notified + wakeReads[1]!.recheck).toBeGreaterThanOrEqual(1);
    expect(wakeReads[1]!.notified).toBeLessThanOrEqual(1);
    // Every row read from the mine to the answers: the waiters' (as above) and the owner's own path, no more.
    expect(pair.rowReads[1]).toBe(wakeReads[1]!.notified + wakeReads[1]!.recheck);
    expect(pair.rowReads[0]).toBeLessThanOrEqual(wakeReads[0]!.notified + wakeReads[0]!.recheck + 1);
  }, 60_000);

  it("wakes retries with the same Idempotency-Key on the recorded answer, in both instances, without polling the record", async () => {
    const [a, b] = pair.instances as [TestFacilitator, TestFacilitator];
    const body = await sign();
    const headers = { "idempotency-key": `storm-${Date.now()}` };
    const { owner } = await ownerInFlight(body, headers);
    const retries = [...Array.from({ length: 10 }, () => settle(a, body, headers)), ...Array.from({ length: 10 }, () => settle(b, body, headers))];
    await waitFor("20 retries waiting", async () => a.services.idempotencyWaiters.stats().waiting === 10 && b.services.idempotencyWaiters.stats().waiting === 10, 15_000, 10);
    const waiting = [a, b].map((instance) => instance.services.idempotencyWaiters.stats());
    pair.resetCounts();

    await pair.chain.testClient.mine({ blocks: 1 });
    const ownerAnswer = await owner;
    const answers = await Promise.all(retries);
    const woken = [a, b].map((instance) => instance.services.idempotencyWaiters.stats());

    expect(ownerAnswer.body).toMatchObject({ success: true });
    // Stripe semantics: every retry gets the recorded answer itself.
    expect(answers.map((answer) => ({ status: answer.status, body: answer.body }))).toEqual(answers.map(() => ({ status: 200, body: ownerAnswer.body })));
    expect(woken.map((stats, i) => stats.deadline - waiting[i]!.deadline)).toEqual([0, 0]);
    // A: the recording write itself (or its own NOTIFY, if that came first: one read).
    expect(woken[0]!.published - waiting[0]!.published + woken[0]!.reads.notified - waiting[0]!.reads.notified).toBeGreaterThanOrEqual(1);
    expect(woken[0]!.reads.notified - waiting[0]!.reads.notified).toBeLessThanOrEqual(1);
    const readsOnWake = woken.map((stats, i) => stats.reads.notified + stats.reads.recheck - waiting[i]!.reads.notified - waiting[i]!.reads.recheck);
    expect(pair.recordReads).toEqual(readsOnWake);
    expect(readsOnWake[1]).toBeGreaterThanOrEqual(1);
    expect(woken[1]!.reads.notified - waiting[1]!.reads.notified).toBeLessThanOrEqual(1);
  }, 60_000);

  it("still answers right, before the deadline, when the NOTIFY is lost: the LISTEN connection terminated mid-wait and down while the verdict is written", async () => {
    const b = pair.instances[1]!;
    const body = await sign();
    const { owner } = await ownerInFlight(body);
    const duplicates = Array.from({ length: 5 }, () => settle(b, body));
    await waitFor("5 duplicates waiting on B", async () => b.services.settlementWaiters.stats().waiting === 5, 15_000, 10);
    const waiting = b.services.settlementWaiters.stats();
    const connectionsBefore = b.services.changeListener.connections;

    // B's LISTEN connection dies (pg_terminate_backend), and cannot come back for now: its
    // reconnects reach a port nobody listens on (an outage of B's path to Postgres's notifications).
    const database = b.services.deps.database;
    const listenerClient = database.listenerClient;
    database.listenerClient = () => new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:1/postgres", connectionTimeoutMillis: 1_000 });
    const pid = b.services.changeListener.backendPid;
    expect(pid).toBeTypeOf("number");
    await withPgClient(pair.database.url, (client) => client.query("select pg_terminate_backend($1)", [pid]));
    await waitFor("B's LISTEN connection lost", async () => !b.services.changeListener.listening, 10_000, 10);

    // The verdict is written while B does not listen: its NOTIFY never reaches B.
    await pair.chain.testClient.mine({ blocks: 1 });
    const ownerAnswer = await owner;
    expect(ownerAnswer.body).toMatchObject({ success: true });
    expect(b.services.changeListener.listening).toBe(false);
    database.listenerClient = listenerClient;

    // B's waiters learn it from their recheck or, once B listens again, from the re-read after the reconnect.
    const answers = await Promise.all(duplicates);
    expect(answers.map((answer) => ({ status: answer.status, errorReason: answer.body.errorReason, transaction: answer.body.transaction }))).toEqual(
      answers.map(() => ({ status: 200, errorReason: "duplicate_settlement", transaction: ownerAnswer.body.transaction })),
    );
    const after = b.services.settlementWaiters.stats();
    expect(after.deadline - waiting.deadline, "waits that ran into their deadline").toBe(0);
    expect(after.reads.recheck + after.reads.reconnect - waiting.reads.recheck - waiting.reads.reconnect).toBeGreaterThanOrEqual(1);
    // And the LISTEN connection heals.
    await waitFor("B listening again", async () => b.services.changeListener.listening && b.services.changeListener.connections > connectionsBefore, 30_000, 50);
  }, 90_000);
});
