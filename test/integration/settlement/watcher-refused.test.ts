import { describe, expect, it } from "vitest";
import { keccak256, type Hex } from "viem";
import { allocateNonceAndPersistSigned } from "../../../src/store/tx-nonces.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { newClaim } from "../../helpers/settlement-rows.js";

/**
 * A row left 'signed' (persisted, never accepted by a node — e.g. the refusal could not be
 * recorded) whose bytes the node refuses: the watcher must not leave it unfinished forever. It
 * checks there is no receipt, then fails the row (the authorization is unused) and hands the
 * tx nonce back, once.
 */
describe("the watcher and a signed transaction the node refuses", () => {
  const f = usePaymentFixture({ label: "watcher_refused" });

  it("fails the row, frees the authorization and hands the nonce back", async () => {
    const repo = f.facilitator.services.settlements;
    const signer = addressOf(keys.facilitator);
    const row = (await repo.claim(newClaim({ chainId: f.chain.chainId, asset: f.chain.token, payer: addressOf(keys.payer), payTo: addressOf(keys.payTo), leaseMs: 0 })))!;
    const garbage: Hex = "0x02c0ffee"; // not a transaction: every node refuses it
    const [signed] = await allocateNonceAndPersistSigned(f.facilitator.services.deps.database.db, {
      chainId: f.chain.chainId,
      signer,
      chainPendingNonce: await f.chain.publicClient.getTransactionCount({ address: signer, blockTag: "pending" }),
      settlementIds: [row.id],
      sign: async () => ({ rawTx: garbage, txHash: keccak256(garbage), gasLimit: 100_000n }),
    });
    expect(signed).toMatchObject({ status: "signed" });
    await withPgClient(f.database.url, (c) => c.query("update settlements set lease_until = now() - interval '1 second', updated_at = now() - interval '1 minute' where id = $1", [row.id]));

    await f.facilitator.services.watcher.runOnce();

    expect(await repo.findById(row.id)).toMatchObject({ status: "failed", broadcastAt: null, errorReason: "unexpected_settle_error" });
    const counter = await withPgClient(f.database.url, async (c) => (await c.query("select next_nonce from signer_nonces where address = $1", [signer.toLowerCase()])).rows[0]);
    expect(Number(counter.next_nonce)).toBe(signed!.txNonce); // the last nonce handed out is simply un-taken
  });
});
