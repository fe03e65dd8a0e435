import { beforeAll, describe, expect, it } from "vitest";
import {
  encodeFunctionData,
  parseEventLogs,
  serializeErc6492Signature,
  type Address,
  type Hex,
  type Log,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { loadArtifact } from "../../../src/contracts/artifacts.js";
import { defaultLimits } from "../../../src/config.js";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { multicall3Address } from "../../../src/exact-evm/multicall3.js";
import { paymentLogOf } from "../../../src/settlement/receipt.js";
import { deployContract, walletPayment } from "../../helpers/attackers.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import {  randomNonce, signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { postJson } from "../../helpers/http.js";

/**
 * Pitfall 17 / issue 11.2, the ERC-6492 gas pump. An ERC-6492 signature carries a "factory" and
 * calldata that the facilitator runs (and pays for) to deploy the payer's wallet in the settlement
 * transaction. The attacker's factory (JunkFactory) writes junk storage, calls other contracts and
 * emits a Transfer-shaped decoy from its own address, then deploys a genuine wallet, so the payment
 * looks fine: with a 0-value authorization from a fresh wallet, an attacker with no funds made us
 * spend ~1M gas per request, repeatably. Now only factories the operator allowlists
 * (ERC6492_ALLOWED_FACTORIES, none by default) are run at all, only after a bounded deployless
 * simulation shows the deployment leaves a wallet that accepts the signature, and a deployment has
 * its own gas cap (GAS_PER_DEPLOYING_SETTLEMENT_MAX).
 */
const payTo = addressOf(keys.payTo);
const signer = addressOf(keys.facilitator);
const owner = privateKeyToAccount(keys.stranger); // the attacker's wallet owner: holds no USDC
const junkFactoryArtifact = loadArtifact("JunkFactory");
const hollowFactoryArtifact = loadArtifact("HollowFactory");
/** The attacker's default factory call: ~1.2M gas of junk storage, calls and a wallet deployment. */
const pumpJunkSlots = 36n;

const f = usePaymentFixture({ label: "erc6492_factories", payerBalanceAtomic: 1_000_000n });
let junkFactory: Address;
let hollowFactory: Address;

beforeAll(async () => {
  junkFactory = await deployContract(f.chain, "JunkFactory");
  hollowFactory = await deployContract(f.chain, "HollowFactory");
});

/** A facilitator with these limits on the fixture's chain and database; closed after `run`. */
async function withFacilitator<T>(limits: Parameters<typeof startTestFacilitator>[0]["limits"], run: (facilitator: TestFacilitator) => Promise<T>): Promise<T> {
  const facilitator = await startTestFacilitator({ databaseUrl: f.database.url, rpcUrls: [f.chain.rpcUrl], token: f.chain.token, limits });
  try {
    return await run(facilitator);
  } finally {
    await facilitator.close();
  }
}

type Answer = { isValid?: boolean; invalidReason?: string; success?: boolean; errorReason?: string; transaction?: Hex; payer?: string };

async function post(facilitator: TestFacilitator, route: "/verify" | "/settle", body: object): Promise<Answer> {
  const answer = await postJson<Answer>(facilitator.app, route, body);
  expect(answer.status).toBe(200); // a refusal, never a 5xx
  return answer.body;
}

const predict = (salt: Hex) =>
  f.chain.publicClient.readContract({ address: junkFactory, abi: junkFactoryArtifact.abi, functionName: "predict", args: [owner.address, salt] }) as Promise<Address>;

interface PumpOptions {
  valueAtomic: bigint;
  junkSlots?: bigint;
}

/** A fresh counterfactual wallet whose ERC-6492 deployment goes through JunkFactory, with a decoy Transfer(wallet → payTo, value). */
async function pumpPayment({ valueAtomic, junkSlots = pumpJunkSlots }: PumpOptions) {
  const salt = randomNonce();
  const wallet = await predict(salt);
  const factoryData = encodeFunctionData({
    abi: junkFactoryArtifact.abi,
    functionName: "deploy",
    args: [owner.address, salt, junkSlots, wallet, payTo, valueAtomic],
  });
  const payment = await walletPayment(f.chain, { wallet, payTo, valueAtomic }); // the owner (keys.stranger) signs
  const signed = { ...payment, signature: serializeErc6492Signature({ address: junkFactory, data: factoryData, signature: payment.signature }) };
  return { wallet, factoryData, signed, body: v2Body(signed, v2Requirements({ token: f.chain.token, payTo, amountAtomic: valueAtomic })) };
}

const signerTxCount = () => f.chain.publicClient.getTransactionCount({ address: signer });
const codeAt = async (address: Address) => (await f.chain.publicClient.getCode({ address })) ?? "0x";
const rowsOf = (nonce: Hex) =>
  withPgClient(f.database.url, async (c) => (await c.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows);

/** The attack left no trace: nothing sent by our signer, no wallet deployed, no settlement row. */
async function expectNothingSpent(txCountBefore: number, wallet: Address, nonce: Hex) {
  expect(await signerTxCount()).toBe(txCountBefore);
  expect(await codeAt(wallet)).toBe("0x");
  expect(await rowsOf(nonce)).toEqual([]);
}

describe("ERC-6492 factory calldata is code we would run and pay for", () => {
  it("measures the pump: what the attacker's factory call alone would cost per settlement", async () => {
    const { factoryData } = await pumpPayment({ valueAtomic: 0n });
    const gas = await f.chain.publicClient.estimateGas({ account: signer, to: junkFactory, data: factoryData });
    console.log(`[attack] 6492 gas pump: JunkFactory.deploy with ${pumpJunkSlots} junk slots costs ${gas} gas per call (paid by the facilitator before the allowlist)`);
    expect(gas).toBeGreaterThan(defaultLimits.gasPerSettlementMax); // it is a real pump
  });

  it("by default refuses every ERC-6492 deployment (eip6492_factory_not_allowed): nothing broadcast, nothing deployed", async () => {
    // 1 unit: the signature is what stops it.
    const one = await pumpPayment({ valueAtomic: 1n });
    await f.chain.mint(one.wallet, 1n);
    const txCountBefore = await signerTxCount();
    expect(await post(f.facilitator, "/verify", one.body)).toMatchObject({ isValid: false, invalidReason: "eip6492_factory_not_allowed", payer: one.wallet });
    for (let i = 0; i < 3; i++) {
      expect(await post(f.facilitator, "/settle", one.body)).toMatchObject({ success: false, errorReason: "eip6492_factory_not_allowed", transaction: "" });
    }
    await expectNothingSpent(txCountBefore, one.wallet, one.signed.authorization.nonce);

    // 0 units from a wallet with no funds at all: refused by the minimum amount first.
    const zero = await pumpPayment({ valueAtomic: 0n });
    expect(await post(f.facilitator, "/verify", zero.body)).toMatchObject({ isValid: false, invalidReason: "amount_below_minimum" });
    expect(await post(f.facilitator, "/settle", zero.body)).toMatchObject({ success: false, errorReason: "amount_below_minimum", transaction: "" });
    await expectNothingSpent(txCountBefore, zero.wallet, zero.signed.authorization.nonce);
  });

  it("refuses the 0-value pump by the allowlist alone, even with no minimum amount", async () => {
    await withFacilitator({ minAmountAtomic: 0n }, async (lax) => {
      const zero = await pumpPayment({ valueAtomic: 0n });
      const txCountBefore = await signerTxCount();
      expect(await post(lax, "/verify", zero.body)).toMatchObject({ isValid: false, invalidReason: "eip6492_factory_not_allowed" });
      expect(await post(lax, "/settle", zero.body)).toMatchObject({ success: false, errorReason: "eip6492_factory_not_allowed", transaction: "" });
      await expectNothingSpent(txCountBefore, zero.wallet, zero.signed.authorization.nonce);
    });
  });

  it("settles through an allowlisted factory within GAS_PER_DEPLOYING_SETTLEMENT_MAX, credited by the token's Transfer, not the decoy", async () => {
    const valueAtomic = 10_000n;
    await withFacilitator({ erc6492AllowedFactories: [junkFactory.toLowerCase()] }, async (trusting) => {
      const pump = await pumpPayment({ valueAtomic, junkSlots: 8n });
      await f.chain.mint(pump.wallet, valueAtomic);
      const [payToBefore, txCountBefore] = [await f.chain.balanceOf(payTo), await signerTxCount()];

      expect(await post(trusting, "/verify", pump.body)).toEqual({ isValid: true, payer: pump.wallet });
      const settled = await post(trusting, "/settle", pump.body);
      expect(settled).toMatchObject({ success: true, payer: pump.wallet });

      const hash = settled.transaction!;
      const [tx, receipt] = await Promise.all([f.chain.publicClient.getTransaction({ hash }), f.chain.publicClient.getTransactionReceipt({ hash })]);
      expect(receipt.status).toBe("success");
      expect(tx.to?.toLowerCase()).toBe(multicall3Address.toLowerCase()); // deploy + transfer in one transaction
      expect(tx.gas).toBeLessThanOrEqual(defaultLimits.gasPerDeployingSettlementMax);
      expect(receipt.gasUsed).toBeLessThanOrEqual(defaultLimits.gasPerDeployingSettlementMax);
      expect(await signerTxCount()).toBe(txCountBefore + 1);
      expect(await codeAt(pump.wallet)).not.toBe("0x");

      // The payee got the value exactly once, from the wallet, although the receipt carries two
      // Transfer(wallet → payTo, value) logs: the token's and the factory's decoy.
      expect((await f.chain.balanceOf(payTo)) - payToBefore).toBe(valueAtomic);
      expect(await f.chain.balanceOf(pump.wallet)).toBe(0n);
      const transfers = parseEventLogs({ abi: eip3009Abi, eventName: "Transfer", logs: receipt.logs as Log[] }).filter(
        (log) => log.args.from.toLowerCase() === pump.wallet.toLowerCase() && log.args.to.toLowerCase() === payTo.toLowerCase() && log.args.value === valueAtomic,
      );
      expect(transfers.map((log) => log.address.toLowerCase()).sort()).toEqual([f.chain.token.toLowerCase(), junkFactory.toLowerCase()].sort());
      // The decoy alone would credit nothing: without the token's logs the receipt pays no settlement.
      const expected = { token: f.chain.token, from: pump.wallet, to: payTo, valueAtomic };
      const nonce = pump.signed.authorization.nonce;
      expect(paymentLogOf(receipt, expected, nonce)?.transferLogIndex).toBe(transfers.find((log) => log.address.toLowerCase() === f.chain.token.toLowerCase())!.logIndex);
      const decoyOnly = { ...receipt, logs: receipt.logs.filter((log) => log.address.toLowerCase() !== f.chain.token.toLowerCase()) };
      expect(paymentLogOf(decoyOnly, expected, nonce)).toBeUndefined();

      const [row] = await rowsOf(nonce);
      expect(row).toMatchObject({ status: "confirmed", tx_hash: hash });
      expect(BigInt(row.gas_used)).toBe(receipt.gasUsed);
      console.log(
        `[attack] 6492 allowlisted JunkFactory (8 junk slots + decoy): settled with ${receipt.gasUsed} gas used, gas limit ${tx.gas} (cap ${defaultLimits.gasPerDeployingSettlementMax}); payee credited ${valueAtomic} once`,
      );
    });
  });

  it("refuses an allowlisted factory whose deployment needs more than the deploying cap, without broadcasting", async () => {
    const cap = 200_000n;
    await withFacilitator({ erc6492AllowedFactories: [junkFactory.toLowerCase()], gasPerDeployingSettlementMax: cap }, async (capped) => {
      const pump = await pumpPayment({ valueAtomic: 10_000n, junkSlots: 64n });
      await f.chain.mint(pump.wallet, 10_000n);
      const txCountBefore = await signerTxCount();
      const verified = await post(capped, "/verify", pump.body);
      expect(verified.isValid).toBe(false);
      expect(verified.invalidReason).toBe("gas_cap_exceeded"); // the factory call spent its whole cap

      const settled = await post(capped, "/settle", pump.body);
      expect(settled).toMatchObject({ success: false, transaction: "" });
      expect(settled.errorReason).toBe("gas_cap_exceeded");
      await expectNothingSpent(txCountBefore, pump.wallet, pump.signed.authorization.nonce);
      console.log(`[attack] 6492 JunkFactory (64 junk slots) under a ${cap} deploying cap: verify ${verified.invalidReason}, settle ${settled.errorReason}, 0 gas spent`);
    });
  });
});

describe("an EOA wrapped in ERC-6492 around a factory that deploys nothing", () => {
  async function hollowPayment() {
    const signed = await signPayment({ payerKey: keys.payer, token: f.chain.token, chainId: f.chain.chainId, payTo, valueAtomic: 10_000n });
    const factoryData = encodeFunctionData({ abi: hollowFactoryArtifact.abi, functionName: "deploy", args: [addressOf(keys.payer), randomNonce()] });
    const wrapped = { ...signed, signature: serializeErc6492Signature({ address: hollowFactory, data: factoryData, signature: signed.signature }) };
    const requirements = v2Requirements({ token: f.chain.token, payTo, amountAtomic: 10_000n });
    return { signed, plain: v2Body(signed, requirements), body: v2Body(wrapped, requirements) };
  }

  it("refuses it when the factory is allowlisted (smart_wallet_deployment_failed) and when it is not, without broadcasting", async () => {
    const payer = addressOf(keys.payer);
    const { signed, plain, body } = await hollowPayment();
    const txCountBefore = await signerTxCount();
    // The inner signature is the EOA's own, valid one: the wrapper is what is refused.
    expect(await post(f.facilitator, "/verify", plain)).toEqual({ isValid: true, payer });

    expect(await post(f.facilitator, "/verify", body)).toMatchObject({ isValid: false, invalidReason: "eip6492_factory_not_allowed" });
    expect(await post(f.facilitator, "/settle", body)).toMatchObject({ success: false, errorReason: "eip6492_factory_not_allowed", transaction: "" });

    await withFacilitator({ erc6492AllowedFactories: [hollowFactory.toLowerCase()] }, async (trusting) => {
      expect(await post(trusting, "/verify", body)).toMatchObject({ isValid: false, invalidReason: "smart_wallet_deployment_failed", payer });
      for (let i = 0; i < 2; i++) {
        expect(await post(trusting, "/settle", body)).toMatchObject({ success: false, errorReason: "smart_wallet_deployment_failed", transaction: "" });
      }
    });
    expect(await signerTxCount()).toBe(txCountBefore);
    expect(await codeAt(payer)).toBe("0x");
    expect(await rowsOf(signed.authorization.nonce)).toEqual([]);
    expect(
      await f.chain.publicClient.readContract({ address: f.chain.token, abi: eip3009Abi, functionName: "authorizationState", args: [payer, signed.authorization.nonce] }),
    ).toBe(false);
  });
});
