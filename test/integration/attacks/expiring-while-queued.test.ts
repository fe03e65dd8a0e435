/**
 * A payment whose authorization expires while its settlement waits for a signer slot (review 16,
 * attack 3): the validity window is checked before the claim, but a settlement may then queue
 * behind the key's in-flight transactions (upto always settles from the one key its witness names).
 * Signed after its deadline, it reverts on chain at our cost. Anvil --no-mining (the test mines),
 * IN_FLIGHT_PER_SIGNER_MAX=1: a first settlement holds the one slot until the test mines it, the
 * short-lived ones queue behind it until their deadlines have passed.
 *
 * Expected: each is refused before signing with its window's code (nothing sent, no revert); only
 * the first payment's transaction is ever sent.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { maxUint256, type PrivateKeyAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { addressOf, keys } from "../../helpers/chain.js";
import { ourTransactionsFor } from "../../helpers/eip2612-permits.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { body, facilitatorSent, minedApprove, nonceHex, payTo } from "../../helpers/permit2-mined.js";
import { nowSeconds, signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { settlementRows } from "../../helpers/sdk.js";
import { waitFor } from "../../helpers/wait.js";

const signer = addressOf(keys.facilitator);
const amountAtomic = 10_000n;
/** Seconds the short-lived payments stay valid: above the 6 s the window check wants at claim. */
const shortValiditySeconds = 9;

describe("a payment that expires while its settlement queues for the signer", () => {
  const f = usePaymentFixture({ label: "expiring_while_queued", chain: { noMining: true }, facilitator: { signerKeys: [keys.facilitator], limits: { inFlightPerSignerMax: 1, settleBudgetMs: 25_000, duplicateWaitMs: 25_000 } } });

  async function settle(body: unknown): Promise<Record<string, unknown>> {
    const response = await f.facilitator.app.inject({ method: "POST", url: "/settle", payload: body as Record<string, unknown> });
    expect(response.statusCode, response.body).toBe(200);
    return response.json() as Record<string, unknown>;
  }

  const uptoBody = (account: PrivateKeyAccount, validForSeconds: number) => body(f.chain, account, "upto", amountAtomic, { maxTimeoutSeconds: validForSeconds });

  it("is refused before signing with its window's code, nothing sent; only the slot holder's transaction goes out", async () => {
    const owner = privateKeyToAccount(generatePrivateKey());
    await f.chain.mint(owner.address, 100n * amountAtomic);
    await f.chain.testClient.setBalance({ address: owner.address, value: 10n ** 18n });
    await f.chain.testClient.mine({ blocks: 1 });
    await minedApprove(f, owner, maxUint256);
    const eip3009Key = generatePrivateKey();
    await f.chain.mint(privateKeyToAccount(eip3009Key).address, 100n * amountAtomic);
    await f.chain.testClient.mine({ blocks: 1 });
    const fromBlock = await f.chain.publicClient.getBlockNumber({ cacheTime: 0 });

    // The slot holder: valid for long, its transaction waits in the pool until the test mines.
    const holder = await uptoBody(owner, 300);
    const holderAnswer = settle(holder);
    const holderHash = await facilitatorSent(f, holder);

    // Short-lived payments queue behind it: an upto one (Permit2 deadline) and an EIP-3009 one (validBefore).
    const shortUpto = await uptoBody(owner, shortValiditySeconds);
    const deadlineSeconds = BigInt((shortUpto.paymentPayload.payload as { permit2Authorization: { deadline: string } }).permit2Authorization.deadline);
    const shortEip3009 = v2Body(
      await signPayment({ payerKey: eip3009Key, token: f.chain.token, chainId: f.chain.chainId, payTo, valueAtomic: amountAtomic, validBeforeSeconds: nowSeconds() + BigInt(shortValiditySeconds) }),
      v2Requirements({ token: f.chain.token, payTo, amountAtomic }),
    );
    const queued = [settle(shortUpto), settle(shortEip3009)];
    await waitFor("both queued payments claimed", async () => (await settlementRows(f.database.url, nonceHex(shortUpto)))[0]?.status === "claimed" && (await settlementRows(f.database.url, shortEip3009.paymentPayload.payload.authorization.nonce))[0]?.status === "claimed", 10_000);
    // Until both have expired outright (the chain's clock follows ours: Anvil stamps blocks with the wall clock).
    while (nowSeconds() <= deadlineSeconds + 1n) await sleep(250);

    // The holder's transaction is mined: its slot frees, the queued ones reach the signer, expired.
    await f.chain.testClient.mine({ blocks: 1 });
    expect(await holderAnswer).toMatchObject({ success: true, transaction: holderHash });
    const [uptoAnswer, eip3009Answer] = await Promise.all(queued);
    expect(uptoAnswer).toMatchObject({ success: false, errorReason: "permit2_deadline_expired", transaction: "" });
    expect(eip3009Answer).toMatchObject({ success: false, errorReason: "invalid_exact_evm_payload_authorization_valid_before", transaction: "" });
    await f.chain.testClient.mine({ blocks: 1 });
    expect(await ourTransactionsFor(f.chain, [signer], owner.address, fromBlock)).toEqual({ sent: 1, reverted: 0 });
    expect(await f.chain.publicClient.getTransactionCount({ address: signer })).toBe(1);
    for (const nonce of [nonceHex(shortUpto), shortEip3009.paymentPayload.payload.authorization.nonce]) {
      expect((await settlementRows(f.database.url, nonce))[0]).toMatchObject({ status: "failed", tx_hash: null });
    }
  }, 90_000);
});

