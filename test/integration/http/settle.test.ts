import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createWalletClient, http, parseAbi } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { withPgClient } from "../../helpers/database.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { signPayment, v1Body, v2Body, v2Requirements, type SignPaymentOptions } from "../../helpers/payments.js";
import { postJson } from "../../helpers/http.js";

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const facilitatorAddress = addressOf(keys.facilitator);
const amountAtomic = 10_000n;

// 100 payments of one payer at once: the per-payer cap is tested in test/integration/attacks/payer-busy.test.ts.
const fx = usePaymentFixture({ label: "settle", payerBalanceAtomic: 100_000_000n, facilitator: { limits: { inFlightPerPayerMax: 1_000 } } });

const sign = (overrides: Partial<SignPaymentOptions> = {}) =>
  signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic, ...overrides });
const requirements = () => v2Requirements({ token: fx.chain.token, payTo, amountAtomic });

const settle = (app: TestFacilitator["app"], body: unknown, headers: Record<string, string> = {}) => postJson(app, "/settle", body, headers);

async function rowsFor(nonce: string) {
  return withPgClient(fx.database.url, async (client) => (await client.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows);
}

/** Transfers of `value` from payer to payTo in the token's logs: the on-chain truth of "paid". */
async function transfersOnChain(nonce: string) {
  const logs = await fx.chain.publicClient.getContractEvents({
    address: fx.chain.token,
    abi: parseAbi(["event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)"]),
    eventName: "AuthorizationUsed",
    args: { authorizer: payer, nonce: nonce as `0x${string}` },
    fromBlock: 0n,
  });
  return logs.length;
}

describe("POST /settle", () => {
  it("settles a valid v2 payment: success, tx hash, balances moved, row confirmed", async () => {
    const payment = await sign();
    const [payerBefore, payToBefore] = await Promise.all([fx.chain.balanceOf(payer), fx.chain.balanceOf(payTo)]);
    const answer = await settle(fx.facilitator.app, v2Body(payment, requirements()));
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ success: true, payer, network: "eip155:84532" });
    expect(answer.body.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    const receipt = await fx.chain.publicClient.getTransactionReceipt({ hash: answer.body.transaction });
    expect(receipt.status).toBe("success");
    expect(receipt.from.toLowerCase()).toBe(facilitatorAddress.toLowerCase());
    expect(await fx.chain.balanceOf(payer)).toBe(payerBefore - amountAtomic);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
    const [row] = await rowsFor(payment.authorization.nonce);
    expect(row).toMatchObject({ status: "confirmed", tx_hash: answer.body.transaction, settled_tx_hash: answer.body.transaction, success_answered: true });
  });

  it("settles a valid v1 payment and answers with the v1 network name", async () => {
    const payment = await sign();
    const answer = await settle(fx.facilitator.app, v1Body(payment, { token: fx.chain.token, payTo, amountAtomic }));
    expect(answer.body).toMatchObject({ success: true, payer, network: "base-sepolia" });
    expect((await rowsFor(payment.authorization.nonce))[0].status).toBe("confirmed");
  });

  it("answers a second settle of a settled payment with duplicate_settlement and the original hash", async () => {
    const body = v2Body(await sign(), requirements());
    const first = await settle(fx.facilitator.app, body);
    const second = await settle(fx.facilitator.app, body);
    expect(first.body.success).toBe(true);
    expect(second.body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: first.body.transaction, network: "eip155:84532" });
  });

  it("settles 50 concurrent /settle calls of one payload exactly once", async () => {
    const payment = await sign();
    const body = v2Body(payment, requirements());
    const answers = await Promise.all(Array.from({ length: 50 }, () => settle(fx.facilitator.app, body)));
    const successes = answers.filter((answer) => answer.body.success);
    expect(successes).toHaveLength(1);
    const hash = successes[0]!.body.transaction;
    for (const answer of answers.filter((a) => !a.body.success)) {
      expect(answer.body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: hash });
    }
    expect(await transfersOnChain(payment.authorization.nonce)).toBe(1);
    expect(await rowsFor(payment.authorization.nonce)).toHaveLength(1);
  });

  it("settles 50 concurrent calls through two instances sharing one database exactly once", async () => {
    const second = await startTestFacilitator({ databaseUrl: fx.database.url, rpcUrls: [fx.chain.rpcUrl], token: fx.chain.token });
    try {
      const payment = await sign();
      const body = v2Body(payment, requirements());
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => settle(i % 2 === 0 ? fx.facilitator.app : second.app, body)));
      const successes = answers.filter((answer) => answer.body.success);
      expect(successes).toHaveLength(1);
      expect(answers.filter((a) => a.body.errorReason === "duplicate_settlement")).toHaveLength(49);
      expect(new Set(answers.map((a) => a.body.transaction))).toEqual(new Set([successes[0]!.body.transaction]));
      expect(await transfersOnChain(payment.authorization.nonce)).toBe(1);
    } finally {
      await second.close();
    }
  });

  it("settles 100 distinct payments concurrently from one signer key with no nonce errors", async () => {
    const payments = await Promise.all(Array.from({ length: 100 }, () => sign()));
    const payToBefore = await fx.chain.balanceOf(payTo);
    const answers = await Promise.all(payments.map((payment) => settle(fx.facilitator.app, v2Body(payment, requirements()))));
    const failures = answers.filter((answer) => !answer.body.success);
    expect(failures.map((f) => f.body)).toEqual([]);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + 100n * amountAtomic);
    // One tx nonce per transaction (a transaction may carry several settlements when batching is on).
    const transactions = await withPgClient(fx.database.url, async (client) =>
      (await client.query("select tx_hash, min(tx_nonce) as lo, max(tx_nonce) as hi, count(*)::int as n, min(tx_settlements) as carried from settlements where signer = $1 group by tx_hash", [facilitatorAddress.toLowerCase()])).rows,
    );
    expect(transactions.every((tx) => tx.lo === tx.hi && tx.carried === tx.n)).toBe(true);
    expect(new Set(transactions.map((tx) => tx.lo)).size).toBe(transactions.length); // no tx nonce used twice
    for (const tx of transactions) expect(answers.filter((a) => a.body.transaction === tx.tx_hash).length).toBeLessThanOrEqual(tx.n);
  });

  it("with SETTLE_BATCH_MAX=1, settles 100 distinct payments concurrently from one key in 100 transactions, one tx nonce each", async () => {
    const single = await startTestFacilitator({ databaseUrl: fx.database.url, rpcUrls: [fx.chain.rpcUrl], token: fx.chain.token, signerKeys: [keys.facilitator2], limits: { settleBatchMax: 1, inFlightPerPayerMax: 1_000 } });
    try {
      const payments = await Promise.all(Array.from({ length: 100 }, () => sign()));
      const payToBefore = await fx.chain.balanceOf(payTo);
      const answers = await Promise.all(payments.map((payment) => settle(single.app, v2Body(payment, requirements()))));
      expect(answers.filter((answer) => !answer.body.success).map((f) => f.body)).toEqual([]);
      expect(new Set(answers.map((a) => a.body.transaction)).size).toBe(100);
      expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + 100n * amountAtomic);
      const txNonces = await withPgClient(fx.database.url, async (client) =>
        (await client.query("select tx_nonce from settlements where signer = $1", [addressOf(keys.facilitator2).toLowerCase()])).rows.map((r) => Number(r.tx_nonce)),
      );
      expect(txNonces).toHaveLength(100);
      expect(new Set(txNonces).size).toBe(100);
    } finally {
      await single.close();
    }
  });

  it("returns the recorded answer to a retry with the same Idempotency-Key; another key gets duplicate_settlement", async () => {
    const body = v2Body(await sign(), requirements());
    const [first, retry] = await Promise.all([
      settle(fx.facilitator.app, body, { "idempotency-key": "order-42" }),
      settle(fx.facilitator.app, body, { "idempotency-key": "order-42" }),
    ]);
    expect(first.body).toMatchObject({ success: true });
    expect(retry.body).toEqual(first.body);
    const later = await settle(fx.facilitator.app, body, { "idempotency-key": "order-42" });
    expect(later.body).toEqual(first.body);
    const other = await settle(fx.facilitator.app, body, { "idempotency-key": "order-43" });
    expect(other.body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: first.body.transaction });
    const reused = await settle(fx.facilitator.app, v2Body(await sign(), requirements()), { "idempotency-key": "order-42" });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({ success: false, errorReason: "idempotency_key_reused" });
  });

  it("refuses a payment whose payer emptied the balance after verify: no transaction, no tx nonce used", async () => {
    const poorKey = keys.stranger;
    const poor = addressOf(poorKey);
    await fx.chain.mint(poor, amountAtomic);
    const payment = await signPayment({ payerKey: poorKey, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic });
    const body = v2Body(payment, requirements());
    const verified = await fx.facilitator.app.inject({ method: "POST", url: "/verify", payload: body });
    expect(verified.json()).toMatchObject({ isValid: true });
    // The payer drains the balance between verify and settle (pitfall 11).
    const wallet = createWalletClient({ account: privateKeyToAccount(poorKey), transport: http(fx.chain.rpcUrl) });
    const drain = await wallet.writeContract({
      address: fx.chain.token,
      abi: parseAbi(["function transfer(address to, uint256 value) returns (bool)"]),
      functionName: "transfer",
      args: [addressOf(keys.minter), amountAtomic],
      chain: null,
    });
    await fx.chain.publicClient.waitForTransactionReceipt({ hash: drain, timeout: 10_000 });
    const signerNonceBefore = await fx.chain.publicClient.getTransactionCount({ address: facilitatorAddress });
    const answer = await settle(fx.facilitator.app, body);
    expect(answer.body).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "", payer: poor });
    expect(await fx.chain.publicClient.getTransactionCount({ address: facilitatorAddress })).toBe(signerNonceBefore);
    const [row] = await rowsFor(payment.authorization.nonce);
    expect(row).toMatchObject({ status: "failed", tx_hash: null, broadcast_at: null });
    // The failed claim does not block the authorization: once funded again, it settles.
    await fx.chain.mint(poor, amountAtomic);
    expect((await settle(fx.facilitator.app, body)).body).toMatchObject({ success: true });
  });

  it("refuses an invalid payment without claiming anything", async () => {
    const payment = await sign({ signerKey: keys.stranger });
    const answer = await settle(fx.facilitator.app, v2Body(payment, requirements()));
    expect(answer.body).toMatchObject({ success: false, errorReason: "invalid_exact_evm_signature", transaction: "", network: "eip155:84532" });
    expect(await rowsFor(payment.authorization.nonce)).toHaveLength(0);
  });

  it("reports a nonce claimed by settle as used to /verify", async () => {
    const body = v2Body(await sign(), requirements());
    await settle(fx.facilitator.app, body);
    const verified = await fx.facilitator.app.inject({ method: "POST", url: "/verify", payload: body });
    expect(verified.json()).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_nonce_already_used" });
  });

  it("keeps the tx-nonce counter in step with the chain", async () => {
    const [counter] = await fx.facilitator.services.deps.database.db.execute<{ next_nonce: string }>(sql`select next_nonce from signer_nonces where address = ${facilitatorAddress.toLowerCase()}`).then((r) => r.rows);
    expect(Number(counter!.next_nonce)).toBe(await fx.chain.publicClient.getTransactionCount({ address: facilitatorAddress, blockTag: "pending" }));
  });
});
