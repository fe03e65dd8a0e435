import { waitFor } from "../../helpers/wait.js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createWalletClient, http, parseAbi, parseGwei, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { withPgClient } from "../../helpers/database.js";
import { addressOf, keys, nodeHolds } from "../../helpers/chain.js";
import type { TestFacilitator } from "../../helpers/facilitator.js";
import { startAnotherInstance, usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";
import { authorizationOf, signPayment, v2Body, v2Requirements, type SignedPayment } from "../../helpers/payments.js";
import { transferWithAuthorizationCall } from "../../../src/exact-evm/transfer-call.js";

/**
 * Automine off: transactions wait in the pool until the test mines, so the receipt budget can
 * run out and others can get in first. Two instances on one database: a short budget for the
 * answers that must be settlement_pending, a roomy one for those that must come after the test's steps.
 */
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;
/** For the answers whose point is the budget running out (settlement_pending while nothing is mined). */
const settleBudgetMs = 1_500;
/**
 * For the answers that must come within the budget, after the test's own steps (waiting for the
 * pool, a front-run, mining): on a loaded machine those can outlast 1.5 s, and the answer would be
 * settlement_pending for a reason that is not the test's.
 */
const roomySettleBudgetMs = 15_000;

const fx = usePaymentFixture({ label: "pending", chain: { noMining: true }, payerBalanceAtomic: 10_000_000n, facilitator: { limits: { settleBudgetMs, duplicateWaitMs: settleBudgetMs } } });
/** A second instance on the same chain and database, with the roomy budget. */
let roomy: TestFacilitator;
beforeAll(async () => {
  roomy = await startAnotherInstance(fx, { limits: { settleBudgetMs: roomySettleBudgetMs, duplicateWaitMs: roomySettleBudgetMs } });
});
afterAll(async () => {
  await roomy?.close(); // before the fixture drops the database (after hooks run last-registered first)
});

beforeEach(async () => {
  await fx.chain.testClient.mine({ blocks: 1 }); // nothing left over from the previous test
});

const sign = () => signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic });
const requirements = () => v2Requirements({ token: fx.chain.token, payTo, amountAtomic });

/** Through the short-budget instance, or `via` roomy. */
const settle = (body: unknown, via: "short" | "roomy" = "short") => postJson(via === "roomy" ? roomy.app : fx.facilitator.app, "/settle", body);

