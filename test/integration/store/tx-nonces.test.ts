import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keccak256, type Hex } from "viem";
import { defaultLimits } from "../../../src/config.js";
import { openDatabase, type DatabaseHandle } from "../../../src/store/db.js";
import { runMigrations } from "../../../src/store/migrate.js";
import { SettlementsRepository } from "../../../src/store/settlements-repo.js";
import { allocateNonceAndPersistSigned, refuseSignedTransaction, releaseNonce, takeStaleReleasedNonces } from "../../../src/store/tx-nonces.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { newClaim, randomAddress } from "../../helpers/settlement-rows.js";

/** The tx-nonce allocator against real Postgres: one nonce per transaction, holes reused, never twice. */
const chainId = 84532;
let database: TestDatabase;
let handles: DatabaseHandle[] = [];
let repo: SettlementsRepository;

beforeAll(async () => {
  database = await createTestDatabase("tx_nonces");
  await runMigrations(database.url);
  handles = [openDatabase(database.url, defaultLimits), openDatabase(database.url, defaultLimits)];
  repo = new SettlementsRepository(handles[0]!.db);
});

afterAll(async () => {
  for (const handle of handles) await handle.close();
  await database?.drop();
});

const newSigner = randomAddress;

async function claimRow(): Promise<string> {
  return (await repo.claim(newClaim({ chainId })))!.id;
}

/** Allocates for fresh rows; the "signature" is fake bytes: this is about nonces and rows, not chains. */
async function allocate(signer: string, chainPendingNonce: number, ids?: string[], handle = handles[0]!) {
  const settlementIds = ids ?? [await claimRow()];
  const signedWith: number[] = [];
  const rows = await allocateNonceAndPersistSigned(handle.db, {
    chainId,
    signer,
    chainPendingNonce,
    settlementIds,
    sign: async (txNonce) => {
      signedWith.push(txNonce);
      const rawTx: Hex = `0x${randomBytes(16).toString("hex")}`;
      return { rawTx, txHash: keccak256(rawTx), gasLimit: 100_000n };
    },
  });
  return { rows, signedWith, nonce: rows[0]?.txNonce };
}

describe("allocateNonceAndPersistSigned", () => {
  it("starts at the chain's pending nonce and counts up, one nonce per transaction", async () => {
    const signer = newSigner();
    expect((await allocate(signer, 5)).nonce).toBe(5);
    expect((await allocate(signer, 5)).nonce).toBe(6);
    expect((await allocate(signer, 0)).nonce).toBe(7); // a stale pending nonce never goes back
    expect((await allocate(signer, 20)).nonce).toBe(20); // the key was used elsewhere: follow the chain
    expect((await allocate(signer, 20)).nonce).toBe(21);
  });

  it("persists one transaction on every row of a batch, with the row count", async () => {
    const signer = newSigner();
    const ids = [await claimRow(), await claimRow(), await claimRow()];
    const { rows, signedWith } = await allocate(signer, 0, ids);
    expect(signedWith).toEqual([0]);
    expect(rows.map((row) => row.id)).toEqual(ids);
    expect(new Set(rows.map((row) => row.txHash)).size).toBe(1);
    for (const row of rows) expect(row).toMatchObject({ status: "signed", txNonce: 0, txSettlements: 3, signer });
  });

  it("leaves out rows that are no longer claimed, and takes no nonce when none is", async () => {
    const signer = newSigner();
    const [kept, gone] = [await claimRow(), await claimRow()];
    await repo.transition(gone, "failed", { errorReason: "unexpected_settle_error" });
    const batch = await allocate(signer, 0, [kept, gone]);
    expect(batch.rows.map((row) => row.id)).toEqual([kept]);
    expect(batch.rows[0]!.txSettlements).toBe(1);
    expect(await allocate(signer, 0, [gone, gone])).toMatchObject({ rows: [], signedWith: [] }); // a batch checks before signing
    const lone = await claimRow();
    await repo.transition(lone, "failed", { errorReason: "unexpected_settle_error" });
    expect((await allocate(signer, 0, [lone])).rows).toEqual([]); // one row: signed, then rolled back by the guarded UPDATE
    expect((await allocate(signer, 0)).nonce).toBe(1); // nothing was consumed by the refused allocations
  });

  it("reuses a handed-back nonce first (lowest first), and forgets those the chain has passed", async () => {
    const signer = newSigner();
    for (let i = 0; i < 5; i++) await allocate(signer, 0); // 0..4 taken
    await releaseNonce(handles[0]!.db, { chainId, signer, txNonce: 1 });
    await releaseNonce(handles[0]!.db, { chainId, signer, txNonce: 3 });
    await releaseNonce(handles[0]!.db, { chainId, signer, txNonce: 4 }); // the last one: simply un-taken
    expect((await allocate(signer, 0)).nonce).toBe(1);
    expect((await allocate(signer, 0)).nonce).toBe(3);
    expect((await allocate(signer, 0)).nonce).toBe(4);
    expect((await allocate(signer, 0)).nonce).toBe(5);
    await releaseNonce(handles[0]!.db, { chainId, signer, txNonce: 2 });
    expect((await allocate(signer, 3)).nonce).toBe(6); // the chain is past 2: someone filled it
    const left = await withPgClient(database.url, async (c) => (await c.query("select nonce from released_nonces where address = $1", [signer])).rows);
    expect(left).toEqual([]);
  });

  it("never hands one nonce out twice under concurrency from two pools (two instances)", async () => {
    const signer = newSigner();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => allocate(signer, 0, undefined, handles[i % 2]!)));
    const nonces = results.map((result) => result.nonce!).sort((a, b) => a - b);
    expect(nonces).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });
});

