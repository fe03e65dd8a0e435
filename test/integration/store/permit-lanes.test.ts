import { beforeAll, describe, expect, it } from "vitest";
import { PermitLaneTakenError } from "../../../src/errors.js";
import { SettlementsRepository } from "../../../src/store/settlements-repo.js";
import { useMigratedDatabase } from "../../helpers/database.js";
import { newClaim, randomAddress } from "../../helpers/settlement-rows.js";

/**
 * The EIP-2612 permit lane (review 16 M1, migration 0011): at most one settlement carrying a permit
 * per (chain, token, owner) is unfinished, whichever instance claims it — a partial unique index
 * on settlements, so the claim itself decides, atomically, with no lock held past the statement.
 * A claim that finds the lane taken throws PermitLaneTakenError (payer_busy, 429) and writes
 * nothing; the lane is free again when the holder's row is final.
 */
const store = useMigratedDatabase("permit_lanes");
let repo: SettlementsRepository;

beforeAll(() => {
  repo = new SettlementsRepository(store.handle.db);
});

const token = "0x036cbd53842c5426634e7929541ec2318f3dcf7e";
const permitClaim = (payer: string, overrides: Parameters<typeof newClaim>[0] = {}) => newClaim({ payer, asset: token, transferMethod: "permit2", eip2612Permit: true, ...overrides });

async function expectLaneTaken(claim: ReturnType<typeof newClaim>): Promise<void> {
  const error = await repo.claim(claim).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(PermitLaneTakenError);
  expect(error).toMatchObject({ code: "payer_busy", httpStatus: 429 });
  expect((error as Error).message).toMatch(/EIP-2612 permit/);
}

describe("the EIP-2612 permit lane of (chain, token, owner)", () => {
  it("refuses a second claim carrying a permit while the first is unfinished, and writes no row for it", async () => {
    const payer = randomAddress();
    const first = (await repo.claim(permitClaim(payer)))!;
    expect(first).toMatchObject({ status: "claimed", eip2612Permit: true });
    const second = permitClaim(payer);
    await expectLaneTaken(second);
    expect(await repo.findByKey({ chainId: second.chainId, nonceContract: second.asset, payer, nonce: second.nonce })).toBeUndefined();
  });

  it("is one lane per (chain, token, owner): other owners, tokens and chains, and claims without a permit, are not held", async () => {
    const payer = randomAddress();
    await repo.claim(permitClaim(payer));
    expect(await repo.claim(permitClaim(randomAddress()))).toMatchObject({ eip2612Permit: true });
    expect(await repo.claim(permitClaim(payer, { asset: randomAddress() }))).toMatchObject({ eip2612Permit: true });
    expect(await repo.claim(permitClaim(payer, { chainId: 8453, network: "eip155:8453" }))).toMatchObject({ eip2612Permit: true });
    expect(await repo.claim(permitClaim(payer, { eip2612Permit: false }))).toMatchObject({ eip2612Permit: false });
    expect(await repo.claim(newClaim({ payer, asset: token }))).toMatchObject({ eip2612Permit: false });
  });

  it("is held while signed and submitted (a settlement_pending answer included), freed when confirmed", async () => {
    const payer = randomAddress();
    const row = (await repo.claim(permitClaim(payer)))!;
    await repo.transition(row.id, "signed", { txHash: "0x01", rawTx: "0x02", signer: randomAddress(), txNonce: 1 }, { attempt: row.attempt });
    await expectLaneTaken(permitClaim(payer));
    await repo.markBroadcast({ id: row.id, attempt: row.attempt, txHash: "0x01" });
    await repo.markPendingAnswered({ id: row.id, attempt: row.attempt });
    expect(await repo.findById(row.id)).toMatchObject({ status: "submitted", pendingAnswered: true });
    await expectLaneTaken(permitClaim(payer));
    await repo.confirm(row.id, { attempt: row.attempt, settledTxHash: "0x01", blockNumber: 1, gasUsed: 1, gasCostWei: "1", claimSuccess: false });
    expect(await repo.claim(permitClaim(payer))).toMatchObject({ status: "claimed" });
  });

  it("is freed when the holder fails on chain, and when its claim is given up (a fault, or the watcher after a crashed process's lease)", async () => {
    const payer = randomAddress();
    const onChain = (await repo.claim(permitClaim(payer)))!;
    await repo.transition(onChain.id, "signed", { txHash: "0x03", rawTx: "0x04", signer: randomAddress(), txNonce: 2 }, { attempt: onChain.attempt });
    await repo.transition(onChain.id, "failed", { errorReason: "invalid_exact_evm_transaction_failed" }, { attempt: onChain.attempt });
    const abandoned = (await repo.claim(permitClaim(payer)))!;
    await expectLaneTaken(permitClaim(payer));
    expect(await repo.failClaim(abandoned.id, { errorReason: "unexpected_settle_error", errorMessage: "abandoned before signing" }, { attempt: abandoned.attempt })).toMatchObject({ status: "failed" });
    expect(await repo.claim(permitClaim(payer))).toMatchObject({ status: "claimed" });
  });

  it("is taken again by a re-claim: refused while another holds the lane (the row stays failed, reclaimable); a re-claim without the permit takes none", async () => {
    const payer = randomAddress();
    const claim = permitClaim(payer);
    const row = (await repo.claim(claim))!;
    await repo.failClaim(row.id, { errorReason: "service_unavailable", errorMessage: "fault before signing" }, { attempt: row.attempt });
    const holder = (await repo.claim(permitClaim(payer)))!;
    await expectLaneTaken(claim);
    expect(await repo.findById(row.id)).toMatchObject({ status: "failed", attempt: 1, eip2612Permit: true });
    // The identical payment re-settled without its permit (a retry without the extension) sends no permit: no lane.
    expect(await repo.claim({ ...claim, eip2612Permit: false })).toMatchObject({ id: row.id, status: "claimed", attempt: 2, eip2612Permit: false });
    await repo.failClaim(holder.id, { errorReason: "service_unavailable", errorMessage: "fault before signing" }, { attempt: holder.attempt });
    await repo.failClaim(row.id, { errorReason: "service_unavailable", errorMessage: "fault before signing" }, { attempt: 2 });
    expect(await repo.claim(claim)).toMatchObject({ id: row.id, status: "claimed", attempt: 3, eip2612Permit: true });
  });

  it("answers concurrent claims of the identical payment as ON CONFLICT does (one row, the others undefined), never as a taken lane", async () => {
    // The arbiter index only reports a conflict with an uncommitted twin and moves on; the lane index
    // then waits for the twin and raises 23505 — the same payment, not another one holding the lane.
    let refused = 0;
    for (let round = 0; round < 20; round += 1) {
      const claim = permitClaim(randomAddress());
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => repo.claim(claim)));
      refused += results.filter((result) => result.status === "rejected").length;
      expect(results.filter((result) => result.status === "fulfilled" && result.value !== undefined)).toHaveLength(1);
    }
    expect(refused).toBe(0);
  });

  it("lets exactly one of 12 concurrent claims of one lane through (the index decides, not a read)", async () => {
    const payer = randomAddress();
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => repo.claim(permitClaim(payer))));
    expect(results.filter((result) => result.status === "fulfilled" && result.value !== undefined)).toHaveLength(1);
    const refused = results.filter((result) => result.status === "rejected");
    expect(refused).toHaveLength(11);
    for (const result of refused) expect(result.reason).toBeInstanceOf(PermitLaneTakenError);
  });
});
