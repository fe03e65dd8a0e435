import pg from "pg";
import type { Address, Hex } from "viem";
import { addressOf, keys } from "./chain.js";
import { withPgClient } from "./database.js";
import type { PaymentFixture } from "./fixture.js";
import { paymentBody } from "./payments.js";
import { waitFor } from "./wait.js";
import { postJson } from "./http.js";

/**
 * Making a batch form on purpose: hold the signer's nonce row lock (as a slow Postgres would); the
 * first settlement waits on it in Postgres, the next ones queue behind it in the process, and on
 * release they share one transaction.
 */
export interface SettleAnswer {
  success: boolean;
  errorReason?: string;
  errorMessage?: string;
  transaction: Hex;
  payer?: string;
}

export function pay(f: PaymentFixture, payerKey: Hex, payTo: Address, amountAtomic: bigint) {
  return paymentBody(f.chain, { payerKey, payTo, amountAtomic });
}

export async function settle(f: PaymentFixture, body: object): Promise<SettleAnswer> {
  return (await postJson<SettleAnswer>(f.facilitator.app, "/settle", body)).body;
}

/**
 * Runs `send` while another connection holds the signer's nonce row lock; calls `whileHeld` (if
 * any) and releases the lock once `expectedClaims` rows are claimed and `queued` settlements are
 * prepared (simulated, gas estimated) and queued in the process for the signer's next transaction
 * (engine.waitingToSend()). `queued` defaults to `expectedClaims - 1`: the first to reach the
 * signer waits on the lock inside its flush, which is not counted as queued, and every other one
 * queues behind it. Give it when some claimed settlements never queue (e.g. one that waits for
 * another's funds to be final).
 */
export async function whileSignerLocked<T>(
  f: PaymentFixture,
  expectedClaims: number,
  send: () => Promise<T>,
  options: { signerKey?: Hex; whileHeld?: () => Promise<void>; queued?: number } = {},
): Promise<T> {
  const signer = addressOf(options.signerKey ?? keys.facilitator).toLowerCase();
  const queued = options.queued ?? expectedClaims - 1;
  const locker = new pg.Client({ connectionString: f.database.url });
  await locker.connect();
  try {
    await locker.query("begin");
    const locked = await locker.query("select * from signer_nonces where address = $1 for update", [signer]);
    if (locked.rowCount !== 1) throw new Error(`signer ${signer} has no nonce row yet: settle one payment first`);
    const sending = send();
    await waitForClaims(f, expectedClaims);
    const { engine } = f.facilitator.services;
    await waitFor(`${queued} settlements queued for the signer's next transaction`, async () => engine.waitingToSend() >= queued, 20_000, 10);
    await options.whileHeld?.();
    await locker.query("commit");
    return await sending;
  } finally {
    await locker.end();
  }
}

/**
 * Waits until at least `count` backends of this test's database wait on a row lock — a settlement
 * that reached its signer and blocks on the nonce row whileSignerLocked holds. Deterministic where
 * "claimed" is not: a claimed settlement may still be simulating when a later one overtakes it.
 */
export async function waitForLockWaiters(f: PaymentFixture, count: number): Promise<void> {
  const database = new URL(f.database.url).pathname.slice(1);
  await waitFor(
    `${count} settlements waiting on the signer's lock`,
    async () =>
      (await withPgClient(f.database.url, async (c) => (await c.query("select count(*)::int as n from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'", [database])).rows[0].n)) >= count,
    20_000,
  );
}

/** Waits until at least `count` rows are claimed (not yet signed). */
export async function waitForClaims(f: PaymentFixture, count: number): Promise<void> {
  await waitFor(
    `${count} claimed settlements`,
    async () => (await withPgClient(f.database.url, async (c) => (await c.query("select count(*)::int as n from settlements where status = 'claimed'")).rows[0].n)) >= count,
    10_000,
  );
}

export async function settlementRows(f: PaymentFixture, txHash?: Hex, ids?: string[]) {
  return withPgClient(f.database.url, async (c) =>
    txHash
      ? (await c.query("select * from settlements where tx_hash = $1 order by id", [txHash])).rows
      : (await c.query("select * from settlements where id = any($1::uuid[]) order by id", [ids])).rows,
  );
}

export async function settlementRowByNonce(f: PaymentFixture, nonce: string) {
  return withPgClient(f.database.url, async (c) => (await c.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows[0]);
}