async function rowFor(nonce: string) {
  return withPgClient(fx.database.url, async (client) => (await client.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows[0]);
}

/** The settlement's transaction is in the node's pool: its row is `submitted`, or `signed` while a sync send waits for the receipt. */
async function inPool(nonce: string) {
  const row = await rowFor(nonce);
  return (await nodeHolds(fx.chain, row?.tx_hash)) ? row : undefined;
}


/** Submits the same authorization straight to the token, from a stranger, with a high tip. */
async function frontRun(payment: SignedPayment, tipGwei = "50"): Promise<Hex> {
  const wallet = createWalletClient({ account: privateKeyToAccount(keys.stranger), transport: http(fx.chain.rpcUrl) });
  const call = transferWithAuthorizationCall(
    fx.chain.token,
    authorizationOf(payment),
    payment.signature,
  );
  return wallet.sendTransaction({ ...call, gas: 200_000n, maxPriorityFeePerGas: parseGwei(tipGwei), maxFeePerGas: parseGwei("200"), chain: null });
}

describe("POST /settle when the receipt is slow", () => {
  it("answers settlement_pending with the tx hash when the budget runs out, and the identical retry gets the real outcome", async () => {
    const payment = await sign();
    const body = v2Body(payment, requirements());
    // Nothing is mined until the test mines: the answer can only come from the budget running out.
    const first = await settle(body);
    expect(first.body).toMatchObject({ success: false, errorReason: "settlement_pending", network: "eip155:84532", payer });
    expect(first.body.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await fx.chain.publicClient.getTransaction({ hash: first.body.transaction })).toMatchObject({ blockNumber: null }); // still in the pool
    expect(await rowFor(payment.authorization.nonce)).toMatchObject({ status: "submitted", pending_answered: true });

    // The v2 SDK retries once with the identical body; this time the block comes (within the budget
    // of the instance it reaches).
    const retry = settle(body, "roomy");
    await new Promise((resolve) => setTimeout(resolve, 200));
    await fx.chain.testClient.mine({ blocks: 1 });
    expect((await retry).body).toMatchObject({ success: true, transaction: first.body.transaction });
    // One payment, one success: a third call is a duplicate.
    expect((await settle(body)).body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: first.body.transaction });
    const receipt = await fx.chain.publicClient.getTransactionReceipt({ hash: first.body.transaction });
    expect(receipt.status).toBe("success");
  });

  it("settles again, alone, on the identical retry when the pending transaction reverted with the authorization unused", async () => {
    const payment = await sign();
    const body = v2Body(payment, requirements());
    const first = await settle(body);
    expect(first.body.errorReason).toBe("settlement_pending");
    // Before it is mined the payer moves its whole balance away (higher tip): our call reverts and
    // the authorization stays unused — an honest payment that must not end failed.
    const payerWallet = createWalletClient({ account: privateKeyToAccount(keys.payer), transport: http(fx.chain.rpcUrl) });
    const balance = await fx.chain.balanceOf(payer);
    await payerWallet.writeContract({
      address: fx.chain.token,
      abi: parseAbi(["function transfer(address to, uint256 value) returns (bool)"]),
      functionName: "transfer",
      args: [addressOf(keys.stranger), balance],
      gas: 100_000n,
      maxPriorityFeePerGas: parseGwei("50"),
      maxFeePerGas: parseGwei("200"),
      chain: null,
    });
    await fx.chain.testClient.mine({ blocks: 1 });
    expect((await fx.chain.publicClient.getTransactionReceipt({ hash: first.body.transaction })).status).toBe("reverted");
    await fx.chain.mint(payer, balance); // funded again

    const payToBefore = await fx.chain.balanceOf(payTo);
    const retry = settle(body, "roomy"); // its answer must come within the budget, after the test mines
    await waitFor("the re-settlement in the pool", async () => {
      const row = await inPool(payment.authorization.nonce);
      return row !== undefined && row.tx_hash !== first.body.transaction;
    }, 5_000, 25);
    await fx.chain.testClient.mine({ blocks: 1 });
    const answer = (await retry).body;
    expect(answer).toMatchObject({ success: true });
    expect(answer.transaction).not.toBe(first.body.transaction);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
    expect(await rowFor(payment.authorization.nonce)).toMatchObject({ status: "confirmed", attempt: 2, settled_tx_hash: answer.transaction });
  });

  it("lets the watcher confirm a pending settlement nobody asks about again", async () => {
    const payment = await sign();
    const first = await settle(v2Body(payment, requirements()));
    expect(first.body.errorReason).toBe("settlement_pending");
    await fx.chain.testClient.mine({ blocks: 1 });
    expect(await fx.facilitator.services.watcher.runOnce()).toBe(1);
    expect(await rowFor(payment.authorization.nonce)).toMatchObject({ status: "confirmed", settled_tx_hash: first.body.transaction, success_answered: false });
    // The SDK's retry after the watcher finished still gets its one success.
    expect((await settle(v2Body(payment, requirements()))).body).toMatchObject({ success: true, transaction: first.body.transaction });
  });

  it("makes a concurrent duplicate wait for the first call and answer duplicate_settlement with its hash", async () => {
    const body = v2Body(await sign(), requirements());
    const first = settle(body, "roomy");
    // Order, not time: the first call holds the claim (its transaction is in the pool) before the second arrives.
    await waitFor("the first call's settlement in the pool", async () => inPool(body.paymentPayload.payload.authorization.nonce), 5_000, 25);
    const second = settle(body, "roomy");
    await new Promise((resolve) => setTimeout(resolve, 300));
    await fx.chain.testClient.mine({ blocks: 1 });
    const [a, b] = await Promise.all([first, second]);
    expect(a.body).toMatchObject({ success: true });
    expect(b.body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: a.body.transaction });
  });
});

