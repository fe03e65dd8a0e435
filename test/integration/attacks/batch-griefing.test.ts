import { describe, expect, it } from "vitest";
import { createWalletClient, http, keccak256, parseEventLogs, toHex, type Address } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { batchSettlerAbi, batchSettlerAddress, decodeBatchSettle } from "../../../src/contracts/batch-settler.js";
import { anvilDevPrivateKeys } from "../../../src/sandbox/anvil.js";
import { installBatchSettler } from "../../../src/sandbox/deploy.js";
import { pay, settle, settlementRowByNonce, waitForLockWaiters, whileSignerLocked } from "../../helpers/batching.js";
import { deployContract, delegateEoa, walletPayment } from "../../helpers/attackers.js";
import { v2Body, v2Requirements } from "../../helpers/payments.js";
import { smartWalletFactoryArtifact } from "../../../src/sandbox/artifacts.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { withPgClient } from "../../helpers/database.js";

/**
 * Pitfall 18, batch griefing. A payer is batchable because its address had no code when its
 * settlement was prepared; it then delegates itself (EIP-7702) to a contract whose isValidSignature
 * burns every unit of gas it gets, so USDC's signature check runs that code inside our batch.
 * With Multicall3's aggregate3 (all gas forwarded to every call) that starved the whole batch and
 * the honest rows ended failed although their authorizations were unused. BatchSettler gives each
 * call its own gas limit; a row whose call failed with its authorization unused is settled again.
 */
const amountAtomic = 10_000n;
const attackerKey = anvilDevPrivateKeys[6]!;
const attacker = addressOf(attackerKey);
const honestPayerKey = keys.stranger;
const payTo = addressOf(keys.payTo);

const f = usePaymentFixture({ label: "batch_griefing", facilitator: { limits: { settleBatchMax: 16 } } });

/** The payer's rows in payer_failed_calls (one at a time) and payer_chain_failures (cooldown). */
async function recordedFailures(payer: Address): Promise<{ failedCalls: number; codeFailures: number }> {
  return withPgClient(f.database.url, async (c) => {
    const count = async (table: string) => (await c.query(`select count(*)::int as n from ${table} where payer = $1`, [payer.toLowerCase()])).rows[0].n as number;
    return { failedCalls: await count("payer_failed_calls"), codeFailures: await count("payer_chain_failures") };
  });
}

async function signerTxCount(): Promise<number> {
  return f.chain.publicClient.getTransactionCount({ address: addressOf(keys.facilitator) });
}

/**
 * A lead settlement takes the signer's lock and goes alone; `queued` wait behind it and share the
 * next transaction. `beforeRelease` runs once all are prepared and queued. Answers: lead first.
 */
async function behindOneAlone(queued: object[], beforeRelease: () => Promise<unknown>) {
  const lead = await pay(f, honestPayerKey, payTo, amountAtomic);
  return whileSignerLocked(
    f,
    queued.length + 1,
    async () => {
      const leadAnswer = settle(f, lead);
      await waitForLockWaiters(f, 1); // the lead holds the signer's queue: everything after it queues behind
      return Promise.all([leadAnswer, ...queued.map((body) => settle(f, body))]);
    },
    { whileHeld: async () => void (await beforeRelease()) },
  );
}