describe("a payment whose payer's funds stay held by its unfinished settlements until the budget ends", () => {
  const f = usePaymentFixture({ label: "funds_held_budget", chain: { noMining: true }, facilitator: { signerKeys: [keys.facilitator2], limits: { settleBudgetMs: 3_000, duplicateWaitMs: 3_000 } } });

  it("is answered 429 payer_busy (retryable: nothing sent, the authorization unused); once the first is final its retry is refused by its own simulation, nothing sent", async () => {
    const payerKey = generatePrivateKey();
    const payerAddress = privateKeyToAccount(payerKey).address;
    await f.chain.mint(payerAddress, amountAtomic); // for exactly one payment
    await f.chain.testClient.mine({ blocks: 1 });
    const eip3009Body = async () => v2Body(await signPayment({ payerKey, token: f.chain.token, chainId: f.chain.chainId, payTo, valueAtomic: amountAtomic }), v2Requirements({ token: f.chain.token, payTo, amountAtomic }));
    const [first, second] = [await eip3009Body(), await eip3009Body()];
    const post = async (payload: unknown) => {
      const response = await f.facilitator.app.inject({ method: "POST", url: "/settle", payload: payload as Record<string, unknown> });
      return { status: response.statusCode, json: response.json() as Record<string, unknown> };
    };
    // The first is sent and waits in the pool (nothing is mined): its reservation holds the whole balance.
    const firstAnswer = post(first);
    await waitFor("the first in the pool", async () => (await settlementRows(f.database.url, first.paymentPayload.payload.authorization.nonce))[0]?.status === "submitted" || (await settlementRows(f.database.url, first.paymentPayload.payload.authorization.nonce))[0]?.status === "signed", 10_000, 25);
    const busy = await post(second);
    expect(busy).toMatchObject({ status: 429, json: { success: false, errorReason: "payer_busy", transaction: "" } });
    expect((await settlementRows(f.database.url, second.paymentPayload.payload.authorization.nonce))[0]).toMatchObject({ status: "failed", tx_hash: null, error_reason: "payer_busy" });
    await f.chain.testClient.mine({ blocks: 1 });
    expect((await firstAnswer).status).toBe(200); // settlement_pending (its budget ran out unmined), or success
    // The identical retry of the first reconciles it: final, and its one success answer given.
    expect(await post(first)).toMatchObject({ status: 200, json: { success: true } });
    // The balance is spent: the retry of the second is refused by its own simulation, nothing sent.
    expect(await post(second)).toMatchObject({ status: 200, json: { success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "" } });
    expect(await f.chain.publicClient.getTransactionCount({ address: addressOf(keys.facilitator2) })).toBe(1);
  }, 60_000);
});
