/**
 * A key without code that makes every one of its settlements in flight fail on chain, after each
 * simulated fine (left open by review 16, widened by its re-review): once it sees our transactions
 * in the pool it sends one transaction of its own with a higher tip that is mined first —
 * - it moves its balance away (EIP-3009 payments; our calls fail with the authorization unused), or
 * - it burns its Permit2 nonces (one invalidateUnorderedNonces for up to 256 of them; our calls fail
 *   with the nonce used, which only its own call can do without paying payTo).
 * It has no code, so it is not cooled down (the identical retry, funded again, settles); before
 * this test it could repeat that every round: every call of ours in flight failed, each round.
 *
 * Now, after one of its own calls failed on chain (receipt.ts failureIsPayersDoing), the payer has
 * one settlement in flight at a time for PAYER_ONE_AT_A_TIME_MS: the others wait, unsent, for it
 * to be final and are then simulated on what it left. A later round costs one failed call of ours
 * per transaction of its own, and a payer that really has the funds still gets every payment
 * settled, one block after another.
 *
 * Real Anvil (no mining: the test decides what a block holds), real Postgres, real signatures
 * (EIP-3009 from our helper, Permit2 from the 2.27 client).
 */
import { erc20Abi, maxUint256, type Abi, type Hex, type PrivateKeyAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { permit2Address } from "../../../src/contracts/permit2.js";
import { permit2Artifact } from "../../../src/sandbox/artifacts.js";
import { addressOf, heldByNode, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { bodyWithNonce, mineUntil, minedApprove, nonceHex, sendFromTest } from "../../helpers/permit2-mined.js";
import { waitFor } from "../../helpers/wait.js";

const amountAtomic = 10_000n;
const paymentsPerRound = 4;
const payTo = addressOf(keys.payTo);
const sink = addressOf(keys.stranger);

const f = usePaymentFixture({ label: "moved_funds", chain: { noMining: true }, facilitator: { limits: { settleBudgetMs: 30_000 } } });

/** A payment as the tests send it, and the nonce its settlement row is stored under. */
interface Paid {
  body: object;
  nonce: string;
  payer: string;
}

describe("a key without code that moves its balance away after our simulation (EIP-3009)", () => {
  it("costs us its in-flight calls once, then one failed call per round; funded and left alone, every payment settles", async () => {
    const payer = await fundedKey();
    const pay = async (): Promise<Paid> => {
      const signed = await signPayment({ payerKey: payer.key, token: f.chain.token, chainId: f.chain.chainId, payTo, valueAtomic: amountAtomic });
      return { body: v2Body(signed, v2Requirements({ token: f.chain.token, payTo, amountAtomic })), nonce: signed.authorization.nonce.toLowerCase(), payer: signed.authorization.from };
    };
    const moveBalanceAway = async () =>
      sendFromTest(f, payer.account, { address: f.chain.token, abi: erc20Abi as Abi, functionName: "transfer", args: [sink, await f.chain.balanceOf(payer.account.address)] });

    // Round 1: four payments that its balance covers together, all sent; then its balance moves.
    await f.chain.mint(payer.account.address, amountAtomic * BigInt(paymentsPerRound));
    const first = await round(pay);
    const firstAnswers = settleAll(first);
    await waitFor("round 1: every payment's transaction in the pool", async () => (await inPool(first)) === paymentsPerRound, 20_000);
    const firstBlock = await aheadOfOurs(moveBalanceAway);
    expect(await f.chain.balanceOf(payer.account.address)).toBe(0n);
    for (const answer of await firstAnswers) expect(answer.body).toMatchObject({ success: false });
    expect(await callsMinedIn(firstBlock, first)).toBe(paymentsPerRound); // what the first round costs (≤ IN_FLIGHT_PER_PAYER_MAX)

    // Round 2: funded again, the same trick. One payment is sent; the others wait for it.
    await f.chain.mint(payer.account.address, amountAtomic * BigInt(paymentsPerRound));
    const second = await round(pay);
    const secondAnswers = settleAll(second);
    await oneSentOthersWaiting(second);
    const secondBlock = await aheadOfOurs(moveBalanceAway);
    // The one sent failed on chain and, retried, was refused at its fresh simulation; the ones that
    // waited were simulated on what was left and refused: none of them has a transaction.
    for (const answer of await secondAnswers) expect(answer.body).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "" });
    expect(await callsMinedIn(secondBlock, second)).toBe(1);
    await expectNothingLeftToMine(second);

    // Round 3: the same payer, funded, leaves its funds alone: every payment settles, one after
    // another (each waits for the previous one to be final), each in a block of its own.
    await f.chain.mint(payer.account.address, amountAtomic * BigInt(paymentsPerRound));
    const payToBefore = await f.chain.balanceOf(payTo);
    const third = await round(pay);
    for (const answer of await mineUntil(f, settleAll(third))) expect(answer.body).toMatchObject({ success: true });
    expect(await f.chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic * BigInt(paymentsPerRound));
    const blocks = (await rowsOf(third)).map((row) => row.block_number);
    expect(new Set(blocks).size).toBe(paymentsPerRound);
  });

  it("leaves other payers alone: another payer's concurrent payments are all sent at once", async () => {
    const other = await fundedKey();
    await f.chain.mint(other.account.address, amountAtomic * BigInt(paymentsPerRound));
    const payments = await round(async () => {
      const signed = await signPayment({ payerKey: other.key, token: f.chain.token, chainId: f.chain.chainId, payTo, valueAtomic: amountAtomic });
      return { body: v2Body(signed, v2Requirements({ token: f.chain.token, payTo, amountAtomic })), nonce: signed.authorization.nonce.toLowerCase(), payer: signed.authorization.from };
    });
    const answers = settleAll(payments);
    await waitFor("every payment of the other payer in the pool", async () => (await inPool(payments)) === paymentsPerRound, 20_000);
    await f.chain.testClient.mine({ blocks: 1 });
    for (const answer of await answers) expect(answer.body).toMatchObject({ success: true });
  });
});

