import { describe, expect, it } from "vitest";
import { encodeFunctionData, parseAbi } from "viem";
import { anvilDevPrivateKeys } from "../../../src/sandbox/anvil.js";
import { deployContract, delegateEoa } from "../../helpers/attackers.js";
import { addressOf, heldByNode, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { usePaymentFixture, type PaymentFixture } from "../../helpers/fixture.js";
import { waitFor } from "../../helpers/wait.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { postJson } from "../../helpers/http.js";

/**
 * A payer whose code tells a simulation from a real transaction (found by the security review).
 * Its EOA is delegated (EIP-7702) to SimulationAwareDelegate: isValidSignature accepts while
 * GASPRICE is 0 — as in an eth_call or estimate sent without fees — and burns all gas otherwise.
 * With 1 atomic unit of USDC it made every /settle send a transaction that reverted, then a second
 * one alone, and left the authorization free to do it again: 4 requests, 8 reverted transactions
 * of ~108k gas each, at no cost to the payer. Now the estimate carries the transaction's own fees,
 * and a payer with code whose settlement failed on chain is refused for PAYER_CODE_COOLDOWN_MS.
 */
const attackerKey = anvilDevPrivateKeys[7]!;
const attacker = addressOf(attackerKey);
const payTo = addressOf(keys.payTo);
const switchAbi = parseAbi(["function arm(bool armed)"]);

describe("a payer whose code behaves differently when simulated", () => {
  const f = usePaymentFixture({ label: "simulation_aware" });
  const signerTxCount = () => f.chain.publicClient.getTransactionCount({ address: addressOf(keys.facilitator) });

  it("is refused at its fee-bearing simulation: repeated settles send nothing", async () => {
    await f.chain.mint(attacker, 1n);
    await delegateEoa(f.chain, attackerKey, await deployContract(f.chain, "SimulationAwareDelegate"));
    const txCountBefore = await signerTxCount();
    for (let request = 0; request < 4; request++) {
      const answer = await settle(f, await payment(f));
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ success: false, transaction: "" });
    }
    expect(await signerTxCount()).toBe(txCountBefore);
    expect(await broadcastRows(f)).toBe(0);
  });
});

describe("a payer with code whose settlement failed on chain although its simulation passed", () => {
  const f = usePaymentFixture({ label: "payer_cooldown", chain: { noMining: true } });
  const signerTxCount = () => f.chain.publicClient.getTransactionCount({ address: addressOf(keys.facilitator) });

  it("costs us one transaction, then is refused (payer_cooldown) however its code behaves", async () => {
    await f.chain.mint(attacker, 10n);
    const delegate = await mined(f, () => deployContract(f.chain, "SwitchableDelegate"));
    await mined(f, () => delegateEoa(f.chain, attackerKey, delegate));
    const arm = (armed: boolean) =>
      f.chain.testClient.request({ method: "eth_sendTransaction" as never, params: [{ from: attacker, to: attacker, data: encodeFunctionData({ abi: switchAbi, functionName: "arm", args: [armed] }), gas: "0x186a0", maxPriorityFeePerGas: "0xba43b7400", maxFeePerGas: "0x2e90edd000" }] as never });
    await f.chain.testClient.request({ method: "anvil_impersonateAccount" as never, params: [attacker] as never });
    const txCountBefore = await signerTxCount();

    // Simulated while disarmed; the payer arms its code ahead of our transaction (higher tip).
    const first = settle(f, await payment(f));
    await waitFor("our settlement in the pool", async () => (await rowsInPool(f)) === 1, 10_000);
    await arm(true);
    await f.chain.testClient.mine({ blocks: 1 });
    expect((await first).body).toMatchObject({ success: false });
    expect(await signerTxCount()).toBe(txCountBefore + 1); // our one reverted transaction

    // Disarmed again, its payments simulate fine — and are refused: nothing more is sent.
    await arm(false);
    await f.chain.testClient.mine({ blocks: 1 });
    const next = await settle(f, await payment(f));
    expect(next.body).toMatchObject({ success: false, errorReason: "payer_cooldown", transaction: "" });
    expect(await signerTxCount()).toBe(txCountBefore + 1);
  });
});

/** Runs `send` (which waits for its own receipt) while blocks are mined: the chain has automine off. */
async function mined<T>(f: PaymentFixture, send: () => Promise<T>): Promise<T> {
  const sending = send();
  let done = false;
  void sending.finally(() => (done = true));
  while (!done) {
    await f.chain.testClient.mine({ blocks: 1 });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return sending;
}

async function payment(f: PaymentFixture, valueAtomic = 1n) {
  const signed = await signPayment({ payerKey: attackerKey, token: f.chain.token, chainId: f.chain.chainId, payTo, valueAtomic });
  return v2Body(signed, v2Requirements({ token: f.chain.token, payTo, amountAtomic: valueAtomic }));
}

/** Rows whose transaction the node holds (a sync send's rows stay `signed`, broadcast_at unset, until the node answers). */
async function rowsInPool(f: PaymentFixture): Promise<number> {
  const hashes = await withPgClient(f.database.url, async (c) => (await c.query("select tx_hash from settlements where tx_hash is not null")).rows.map((row) => row.tx_hash as string));
  return heldByNode(f.chain, hashes);
}

async function broadcastRows(f: PaymentFixture): Promise<number> {
  return withPgClient(f.database.url, async (c) => (await c.query("select count(*)::int as n from settlements where broadcast_at is not null")).rows[0].n);
}

const settle = (f: PaymentFixture, body: object) => postJson(f.facilitator.app, "/settle", body);
