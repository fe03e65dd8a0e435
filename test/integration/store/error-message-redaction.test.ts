/**
 * A settlement row's error_message is served back (a failed row's answer, the operator's tools),
 * so it never stores an RPC URL's secret, whichever write path fails the row. Real Postgres.
 */
import { randomBytes } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { keccak256, type Hex } from "viem";
import { SettlementsRepository } from "../../../src/store/settlements-repo.js";
import { allocateNonceAndPersistSigned, refuseSignedTransaction } from "../../../src/store/tx-nonces.js";
import { useMigratedDatabase } from "../../helpers/database.js";
import { newClaim, randomAddress } from "../../helpers/settlement-rows.js";

const secret = "SECRETKEY123";
const message = `RPC failed: HTTP request failed.\n\nURL: https://base-mainnet.g.alchemy.com/v2/${secret}?apikey=${secret}`;
const redacted = "RPC failed: HTTP request failed.\n\nURL: https://base-mainnet.g.alchemy.com/…";

const store = useMigratedDatabase("error_message_redaction");
let repo: SettlementsRepository;

beforeAll(() => {
  repo = new SettlementsRepository(store.handle.db);
});

const claimRow = async () => (await repo.claim(newClaim()))!.id;

describe("error_message", () => {
  it("is stored redacted by failClaim()", async () => {
    const id = await claimRow();
    await repo.failClaim(id, { errorReason: "service_unavailable", errorMessage: message });
    expect((await repo.findById(id))!.errorMessage).toBe(redacted);
  });

  it("is stored redacted by transition() to failed", async () => {
    const id = await claimRow();
    await repo.transition(id, "failed", { errorReason: "invalid_exact_evm_transaction_simulation_failed", errorMessage: message });
    expect((await repo.findById(id))!.errorMessage).toBe(redacted);
  });

  it("is stored when the text carries a NUL or a lone surrogate (a payer's contract chooses its revert reason)", async () => {
    const id = await claimRow();
    await repo.transition(id, "failed", { errorReason: "invalid_exact_evm_transaction_simulation_failed", errorMessage: "simulation reverted: a\u0000b\ud800c" });
    expect((await repo.findById(id))!.errorMessage).toBe("simulation reverted: a\ufffdb\ufffdc");
  });

  it("is stored redacted by refuseSignedTransaction()", async () => {
    const id = await claimRow();
    const signer = randomAddress();
    const [signed] = await allocateNonceAndPersistSigned(store.handle.db, {
      chainId: 84532,
      signer,
      chainPendingNonce: 0,
      settlementIds: [id],
      sign: async () => {
        const rawTx: Hex = `0x${randomBytes(16).toString("hex")}`;
        return { rawTx, txHash: keccak256(rawTx), gasLimit: 100_000n };
      },
    });
    const failed = await refuseSignedTransaction(store.handle.db, {
      chainId: 84532,
      signer,
      txNonce: signed!.txNonce!,
      txHash: signed!.txHash!,
      releaseNonce: true,
      errorReason: "invalid_exact_evm_transaction_failed",
      errorMessage: message,
    });
    expect(failed).toHaveLength(1);
    expect((await repo.findById(id))!.errorMessage).toBe(redacted);
  });

  it("is bounded", async () => {
    const id = await claimRow();
    await repo.failClaim(id, { errorReason: "service_unavailable", errorMessage: "x".repeat(100_000) });
    expect((await repo.findById(id))!.errorMessage!.length).toBeLessThanOrEqual(1_000);
  });
});
