import { describe, expect, it } from "vitest";
import { ClaimReads } from "../../../src/store/claim-reads.js";
import { claimedKeyText, type AuthorizationKey } from "../../../src/store/settlements-repo.js";

/** The coalescing itself (Postgres' side is test/integration/store/claim-reads.test.ts): grouping, failures, bounds. */

const key = (index: number): AuthorizationKey => ({ chainId: 84532, nonceContract: "0xAa", payer: `0x${index.toString(16).padStart(4, "0")}`, nonce: "0x01" });

/** A claimedAmong whose answers the test releases by hand; records each group it was asked. */
function controlledStore(claimed: (key: AuthorizationKey) => boolean) {
  const groups: AuthorizationKey[][] = [];
  const releases: Array<(failure?: Error) => void> = [];
  const claimedAmong = (keys: readonly AuthorizationKey[]) => {
    groups.push([...keys]);
    return new Promise<Set<string>>((resolve, reject) => {
      releases.push((failure) => (failure ? reject(failure) : resolve(new Set(keys.filter(claimed).map(claimedKeyText)))));
    });
  };
  return { groups, releases, claimedAmong };
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

describe("ClaimReads", () => {
  it("answers 503 (Postgres not keeping up) at once past queuedKeysMax waiting keys, and queues again once they drain", async () => {
    const backend = controlledStore(() => false);
    const reads = new ClaimReads(backend.claimedAmong, { keysPerQueryMax: 2, queriesInFlightMax: 1, queuedKeysMax: 3 });
    const inQuery = reads.isClaimed(key(1));
    const waiting = [2, 3, 4].map((index) => reads.isClaimed(key(index)));
    await expect(reads.isClaimed(key(5))).rejects.toMatchObject({ name: "DependencyUnavailableError", dependency: "postgres", httpStatus: 503 });
    backend.releases[0]!();
    expect(await inQuery).toBe(false);
    await settled();
    const again = reads.isClaimed(key(6)); // two of the three left for the next query: room again
    backend.releases[1]!();
    await settled();
    backend.releases[2]!();
    expect(await Promise.all([...waiting, again])).toEqual([false, false, false, false]);
  });

  it("sends a lone key at once, and groups the keys asked for while the queries run into the next ones", async () => {
    const backend = controlledStore((asked) => asked.payer.endsWith("3"));
    const reads = new ClaimReads(backend.claimedAmong, { keysPerQueryMax: 4, queriesInFlightMax: 1, queuedKeysMax: 4_096 });
    const first = reads.isClaimed(key(1));
    expect(backend.groups).toHaveLength(1);
    const later = [2, 3, 4, 5, 6, 7].map((index) => reads.isClaimed(key(index)));
    expect(backend.groups).toHaveLength(1);
    backend.releases[0]!();
    expect(await first).toBe(false);
    await settled();
    expect(backend.groups.map((group) => group.map((asked) => asked.payer))).toEqual([["0x0001"], ["0x0002", "0x0003", "0x0004", "0x0005"]]);
    backend.releases[1]!();
    await settled();
    expect(backend.groups[2]!.map((asked) => asked.payer)).toEqual(["0x0006", "0x0007"]);
    backend.releases[2]!();
    expect(await Promise.all(later)).toEqual([false, true, false, false, false, false]);
    expect(reads.stats()).toEqual({ queries: 3, keys: 7, queued: 0, inFlight: 0 });
  });

  it("asks with normalised keys, so another case of the same key gets the same answer", async () => {
    const backend = controlledStore((asked) => asked.nonceContract === "0xaa");
    const reads = new ClaimReads(backend.claimedAmong);
    const answer = reads.isClaimed(key(1));
    expect(backend.groups[0]![0]!.nonceContract).toBe("0xaa");
    backend.releases[0]!();
    expect(await answer).toBe(true);
  });

  it("fails every key of a failed query with its error, and answers the next ones", async () => {
    const backend = controlledStore(() => false);
    const reads = new ClaimReads(backend.claimedAmong, { keysPerQueryMax: 8, queriesInFlightMax: 1, queuedKeysMax: 4_096 });
    const lone = reads.isClaimed(key(1));
    const grouped = [reads.isClaimed(key(2)), reads.isClaimed(key(3))];
    const failure = new Error("Connection terminated unexpectedly");
    backend.releases[0]!(failure);
    await expect(lone).rejects.toBe(failure);
    await settled();
    backend.releases[1]!(failure);
    for (const answer of grouped) await expect(answer).rejects.toBe(failure);
    const after = reads.isClaimed(key(4));
    backend.releases[2]!();
    expect(await after).toBe(false);
    expect(reads.stats().inFlight).toBe(0);
  });

  it("refuses bounds that are not positive integers", () => {
    expect(() => new ClaimReads(async () => new Set(), { keysPerQueryMax: 0, queriesInFlightMax: 1, queuedKeysMax: 1 })).toThrow(RangeError);
    expect(() => new ClaimReads(async () => new Set(), { keysPerQueryMax: 4, queriesInFlightMax: 1.5, queuedKeysMax: 1 })).toThrow(RangeError);
  });
});