describe("one payer cannot sink a batch", () => {
  it("bounds an EIP-7702 gas burner to its own call: every honest payment in the batch is paid, the attacker's is refused", async () => {
    await f.chain.mint(addressOf(honestPayerKey), 1_000_000n);
    await f.chain.mint(attacker, 1_000_000n);
    expect(await settle(f, await pay(f, honestPayerKey, payTo, amountAtomic))).toMatchObject({ success: true }); // the signer's nonce row
    const burner = await deployContract(f.chain, "GasBurnerDelegate");
    const attack = await pay(f, attackerKey, payTo, amountAtomic);
    const honest = await Promise.all(Array.from({ length: 3 }, () => pay(f, honestPayerKey, payTo, amountAtomic)));
    const payToBefore = await f.chain.balanceOf(payTo);
    const txCountBefore = await signerTxCount();

    // Everything is prepared (the attacker's address has no code yet); then it delegates.
    const [, attackAnswer, ...honestAnswers] = await behindOneAlone([attack, ...honest], () => delegateEoa(f.chain, attackerKey, burner));

    expect(honestAnswers.every((answer) => answer.success)).toBe(true);
    const batchHash = honestAnswers[0]!.transaction;
    expect(honestAnswers.every((answer) => answer.transaction === batchHash)).toBe(true);
    expect(attackAnswer).toMatchObject({ success: false, payer: attacker });
    expect((await f.chain.balanceOf(payTo)) - payToBefore).toBe(amountAtomic * 4n); // the lead and the three honest ones
    // The lead's transaction and the batch: the attacker's re-settlement alone was refused before
    // anything was sent, and so is its next payment.
    expect(await signerTxCount()).toBe(txCountBefore + 2);
    expect(await settle(f, await pay(f, attackerKey, payTo, amountAtomic))).toMatchObject({ success: false, transaction: "" });
    expect(await signerTxCount()).toBe(txCountBefore + 2);

    // What the attacker made us spend: at most its own call's gas limit, inside the batch.
    const batch = await f.chain.publicClient.getTransaction({ hash: batchHash });
    const receipt = await f.chain.publicClient.getTransactionReceipt({ hash: batchHash });
    expect(batch.to?.toLowerCase()).toBe(batchSettlerAddress.toLowerCase());
    const attackerRow = await settlementRowByNonce(f, attack.paymentPayload.payload.authorization.nonce);
    expect(attackerRow).toMatchObject({ status: "failed", broadcast_at: null });
    const calls = decodeBatchSettle(batch.input);
    const attackerIndex = calls.findIndex((call) => call.callData.toLowerCase().includes(attacker.slice(2).toLowerCase()));
    expect(attackerIndex).toBeGreaterThanOrEqual(0);
    // BatchSettler ran the burner's call with its own limit and logged its failure; nobody else failed.
    const failures = parseEventLogs({ abi: batchSettlerAbi, eventName: "CallFailed", logs: receipt.logs });
    expect(failures.map((log) => ({ index: log.args.index, skipped: log.args.skipped }))).toEqual([{ index: BigInt(attackerIndex), skipped: false }]);
    // Its own call failed inside a batch that ran: it is limited (and cooled down, it had code); the
    // honest payer whose calls shared the batch is not (receipt.ts failureIsPayersDoing).
    expect(await recordedFailures(attacker)).toEqual({ failedCalls: 1, codeFailures: 1 });
    expect(await recordedFailures(addressOf(honestPayerKey))).toEqual({ failedCalls: 0, codeFailures: 0 });
    console.log(`[attack] EIP-7702 burner in a batch of 4: batch used ${receipt.gasUsed} gas; the burner's call was capped at ${calls[attackerIndex]!.gasLimit} gas; attacker row ${attackerRow.error_reason}`);
  });

  it.each([
    ["succeeds without running any call (no code at BatchSettler)", "0x"],
    ["reverts as a whole", "0x60006000fd"], // PUSH1 0 PUSH1 0 REVERT
] as const)("settles again, alone, every row of a batch transaction that %s, while their authorizations stayed unused", async (_what, code) => {
    const honest = await Promise.all(Array.from({ length: 3 }, () => pay(f, honestPayerKey, payTo, amountAtomic)));
    const payToBefore = (await f.chain.balanceOf(payTo)) + amountAtomic; // the lead's payment counted in
    // BatchSettler's code is swapped after the presence check: nobody is paid by the batch.
    const [, ...answers] = await behindOneAlone(honest, () => f.chain.testClient.setCode({ address: batchSettlerAddress, bytecode: code }));
    await installBatchSettler(f.chain.rpcUrl);

    expect(answers.every((answer) => answer.success)).toBe(true);
    expect(new Set(answers.map((answer) => answer.transaction)).size).toBe(3); // each in its own transaction
    expect((await f.chain.balanceOf(payTo)) - payToBefore).toBe(amountAtomic * 3n);
    for (const body of honest) {
      const row = await settlementRowByNonce(f, body.paymentPayload.payload.authorization.nonce);
      expect(row).toMatchObject({ status: "confirmed", tx_settlements: 1, attempt: 2 });
    }
    // No payer's doing: none of them is limited to one settlement at a time.
    expect(await recordedFailures(addressOf(honestPayerKey))).toEqual({ failedCalls: 0, codeFailures: 0 });
  });
  it("sends a smart-wallet payer's settlement in a transaction of its own while the EOAs queued with it share one", async () => {
    // The wallet's signature check is code we do not control: it never joins a batch.
    const factory = await deployContract(f.chain, "SmartWalletFactory");
    const salt = keccak256(toHex("queued-wallet"));
    const owner = addressOf(keys.stranger);
    const wallet = (await f.chain.publicClient.readContract({ address: factory, abi: smartWalletFactoryArtifact.abi, functionName: "predict", args: [owner, salt] })) as Address;
    const deployer = createWalletClient({ account: privateKeyToAccount(keys.facilitator3), transport: http(f.chain.rpcUrl) });
    const deployHash = await deployer.writeContract({ address: factory, abi: smartWalletFactoryArtifact.abi, functionName: "deploy", args: [owner, salt], chain: null });
    await f.chain.publicClient.waitForTransactionReceipt({ hash: deployHash, timeout: 10_000 });
    await f.chain.mint(wallet, amountAtomic);
    await f.chain.mint(addressOf(honestPayerKey), 1_000_000n);
    const walletBody = v2Body(await walletPayment(f.chain, { wallet, payTo, valueAtomic: amountAtomic }), v2Requirements({ token: f.chain.token, payTo, amountAtomic }));
    const honest = await Promise.all(Array.from({ length: 2 }, () => pay(f, honestPayerKey, payTo, amountAtomic)));

    const [lead, walletAnswer, ...honestAnswers] = await behindOneAlone([walletBody, ...honest], async () => undefined);

    expect([lead, walletAnswer, ...honestAnswers].every((answer) => answer?.success)).toBe(true);
    expect(honestAnswers[0]!.transaction).toBe(honestAnswers[1]!.transaction);
    expect(new Set([lead!.transaction, walletAnswer!.transaction, honestAnswers[0]!.transaction]).size).toBe(3);
    const walletTx = await f.chain.publicClient.getTransaction({ hash: walletAnswer!.transaction });
    const batchTx = await f.chain.publicClient.getTransaction({ hash: honestAnswers[0]!.transaction });
    expect(walletTx.to?.toLowerCase()).toBe(f.chain.token.toLowerCase()); // a plain token call, alone
    expect(batchTx.to?.toLowerCase()).toBe(batchSettlerAddress.toLowerCase());
    expect(await f.chain.balanceOf(wallet)).toBe(0n);
  });
});