describe("POST /settle when someone else submits the authorization first", () => {
  it("reports success with the front-runner's transaction when the payee was paid", async () => {
    const payment = await sign();
    const payToBefore = await fx.chain.balanceOf(payTo);
    const pending = settle(v2Body(payment, requirements()), "roomy");
    await waitFor("settlement in the pool", async () => inPool(payment.authorization.nonce), 5_000, 25);
    const theirs = await frontRun(payment);
    await fx.chain.testClient.mine({ blocks: 1 });
    const answer = (await pending).body;
    expect(answer).toMatchObject({ success: true, transaction: theirs });
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
    const row = await rowFor(payment.authorization.nonce);
    expect(row.status).toBe("confirmed");
    expect(row.settled_tx_hash).toBe(theirs);
    expect(row.tx_hash).not.toBe(theirs);
    const ours = await fx.chain.publicClient.getTransactionReceipt({ hash: row.tx_hash });
    expect(ours.status).toBe("reverted");
  });

  it("never reports success for a token that returns quietly on a used nonce without paying", async () => {
    const quirk = createWalletClient({ account: privateKeyToAccount(keys.minter), transport: http(fx.chain.rpcUrl) });
    await quirk.writeContract({
      address: fx.chain.token,
      abi: parseAbi(["function setQuirkSilentUsedNonce(bool on)"]),
      functionName: "setQuirkSilentUsedNonce",
      args: [true],
      chain: null,
    });
    await fx.chain.testClient.mine({ blocks: 1 });
    try {
      const payment = await sign();
      const pending = settle(v2Body(payment, requirements()), "roomy");
      await waitFor("settlement in the pool", async () => inPool(payment.authorization.nonce), 5_000, 25);
      // The payer cancels the authorization ahead of us: with the quirk our tx "succeeds" and pays nothing.
      const payerWallet = createWalletClient({ account: privateKeyToAccount(keys.payer), transport: http(fx.chain.rpcUrl) });
      const cancelSignature = await payerWallet.signTypedData({
        domain: { name: "USDC", version: "2", chainId: fx.chain.chainId, verifyingContract: fx.chain.token },
        types: { CancelAuthorization: [{ name: "authorizer", type: "address" }, { name: "nonce", type: "bytes32" }] },
        primaryType: "CancelAuthorization",
        message: { authorizer: payer, nonce: payment.authorization.nonce },
      });
      await payerWallet.writeContract({
        address: fx.chain.token,
        abi: parseAbi(["function cancelAuthorization(address authorizer, bytes32 nonce, bytes signature)"]),
        functionName: "cancelAuthorization",
        args: [payer, payment.authorization.nonce, cancelSignature],
        gas: 200_000n,
        maxPriorityFeePerGas: parseGwei("50"),
        maxFeePerGas: parseGwei("200"),
        chain: null,
      });
      await fx.chain.testClient.mine({ blocks: 1 });
      const answer = (await pending).body;
      expect(answer.success).toBe(false);
      // 2.27's code for a receipt with status success and no matching Transfer.
      expect(answer.errorReason).toBe("invalid_exact_evm_transfer_event_mismatch");
      expect(answer.transaction).toMatch(/^0x[0-9a-f]{64}$/);
      const ours = await fx.chain.publicClient.getTransactionReceipt({ hash: answer.transaction });
      expect(ours.status).toBe("success"); // the quirk: status success, nothing moved
      expect(await rowFor(payment.authorization.nonce)).toMatchObject({ status: "failed" });
    } finally {
      await quirk.writeContract({
        address: fx.chain.token,
        abi: parseAbi(["function setQuirkSilentUsedNonce(bool on)"]),
        functionName: "setQuirkSilentUsedNonce",
        args: [false],
        chain: null,
      });
      await fx.chain.testClient.mine({ blocks: 1 });
    }
  });
});