describe("when a settlement transaction cannot go out", () => {
  it("fails every row still holding a refused transaction and hands its nonce back once, in one step", async () => {
    const signer = newSigner();
    await allocate(signer, 0); // nonce 0
    const ids = [await claimRow(), await claimRow()];
    const { rows } = await allocate(signer, 0, ids); // nonce 1, a batch of two
    const refusal = { chainId, signer, txNonce: 1, txHash: rows[0]!.txHash!, releaseNonce: true, errorReason: "unexpected_settle_error" as const, errorMessage: "refused" };
    expect(await refuseSignedTransaction(handles[0]!.db, refusal)).toHaveLength(2);
    expect(await refuseSignedTransaction(handles[0]!.db, refusal)).toHaveLength(0); // a second worker: nothing left to do
    for (const id of ids) expect(await repo.findById(id)).toMatchObject({ status: "failed", broadcastAt: null });
    expect((await allocate(signer, 0)).nonce).toBe(1); // handed back exactly once
    expect((await allocate(signer, 0)).nonce).toBe(2);
  });

  it("never fails a row that was signed meanwhile when a worker gives up on its claim", async () => {
    const id = await claimRow();
    await allocate(newSigner(), 0, [id]);
    expect(await repo.failClaim(id, { errorReason: "unexpected_settle_error", errorMessage: "abandoned before signing" })).toBeUndefined();
    expect(await repo.findById(id)).toMatchObject({ status: "signed" });
    const claimed = await claimRow();
    expect(await repo.failClaim(claimed, { errorReason: "unexpected_settle_error", errorMessage: "abandoned before signing" })).toMatchObject({ status: "failed" });
  });

  it("takes only the lowest stale handed-back nonces it will fill, leaving the rest handed back", async () => {
    const signer = newSigner();
    for (let i = 0; i < 25; i++) await allocate(signer, 0);
    for (let nonce = 0; nonce < 20; nonce++) await releaseNonce(handles[0]!.db, { chainId, signer, txNonce: nonce });
    expect(await takeStaleReleasedNonces(handles[0]!.db, { chainId, signer, olderThanMs: 0, limit: 16 })).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(await takeStaleReleasedNonces(handles[0]!.db, { chainId, signer, olderThanMs: 0, limit: 16 })).toEqual([16, 17, 18, 19]);
  });
});

describe("re-claiming a settlement that failed before broadcast", () => {
  it("starts from a clean row: nothing of the earlier attempt is left", async () => {
    const authorization = newClaim({ chainId });
    const claim = () => repo.claim(authorization);
    const first = (await claim())!;
    await allocate(newSigner(), 0, [first.id]);
    await withPgClient(database.url, (c) =>
      c.query("update settlements set status = 'failed', replaced_tx_hashes = '{0xold}', fee_bumps = 3, gas_cost_wei = 5, gas_used = 7, settled_tx_hash = '0xold', block_number = 9, last_broadcast_at = now() where id = $1", [first.id]),
    );
    const again = (await claim())!;
    expect(again).toMatchObject({
      id: first.id,
      status: "claimed",
      attempt: 2,
      txHash: null,
      rawTx: null,
      txNonce: null,
      txSettlements: 1,
      replacedTxHashes: [],
      feeBumps: 0,
      gasCostWei: null,
      gasUsed: null,
      settledTxHash: null,
      blockNumber: null,
      lastBroadcastAt: null,
      broadcastAt: null,
    });
  });
});
