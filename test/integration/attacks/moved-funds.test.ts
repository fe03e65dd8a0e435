/**
 * A key without code that moves its funds away between our simulation and our transaction (left
 * open by review 16): each of its payments simulates fine and fits its balance together with the
 * others, then one transfer of its own — sent when it sees ours in the pool, with a higher tip —
 * empties its balance first, and every one of our calls in flight fails on chain. It is not cooled
 * down (it has no code; the identical retry, funded again, settles), so before this test it could
 * repeat that every round: IN_FLIGHT_PER_PAYER_MAX failed calls of ours for one transfer of its.
 *
 * Now, once one of its settlements failed on chain with the authorization unused, the payer has one
 * settlement in flight at a time for PAYER_CODE_COOLDOWN_MS: the others wait (nothing sent) until it
 * is final. So a later round costs one failed call of ours per transfer of its own (parity), and a
 * payer that really has the funds still gets every payment settled, one after another.
 *
 * Real Anvil (no mining: the test decides what a block holds), real Postgres, real signatures.
 */
import { encodeFunctionData, erc20Abi, type Address, type Hex } from "viem";
import { generatePrivateKey } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { addressOf, heldByNode, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { waitFor } from "../../helpers/wait.js";

const amountAtomic = 10_000n;
const paymentsPerRound = 4;
const payTo = addressOf(keys.payTo);
const sink = addressOf(keys.stranger);

const f = usePaymentFixture({ label: "moved_funds", chain: { noMining: true }, facilitator: { limits: { settleBudgetMs: 30_000 } } });

describe("a key without code that moves its funds away after our simulation", () => {
  it("costs us its in-flight calls once, then one failed call per round; an honest retry, funded, still settles every payment", async () => {
    const payerKey = generatePrivateKey();
    const payer = addressOf(payerKey);
    await f.chain.testClient.setBalance({ address: payer, value: 10n ** 18n });
    await f.chain.testClient.request({ method: "anvil_impersonateAccount" as never, params: [payer] as never });

    // Round 1: four payments that its balance covers together, all sent; then its balance moves.
    await f.chain.mint(payer, amountAtomic * BigInt(paymentsPerRound));
    const first = await Promise.all(Array.from({ length: paymentsPerRound }, () => payment(payerKey)));
    const firstAnswers = Promise.all(first.map((body) => settle(body)));
    await waitFor("round 1: every payment's transaction in the pool", async () => (await inPool(first)) === paymentsPerRound, 20_000);
    const firstBlock = await moveFundsAheadAndMine(payer);
    for (const answer of await firstAnswers) expect(answer.body).toMatchObject({ success: false });
    expect(await callsMinedIn(firstBlock, first)).toBe(paymentsPerRound); // what the first round costs (≤ IN_FLIGHT_PER_PAYER_MAX)

    // Round 2: funded again, the same trick. One payment is sent; the others wait for it.
    await f.chain.mint(payer, amountAtomic * BigInt(paymentsPerRound));
    const second = await Promise.all(Array.from({ length: paymentsPerRound }, () => payment(payerKey)));
    const secondAnswers = Promise.all(second.map((body) => settle(body)));
    await waitFor(
      "round 2: one payment in the pool, the others claimed and waiting on the payer's funds (or, unbounded, all of them in the pool)",
      async () => {
        const held = await inPool(second);
        return held === paymentsPerRound || (held === 1 && (await waitingOnFunds(second)) === paymentsPerRound - 1);
      },
      20_000,
    );
    const secondBlock = await moveFundsAheadAndMine(payer);
    const answered = await secondAnswers;
    // The sent one failed; the ones that waited were simulated on what was left and refused, unsent.
    for (const answer of answered) expect(answer.body).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "" });
    expect(await callsMinedIn(secondBlock, second)).toBe(1);
    await f.chain.testClient.mine({ blocks: 1 }); // and none was left in the pool for later
    expect(await callsMinedIn(secondBlock + 1n, second)).toBe(0);

    // Round 3: an honest payer in the same state — it has the funds and leaves them: every payment
    // settles, one after another (each waits for the previous one to be final).
    await f.chain.mint(payer, amountAtomic * BigInt(paymentsPerRound));
    const payToBefore = await f.chain.balanceOf(payTo);
    const third = await Promise.all(Array.from({ length: paymentsPerRound }, () => payment(payerKey)));
    const thirdAnswers = await whileMining(Promise.all(third.map((body) => settle(body))));
    for (const answer of thirdAnswers) expect(answer.body).toMatchObject({ success: true });
    expect(await f.chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic * BigInt(paymentsPerRound));
    const blocks = await withPgClient(f.database.url, async (c) => (await c.query("select block_number from settlements where nonce = any($1)", [third.map(nonceOf)])).rows.map((row) => row.block_number as number));
    expect(new Set(blocks).size).toBe(paymentsPerRound); // one after another: each in its own block
  });

  it("leaves other payers alone: another payer's concurrent payments are all sent at once", async () => {
    const otherKey = generatePrivateKey();
    await f.chain.mint(addressOf(otherKey), amountAtomic * BigInt(paymentsPerRound));
    const bodies = await Promise.all(Array.from({ length: paymentsPerRound }, () => payment(otherKey)));
    const answers = Promise.all(bodies.map((body) => settle(body)));
    await waitFor("every payment of the other payer in the pool", async () => (await inPool(bodies)) === paymentsPerRound, 20_000);
    await f.chain.testClient.mine({ blocks: 1 });
    for (const answer of await answers) expect(answer.body).toMatchObject({ success: true });
  });
});

