import { beforeAll, describe, expect, it } from "vitest";
import { SettlementsRepository } from "../../../src/store/settlements-repo.js";
import { useMigratedDatabase } from "../../helpers/database.js";
import { newClaim } from "../../helpers/settlement-rows.js";

/**
 * Writes of a verdict are meant for one attempt of a row. A worker holding a copy from an earlier
 * attempt (the watcher, or a second retry, that judged the same failed transaction) must not
 * overwrite the row after it was claimed again: found by the security review, where a stale
 * "failed" turned a re-claimed row's paying attempt into failed.
 */

const store = useMigratedDatabase("attempt_guard");
let repo: SettlementsRepository;

beforeAll(() => {
  repo = new SettlementsRepository(store.handle.db);
});

describe("a verdict for an earlier attempt", () => {
  it("changes nothing once the row was claimed again", async () => {
    const claim = newClaim();
    const first = (await repo.claim(claim))!;
    const failedUnused = await repo.transition(first.id, "failed", { errorReason: "invalid_exact_evm_transaction_failed", authorizationUnused: true }, { attempt: first.attempt });
    expect(failedUnused).toMatchObject({ status: "failed", attempt: 1 });
    const second = (await repo.claim(claim))!; // reclaimable: failed with the authorization unused
    expect(second).toMatchObject({ id: first.id, status: "claimed", attempt: 2, authorizationUnused: false });

    // The stale writer's "failed", "confirmed", "pending answered" and "broadcast" for attempt 1 all miss.
    expect(await repo.failClaim(first.id, { errorReason: "unexpected_settle_error", errorMessage: "stale" }, { attempt: 1 })).toBeUndefined();
    expect(await repo.transition(first.id, "failed", { errorReason: "invalid_exact_evm_transaction_failed" }, { attempt: 1 })).toBeUndefined();
    expect(await repo.confirm(first.id, { attempt: 1, settledTxHash: "0x01", blockNumber: 1, gasUsed: 1, gasCostWei: "1", claimSuccess: true })).toBeUndefined();
    await repo.markPendingAnswered({ id: first.id, attempt: 1 }); // a stale settlement_pending answer
    expect(await repo.markBroadcast({ id: first.id, attempt: 1, txHash: "0x01" })).toBeUndefined(); // a stale rebroadcast
    expect(await repo.findById(first.id)).toMatchObject({ status: "claimed", attempt: 2, pendingAnswered: false, leaseUntil: expect.any(Date) });

    // The current attempt's writes go through.
    expect(await repo.transition(first.id, "failed", { errorReason: "unexpected_settle_error" }, { attempt: 2 })).toMatchObject({ status: "failed", attempt: 2 });
  });
});
