import { describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { settlements } from "../../../src/store/schema.js";
import { settlementStatuses } from "../../../src/store/settlement-states.js";
import { SettlementsRepository, type AuthorizationKey, type NewSettlement } from "../../../src/store/settlements-repo.js";
import { ClaimReads } from "../../../src/store/claim-reads.js";
import { useMigratedDatabase } from "../../helpers/database.js";
import { newClaim } from "../../helpers/settlement-rows.js";

/** Verify's coalesced "is it claimed?" reads: the same answers as one isClaimed query per key, from fewer queries. */

const store = useMigratedDatabase("claim_reads");

const keyOf = (claim: NewSettlement): AuthorizationKey => ({ chainId: claim.chainId, nonceContract: claim.nonceContract ?? claim.asset, payer: claim.payer, nonce: claim.nonce });
const shouting = (key: AuthorizationKey): AuthorizationKey => ({ ...key, nonceContract: key.nonceContract.toUpperCase().replace("0X", "0x"), payer: key.payer.toUpperCase().replace("0X", "0x") });

/** One row in every status × broadcast × authorization state, and as many keys nobody claimed. */
async function rowsOfEveryKind(repo: SettlementsRepository): Promise<AuthorizationKey[]> {
  const keys: AuthorizationKey[] = [];
  for (const status of settlementStatuses) {
    for (const broadcastAt of [null, new Date()]) {
      for (const authorizationUnused of [false, true]) {
        const claim = newClaim();
        const row = (await repo.claim(claim))!;
        await store.handle.db.update(settlements).set({ status, broadcastAt, authorizationUnused }).where(eq(settlements.id, row.id));
        keys.push(keyOf(claim));
      }
    }
  }
  for (let index = 0; index < 20; index += 1) keys.push(keyOf(newClaim()));
  return keys;
}

describe("SettlementsRepository.claimedAmong", () => {
  it("says of each key what isClaimed says, for rows in every state, unknown keys and keys in another case", async () => {
    const repo = new SettlementsRepository(store.handle.db);
    const keys = await rowsOfEveryKind(repo);
    const asked = [...keys, ...keys.slice(0, 10).map(shouting)];
    const one = await Promise.all(asked.map((key) => repo.isClaimed(key)));
    const claimed = await repo.claimedAmong(asked);
    const reads = new ClaimReads((batch) => repo.claimedAmong(batch));
    const coalesced = await Promise.all(asked.map((key) => reads.isClaimed(key)));
    expect(coalesced).toEqual(one);
    // Rows claimed, signed, submitted or confirmed hold their key; a failed row only while not reclaimable.
    expect(one.filter(Boolean).length).toBeGreaterThan(0);
    expect(one.some((value) => !value)).toBe(true);
    expect(claimed.size).toBe(one.slice(0, keys.length).filter(Boolean).length);
  });

  it("matches a Permit2 row on its nonce contract (Permit2), not on the token it pays", async () => {
    const repo = new SettlementsRepository(store.handle.db);
    const permit2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3";
    const claim = newClaim({ nonceContract: permit2, transferMethod: "permit2" });
    await repo.claim(claim);
    const key = keyOf(claim);
    const asToken: AuthorizationKey = { ...key, nonceContract: claim.asset };
    expect(await repo.isClaimed(key)).toBe(true);
    expect(await repo.isClaimed(asToken)).toBe(false);
    const claimed = await repo.claimedAmong([key, asToken]);
    expect(claimed.size).toBe(1);
    const reads = new ClaimReads((batch) => repo.claimedAmong(batch));
    expect(await Promise.all([reads.isClaimed(key), reads.isClaimed(asToken)])).toEqual([true, false]);
  });

  it("answers an empty list with nothing", async () => {
    const repo = new SettlementsRepository(store.handle.db);
    expect((await repo.claimedAmong([])).size).toBe(0);
  });
});

describe("ClaimReads on Postgres", () => {
  it("answers 300 concurrent verifies from a few queries, each as its own query would", async () => {
    const repo = new SettlementsRepository(store.handle.db);
    const claimedKeys: AuthorizationKey[] = [];
    for (let index = 0; index < 30; index += 1) {
      const claim = newClaim();
      await repo.claim(claim);
      claimedKeys.push(keyOf(claim));
    }
    const asked = Array.from({ length: 300 }, (_, index) => (index % 10 === 0 ? claimedKeys[index / 10]! : keyOf(newClaim())));
    const reads = new ClaimReads((batch) => repo.claimedAmong(batch), { keysPerQueryMax: 64, queriesInFlightMax: 2, queuedKeysMax: 4_096 });
    const answers = await Promise.all(asked.map((key) => reads.isClaimed(key)));
    expect(answers).toEqual(asked.map((_, index) => index % 10 === 0));
    const { queries, keys } = reads.stats();
    expect(keys).toBe(300);
    // 2 sent at once (one key each), the other 298 queued behind them: ceil(298 / 64) = 5 more.
    expect(queries).toBe(7);
  });

  it("never answers from an earlier read: a key claimed after one answer is claimed in the next", async () => {
    const repo = new SettlementsRepository(store.handle.db);
    const reads = new ClaimReads((batch) => repo.claimedAmong(batch));
    const claim = newClaim();
    expect(await reads.isClaimed(keyOf(claim))).toBe(false);
    await repo.claim(claim);
    expect(await reads.isClaimed(keyOf(claim))).toBe(true);
  });
});
