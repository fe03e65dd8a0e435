/**
 * The chain's verdict on Permit2 settlements, with blocks mined by the test (Anvil --no-mining,
 * ordered by tip): a revert while the nonce stays unused is failed with the authorization unused
 * and settled again alone; an exact permit front-run by someone else's transaction that paid payTo
 * is a success with that transaction; an upto permit whose nonce the payer burnt is failed for good;
 * a settlement_pending is finished by the watcher and reconciled by the identical retry. Payloads
 * from the official @x402/evm 2.27 clients.
 */
import { erc20Abi, maxUint256, type Abi } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { permit2Address } from "../../../src/contracts/permit2.js";
import { permit2Artifact } from "../../../src/sandbox/artifacts.js";
import { keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { body, facilitatorSent, frontRun, mineUntil, minedApprove, nonceHex, payTo, permitOf, sendFromTest, settle } from "../../helpers/permit2-mined.js";
import { settlementRows } from "../../helpers/sdk.js";
import { waitFor } from "../../helpers/wait.js";

describe("Permit2 verdicts on a chain the test mines", () => {
  const f = usePaymentFixture({ label: "permit2_verdicts", chain: { noMining: true }, payerBalanceAtomic: 100_000_000n });
  const payer = privateKeyToAccount(keys.payer);

  it("a revert with the nonce unused is failed with the authorization unused, tried again alone, and payable again later", async () => {
    await minedApprove(f, payer, maxUint256);
    const b = await body(f.chain, payer, "exact", 10_000n);
    const answer = settle(f, b);
    const first = await facilitatorSent(f, b);
    // The payer withdraws the allowance in the same block, ahead of our settlement: it reverts (TRANSFER_FROM_FAILED).
    await sendFromTest(f, payer, { address: f.chain.token, abi: erc20Abi as Abi, functionName: "approve", args: [permit2Address, 0n] });
    await f.chain.testClient.mine({ blocks: 1 });
    expect((await f.chain.publicClient.getTransactionReceipt({ hash: first })).status).toBe("reverted");

    // The second attempt, alone, finds the allowance gone before sending anything.
    expect(await mineUntil(f, answer)).toMatchObject({ success: false, errorReason: "permit2_allowance_required", transaction: "" });
    const [row] = await settlementRows(f.database.url, nonceHex(b));
    expect(row).toMatchObject({ status: "failed", attempt: 2, broadcast_at: null });

    // Reclaimable: once the payer approves again, the identical payment settles.
    await minedApprove(f, payer, maxUint256);
    const again = await mineUntil(f, settle(f, b));
    expect(again).toMatchObject({ success: true, amount: "10000" });
    expect(again.transaction).not.toBe(first);
  }, 60_000);

  it("an exact permit front-run by a stranger's transaction that paid payTo is answered success with that transaction", async () => {
    const b = await body(f.chain, payer, "exact", 20_000n);
    const answer = settle(f, b);
    const ours = await facilitatorSent(f, b);
    const theirs = await frontRun(f, b);
    const payToBefore = await f.chain.balanceOf(payTo);
    await f.chain.testClient.mine({ blocks: 1 });
    expect((await f.chain.publicClient.getTransactionReceipt({ hash: ours })).status).toBe("reverted");

    expect(await mineUntil(f, answer)).toMatchObject({ success: true, transaction: theirs });
    expect(await f.chain.balanceOf(payTo)).toBe(payToBefore + 20_000n);
    const [row] = await settlementRows(f.database.url, nonceHex(b));
    expect(row).toMatchObject({ status: "confirmed", tx_hash: ours, settled_tx_hash: theirs });
  }, 60_000);

  it("an upto permit whose nonce the payer burnt ahead of our settlement is failed for good", async () => {
    const b = await body(f.chain, payer, "upto", 50_000n);
    const answer = settle(f, b, 30_000n);
    await facilitatorSent(f, b);
    const nonce = BigInt(permitOf(b).permit2Authorization.nonce);
    await sendFromTest(f, payer, { address: permit2Address, abi: permit2Artifact.abi, functionName: "invalidateUnorderedNonces", args: [nonce >> 8n, 1n << (nonce & 0xffn)] });
    await f.chain.testClient.mine({ blocks: 1 });

    expect(await mineUntil(f, answer)).toMatchObject({ success: false, errorReason: "invalid_upto_evm_transaction_failed" });
    const [row] = await settlementRows(f.database.url, nonceHex(b));
    expect(row).toMatchObject({ status: "failed", authorization_unused: false, attempt: 1 });
    // Final: the identical retry gets the same failure, nothing is sent.
    expect(await settle(f, b, 30_000n)).toMatchObject({ success: false, errorReason: "invalid_upto_evm_transaction_failed" });
  }, 60_000);
});

describe("a Permit2 settlement_pending, finished by the watcher", () => {
  const f = usePaymentFixture({
    label: "permit2_pending",
    chain: { noMining: true },
    payerBalanceAtomic: 100_000_000n,
    // Nothing is mined until the test mines, so the first answer is settlement_pending whatever the
    // budget: 5 s only leaves room to prepare, sign and send under load.
    facilitator: { startWatcher: true, limits: { settleBudgetMs: 5_000, duplicateWaitMs: 5_000 } },
  });
  const payer = privateKeyToAccount(keys.payer);

  it("answers settlement_pending with the hash, confirms after the block, and the identical retry gets the one success", async () => {
    await minedApprove(f, payer, maxUint256);
    const b = await body(f.chain, payer, "upto", 80_000n);
    const pending = await settle(f, b, 70_000n);
    expect(pending).toMatchObject({ success: false, errorReason: "settlement_pending" });
    expect(pending.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    await f.chain.testClient.mine({ blocks: 1 });
    await waitFor("the watcher's verdict", async () => (await settlementRows(f.database.url, nonceHex(b)))[0]?.status === "confirmed", 15_000, 50);
    expect(await settle(f, b, 70_000n)).toMatchObject({ success: true, transaction: pending.transaction, amount: "70000" });
    expect(await settle(f, b, 70_000n)).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
  }, 60_000);
});