describe("a key without code that burns its Permit2 nonces after our simulation", () => {
  it("costs us its in-flight calls once, then one failed call per round", async () => {
    const payer = await fundedKey();
    await f.chain.mint(payer.account.address, 100n * amountAtomic);
    await minedApprove(f, payer.account, maxUint256);
    // Each round's nonces share one word of the payer's bitmap: one call burns them all.
    const payIn = (word: bigint) => {
      let next = 0n;
      return async (): Promise<Paid> => {
        const body = await bodyWithNonce(f.chain, payer.account, amountAtomic, (word << 8n) + next++);
        return { body, nonce: nonceHex(body), payer: payer.account.address };
      };
    };
    const burn = (word: bigint) => () =>
      sendFromTest(f, payer.account, { address: permit2Address, abi: permit2Artifact.abi as Abi, functionName: "invalidateUnorderedNonces", args: [word, (1n << BigInt(paymentsPerRound)) - 1n] });

    const first = await round(payIn(1_001n));
    const firstAnswers = settleAll(first);
    await waitFor("round 1: every payment's transaction in the pool", async () => (await inPool(first)) === paymentsPerRound, 20_000);
    const firstBlock = await aheadOfOurs(burn(1_001n));
    for (const answer of await firstAnswers) expect(answer.body).toMatchObject({ success: false });
    expect(await callsMinedIn(firstBlock, first)).toBe(paymentsPerRound);

    const second = await round(payIn(1_002n));
    const secondAnswers = settleAll(second);
    await oneSentOthersWaiting(second);
    const secondBlock = await aheadOfOurs(burn(1_002n));
    for (const answer of await secondAnswers) expect(answer.body).toMatchObject({ success: false });
    expect(await callsMinedIn(secondBlock, second)).toBe(1);
    await expectNothingLeftToMine(second);
  });
});

async function fundedKey(): Promise<{ key: Hex; account: PrivateKeyAccount }> {
  const key = generatePrivateKey();
  const account = privateKeyToAccount(key);
  await f.chain.testClient.setBalance({ address: account.address, value: 10n ** 18n });
  return { key, account };
}

const round = (pay: () => Promise<Paid>) => Promise.all(Array.from({ length: paymentsPerRound }, pay));
const settleAll = (payments: Paid[]) => Promise.all(payments.map((payment) => postJson(f.facilitator.app, "/settle", payment.body) as Promise<{ status: number; body: Record<string, unknown> }>));

async function rowsOf(payments: Paid[]): Promise<Array<{ tx_hash: string | null; status: string; funds_reserved: boolean; block_number: number | null }>> {
  return withPgClient(
    f.database.url,
    async (c) => (await c.query("select tx_hash, status, funds_reserved, block_number from settlements where nonce = any($1)", [payments.map((payment) => payment.nonce)])).rows,
  );
}

/** Payments whose transaction the node holds (each its own: these are not batched together here). */
async function inPool(payments: Paid[]): Promise<number> {
  return heldByNode(f.chain, (await rowsOf(payments)).map((row) => row.tx_hash));
}

/**
 * One payment's transaction in the pool and the others claimed, not reserved: waiting on the
 * payer's other settlement to be final. (Without the rule all of them would be sent: the test then
 * goes on and fails on the count of failed calls, not on this wait.)
 */
async function oneSentOthersWaiting(payments: Paid[]): Promise<void> {
  await waitFor(
    "one payment in the pool, the others waiting on the payer's funds (or, unbounded, all in the pool)",
    async () => {
      const held = await inPool(payments);
      if (held === paymentsPerRound) return true;
      const waiting = (await rowsOf(payments)).filter((row) => row.status === "claimed" && !row.funds_reserved).length;
      return held === 1 && waiting === paymentsPerRound - 1;
    },
    20_000,
  );
}

/** The payer's own transaction (higher tip than ours) and ours mined in one block; returns its number. */
async function aheadOfOurs(payersMove: () => Promise<unknown>): Promise<bigint> {
  await payersMove();
  await f.chain.testClient.mine({ blocks: 1 });
  return (await f.chain.publicClient.getBlock({ blockTag: "latest" })).number;
}

/**
 * How many of `payments`' authorizations our transactions in `blockNumber` carried (alone or
 * batched). Not the payer's own transactions: its burn encodes the word and mask next to each
 * other, which can read as one of the nonces.
 */
async function callsMinedIn(blockNumber: bigint, payments: Paid[]): Promise<number> {
  const block = await f.chain.publicClient.getBlock({ blockNumber, includeTransactions: true });
  const payers = new Set(payments.map((payment) => payment.payer.toLowerCase()));
  const inputs = block.transactions.filter((transaction) => !payers.has(transaction.from.toLowerCase())).map((transaction) => transaction.input.toLowerCase());
  return payments.filter((payment) => inputs.some((input) => input.includes(payment.nonce.slice(2)))).length;
}

/** Once every answer is in, nothing of `payments` is left in the pool to be mined later. */
async function expectNothingLeftToMine(payments: Paid[]): Promise<void> {
  await f.chain.testClient.mine({ blocks: 1 });
  const block = await f.chain.publicClient.getBlock({ blockTag: "latest" });
  expect(await callsMinedIn(block.number, payments)).toBe(0);
}