type Body = Awaited<ReturnType<typeof payment>>;

async function payment(payerKey: Hex) {
  const signed = await signPayment({ payerKey, token: f.chain.token, chainId: f.chain.chainId, payTo, valueAtomic: amountAtomic });
  return v2Body(signed, v2Requirements({ token: f.chain.token, payTo, amountAtomic }));
}

const settle = (body: Body) => postJson(f.facilitator.app, "/settle", body) as Promise<{ status: number; body: Record<string, unknown> }>;
const nonceOf = (body: Body) => body.paymentPayload.payload.authorization.nonce.toLowerCase();

async function rowsOf(bodies: Body[]): Promise<Array<{ tx_hash: string | null; status: string; funds_reserved: boolean }>> {
  return withPgClient(f.database.url, async (c) => (await c.query("select tx_hash, status, funds_reserved from settlements where nonce = any($1)", [bodies.map(nonceOf)])).rows);
}

/** Payments whose transaction the node holds. */
async function inPool(bodies: Body[]): Promise<number> {
  const rows = await rowsOf(bodies);
  const held = await Promise.all(rows.map((row) => heldByNode(f.chain, [row.tx_hash])));
  return held.filter((count) => count === 1).length;
}

/** Payments claimed, not reserved against the payer's funds: waiting for its other settlement to be final. */
async function waitingOnFunds(bodies: Body[]): Promise<number> {
  return (await rowsOf(bodies)).filter((row) => row.status === "claimed" && !row.funds_reserved).length;
}

/**
 * The payer empties its balance with one transfer carrying a higher tip than ours, so it is mined
 * first in the block that also holds our transactions. Returns that block's number.
 */
async function moveFundsAheadAndMine(payer: Address): Promise<bigint> {
  const balance = await f.chain.balanceOf(payer);
  const data = encodeFunctionData({ abi: erc20Abi, functionName: "transfer", args: [sink, balance] });
  await f.chain.testClient.request({
    method: "eth_sendTransaction" as never,
    params: [{ from: payer, to: f.chain.token, data, gas: "0x186a0", maxPriorityFeePerGas: "0xba43b7400", maxFeePerGas: "0x2e90edd000" }] as never,
  });
  await f.chain.testClient.mine({ blocks: 1 });
  const block = await f.chain.publicClient.getBlockNumber();
  expect(await f.chain.balanceOf(payer)).toBe(0n);
  return block;
}

/** How many of `bodies`' authorizations our transactions in `blockNumber` carried (batched or alone). */
async function callsMinedIn(blockNumber: bigint, bodies: Body[]): Promise<number> {
  const block = await f.chain.publicClient.getBlock({ blockNumber, includeTransactions: true });
  const inputs = block.transactions.map((transaction) => transaction.input.toLowerCase());
  return bodies.filter((body) => inputs.some((input) => input.includes(nonceOf(body).slice(2)))).length;
}

/** Mines a block now and then until `answers` are in (automine is off). */
async function whileMining<T>(answers: Promise<T>): Promise<T> {
  let done = false;
  void answers.finally(() => (done = true));
  while (!done) {
    await f.chain.testClient.mine({ blocks: 1 });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return answers;
}
