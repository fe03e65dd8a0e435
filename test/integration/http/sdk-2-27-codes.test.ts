/**
 * The reason codes new or renamed in the 2026 SDKs (@x402/evm 2.27), answered by /verify and
 * /settle against real Anvil and Postgres: an asset without code, a signature that does not parse,
 * the renamed amount mismatch. (A receipt without the paying Transfer,
 * `invalid_exact_evm_transfer_event_mismatch`, is in settle-pending.test.ts: it needs the token's quirk.)
 */
import { concatHex, keccak256, stringToHex, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addressOf, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { postJson } from "../../helpers/http.js";
import { signPayment, v1Body, v2Body, v2Requirements, type SignPaymentOptions } from "../../helpers/payments.js";
import { settlementRows } from "../../helpers/sdk.js";

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;
const erc6492Magic = "0x6492649264926492649264926492649264926492649264926492649264926492" as Hex;

const fx = usePaymentFixture({ label: "sdk_2_27_codes", payerBalanceAtomic: 1_000_000n });

const sign = (overrides: Partial<SignPaymentOptions> = {}) =>
  signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic, ...overrides });
const requirements = (token: Address = fx.chain.token) => v2Requirements({ token, payTo, amountAtomic });

type Answer = Record<string, unknown>;
const post = async (facilitator: TestFacilitator, route: "/verify" | "/settle", body: unknown) => {
  const answer = await postJson<Answer>(facilitator.app, route, body);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body;
};

/** The route answered `reason` for `body` and nothing was claimed, signed or mined. */
async function expectRefusedBoth(facilitator: TestFacilitator, body: { paymentPayload: { payload: { authorization: { nonce: Hex } } } }, reason: string, network = "eip155:84532") {
  const blockBefore = await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 });
  const verified = await post(facilitator, "/verify", body);
  expect(verified).toMatchObject({ isValid: false, invalidReason: reason, payer });
  expect(typeof verified.invalidMessage).toBe("string");
  const settled = await post(facilitator, "/settle", body);
  expect(settled).toMatchObject({ success: false, errorReason: reason, transaction: "", network, payer });
  expect(settled).not.toHaveProperty("amount");
  expect(await settlementRows(fx.database.url, body.paymentPayload.payload.authorization.nonce)).toEqual([]);
  expect(await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(blockBefore);
  return { verified, settled };
}

describe("asset_not_deployed_contract", () => {
  // Configured (say, for another chain) but no code here; a facilitator started without its self-check.
  const undeployed = privateKeyToAccount(keccak256(stringToHex("sdk-2-27-codes/undeployed-asset"))).address;
  let facilitator: TestFacilitator;
  beforeAll(async () => {
    facilitator = await startTestFacilitator({
      databaseUrl: fx.database.url,
      rpcUrls: [fx.chain.rpcUrl],
      token: undeployed,
      asset: { address: undeployed, name: "USDC", version: "2", decimals: 6 },
    });
  });
  afterAll(async () => {
    await facilitator?.close();
  });

  it("refuses a payment in an asset without code at verify and at settle, nothing claimed or sent", async () => {
    const body = v2Body(await sign({ token: undeployed }), requirements(undeployed));
    const { verified } = await expectRefusedBoth(facilitator, body, "asset_not_deployed_contract");
    expect(verified.invalidMessage).toContain(undeployed);
    // v1 alike.
    const v1 = v1Body(await sign({ token: undeployed }), { token: undeployed, payTo, amountAtomic });
    await expectRefusedBoth(facilitator, v1, "asset_not_deployed_contract", "base-sepolia");
  });

  it("checks the signature first: a payment signed by someone else is answered invalid_exact_evm_signature", async () => {
    const body = v2Body(await sign({ token: undeployed, signerKey: keys.stranger }), requirements(undeployed));
    await expectRefusedBoth(facilitator, body, "invalid_exact_evm_signature");
  });

  it("asks again after a refusal: once code is there, the payment is judged on the chain's reads", async () => {
    // Code appears (the token got deployed): a "no code" answer was not remembered.
    const code = await fx.chain.publicClient.getCode({ address: fx.chain.token });
    await fx.chain.testClient.setCode({ address: undeployed, bytecode: code! });
    const body = v2Body(await sign({ token: undeployed }), requirements(undeployed));
    // This copy of the token holds no balances: the payer has nothing there.
    expect(await post(facilitator, "/verify", body)).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_insufficient_balance", payer });
  });

  it("leaves the deployed asset alone: the fixture's facilitator verifies and settles as before", async () => {
    const body = v2Body(await sign(), requirements());
    expect(await post(fx.facilitator, "/verify", body)).toEqual({ isValid: true, payer });
    expect(await post(fx.facilitator, "/settle", body)).toMatchObject({ success: true, payer, amount: amountAtomic.toString() });
  });
});

describe("invalid_exact_evm_failed_to_parse_signature", () => {
  it("answers a 65-byte signature whose v byte is no v (not a wrong signer)", async () => {
    const payment = await sign();
    const badV = `${payment.signature.slice(0, 130)}1d` as Hex;
    const { verified } = await expectRefusedBoth(fx.facilitator, v2Body({ ...payment, signature: badV }, requirements()), "invalid_exact_evm_failed_to_parse_signature");
    expect(verified.invalidMessage).toMatch(/not a valid \(r, s, v\) signature|v byte/);
  });

  it("answers an ERC-6492 magic suffix after a wrapper that does not decode", async () => {
    const payment = await sign();
    const broken = concatHex([payment.signature, erc6492Magic]);
    const { verified } = await expectRefusedBoth(fx.facilitator, v2Body({ ...payment, signature: broken }, requirements()), "invalid_exact_evm_failed_to_parse_signature");
    expect(verified.invalidMessage).toMatch(/ERC-6492/);
  });

  it("keeps invalid_exact_evm_signature for a well-formed signature by another key", async () => {
    await expectRefusedBoth(fx.facilitator, v2Body(await sign({ signerKey: keys.stranger }), requirements()), "invalid_exact_evm_signature");
  });
});

describe("the amount mismatch, named per version as 2.27 names it", () => {
  it("v2: invalid_exact_evm_payload_authorization_value_mismatch at verify and settle", async () => {
    await expectRefusedBoth(fx.facilitator, v2Body(await sign({ valueAtomic: amountAtomic + 1n }), requirements()), "invalid_exact_evm_payload_authorization_value_mismatch");
  });

  it("v1: invalid_exact_evm_authorization_value (2.27's v1 exact facilitator)", async () => {
    const body = v1Body(await sign({ valueAtomic: amountAtomic - 1n }), { token: fx.chain.token, payTo, amountAtomic });
    await expectRefusedBoth(fx.facilitator, body, "invalid_exact_evm_authorization_value", "base-sepolia");
  });
});
