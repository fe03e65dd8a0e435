/**
 * `exact` over Permit2 and `upto` through this facilitator's HTTP API, on a real Anvil (Permit2 and
 * x402's proxies at their canonical addresses) and a real Postgres. Every payload is made by the
 * official @x402/evm 2.27 client code, unmodified: ExactEvmScheme with assetTransferMethod
 * "permit2", and UptoEvmScheme with the facilitatorAddress /supported advertises.
 */
import { createWalletClient, defineChain, encodeFunctionData, erc20Abi, getAddress, http, maxUint256, parseAbi, type Address, type Hex, type PrivateKeyAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { beforeAll, describe, expect, it } from "vitest";
import type { PaymentRequirements } from "@x402/core/types";
import { toClientEvmSigner, type ClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { permit2Address, x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress } from "../../../src/contracts/permit2.js";
import { permit2Abi } from "../../../src/permit2/abi.js";
import { smartWalletArtifact } from "../../../src/sandbox/artifacts.js";
import { nonceBitSet } from "../../../src/permit2/chain-state.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { paymentBody } from "../../helpers/payments.js";
import { settlementRows, transfersInTx } from "../../helpers/sdk.js";

const NETWORK = "eip155:84532";
const ONE_USDC = 1_000_000n;
const payer = privateKeyToAccount(keys.payer);
const payTo = addressOf(keys.payTo);
const facilitator = addressOf(keys.facilitator);
const facilitator2 = addressOf(keys.facilitator2);

const fx = usePaymentFixture({
  label: "permit2_http",
  payerBalanceAtomic: 1_000n * ONE_USDC,
  // Two keys: the first is the one /supported advertises; a witness may name either.
  facilitator: { signerKeys: [keys.facilitator, keys.facilitator2] },
});

const viemChain = defineChain({ id: 84532, name: "anvil", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: ["http://127.0.0.1"] } } });

async function approvePermit2(account: PrivateKeyAccount, amountAtomic: bigint = maxUint256): Promise<void> {
  const wallet = createWalletClient({ account, chain: viemChain, transport: http(fx.chain.rpcUrl) });
  const hash = await wallet.writeContract({ address: fx.chain.token, abi: erc20Abi, functionName: "approve", args: [permit2Address, amountAtomic] });
  await fx.chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 });
}

/** A payer with USDC and ETH but no allowance to Permit2. */
async function freshPayer(balanceAtomic = 100n * ONE_USDC): Promise<PrivateKeyAccount> {
  const account = privateKeyToAccount(generatePrivateKey());
  await fx.chain.mint(account.address, balanceAtomic);
  await fx.chain.testClient.setBalance({ address: account.address, value: 10n ** 18n });
  return account;
}

function exactRequirements(amountAtomic: bigint, overrides: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return {
    scheme: "exact",
    network: NETWORK,
    amount: amountAtomic.toString(),
    asset: fx.chain.token,
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2", assetTransferMethod: "permit2" },
    ...overrides,
  };
}

function uptoRequirements(capAtomic: bigint, overrides: Partial<PaymentRequirements> = {}, facilitatorAddress: Address = facilitator): PaymentRequirements {
  return {
    scheme: "upto",
    network: NETWORK,
    amount: capAtomic.toString(),
    asset: fx.chain.token,
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2", assetTransferMethod: "permit2", facilitatorAddress },
    ...overrides,
  };
}

interface Body {
  x402Version: 2;
  paymentPayload: { x402Version: 2; resource: { url: string }; accepted: PaymentRequirements; payload: Record<string, unknown>; extensions?: Record<string, unknown> };
  paymentRequirements: PaymentRequirements;
}

/** What the official x402Client sends: the scheme's payload, `accepted` = the requirements verbatim. */
async function signed(scheme: ExactEvmScheme | UptoEvmScheme, requirements: PaymentRequirements, extensions?: Record<string, unknown>): Promise<Body> {
  const result = await scheme.createPaymentPayload(2, requirements, extensions ? { extensions } : undefined);
  return {
    x402Version: 2,
    paymentPayload: {
      x402Version: 2,
      resource: { url: "http://127.0.0.1/resource" },
      accepted: requirements,
      payload: result.payload,
      ...(result.extensions ? { extensions: result.extensions } : {}),
    },
    paymentRequirements: requirements,
  };
}

const exactPayment = (requirements: PaymentRequirements, signer: ClientEvmSigner = payer, extensions?: Record<string, unknown>) => signed(new ExactEvmScheme(signer), requirements, extensions);
const uptoPayment = (requirements: PaymentRequirements, signer: ClientEvmSigner = payer, extensions?: Record<string, unknown>) => signed(new UptoEvmScheme(signer), requirements, extensions);

/** The /settle body a 2.27 resource server sends for an upto charge: the requirements with the amount replaced. */
function charging(body: Body, amountAtomic: bigint): Body {
  return { ...body, paymentRequirements: { ...body.paymentRequirements, amount: amountAtomic.toString() } };
}

async function post(url: "/verify" | "/settle", body: unknown) {
  const response = await fx.facilitator.app.inject({ method: "POST", url, payload: body as Record<string, unknown> });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Record<string, unknown>;
}

const randomPayTo = (): Address => privateKeyToAccount(generatePrivateKey()).address;
const nonceOf = (body: Body) => BigInt((body.paymentPayload.payload as { permit2Authorization: { nonce: string } }).permit2Authorization.nonce);
const nonceHex = (body: Body) => `0x${nonceOf(body).toString(16).padStart(64, "0")}`;

async function nonceUsed(owner: Address, nonce: bigint): Promise<boolean> {
  const word = await fx.chain.publicClient.readContract({ address: permit2Address, abi: permit2Abi, functionName: "nonceBitmap", args: [owner, nonce >> 8n] });
  return nonceBitSet(word, nonce);
}

beforeAll(async () => {
  await approvePermit2(payer);
});

describe("/supported", () => {
  it("lists upto on the network with the first signer as facilitatorAddress, next to exact", async () => {
    const response = await fx.facilitator.app.inject({ method: "GET", url: "/supported" });
    const supported = response.json() as { kinds: unknown[]; extensions: string[] };
    expect(supported.kinds).toEqual([
      { x402Version: 2, scheme: "exact", network: NETWORK },
      { x402Version: 2, scheme: "upto", network: NETWORK, extra: { facilitatorAddress: facilitator } },
      { x402Version: 1, scheme: "exact", network: "base-sepolia" },
    ]);
    expect(supported.extensions).toContain("eip2612GasSponsoring");
  });
});

describe("exact over Permit2", () => {
  it("verifies, settles once through the exact proxy, and answers a second settle duplicate_settlement", async () => {
    const body = await exactPayment(exactRequirements(10_000n));
    expect(await post("/verify", body)).toEqual({ isValid: true, payer: payer.address });
    const payToBefore = await fx.chain.balanceOf(payTo);

    const settled = await post("/settle", body);
    expect(settled).toMatchObject({ success: true, payer: payer.address, network: NETWORK, amount: "10000" });
    const txHash = settled.transaction as Hex;
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + 10_000n);
    const receipt = await fx.chain.publicClient.getTransactionReceipt({ hash: txHash });
    expect(receipt.to?.toLowerCase()).toBe(x402ExactPermit2ProxyAddress.toLowerCase());
    expect((await transfersInTx(fx.chain, txHash, payer.address, payTo)).map((log) => log.args.value)).toEqual([10_000n]);
    expect(await nonceUsed(payer.address, nonceOf(body))).toBe(true);

    const [row] = await settlementRows(fx.database.url, nonceHex(body));
    expect(row).toMatchObject({
      status: "confirmed",
      scheme: "exact",
      transfer_method: "permit2",
      nonce_contract: permit2Address.toLowerCase(),
      asset: fx.chain.token.toLowerCase(),
      value_atomic: "10000",
      permitted_atomic: "10000",
      settled_tx_hash: txHash,
    });

    expect(await post("/settle", body)).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: txHash });
    // The chain says it too now.
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "permit2_invalid_nonce" });
  });

  it("refuses a payer without an allowance to Permit2: permit2_allowance_required, nothing sent", async () => {
    const unapproved = await freshPayer();
    const body = await exactPayment(exactRequirements(10_000n), unapproved);
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "permit2_allowance_required", payer: unapproved.address });
    expect(await post("/settle", body)).toMatchObject({ success: false, errorReason: "permit2_allowance_required", transaction: "" });
    expect(await nonceUsed(unapproved.address, nonceOf(body))).toBe(false);
  });

  it("with the client's eip2612GasSponsoring permit: settleWithPermit approves Permit2 and pays in one transaction", async () => {
    const unapproved = await freshPayer();
    const body = await exactPayment(exactRequirements(20_000n), toClientEvmSigner(unapproved, fx.chain.publicClient), { eip2612GasSponsoring: {} });
    expect(body.paymentPayload.extensions).toHaveProperty(["eip2612GasSponsoring", "info", "signature"]);
    expect(await post("/verify", body)).toEqual({ isValid: true, payer: unapproved.address });
    const settled = await post("/settle", body);
    expect(settled).toMatchObject({ success: true, amount: "20000" });
    expect((await transfersInTx(fx.chain, settled.transaction as Hex, unapproved.address, payTo)).map((log) => log.args.value)).toEqual([20_000n]);
    const nonces = await fx.chain.publicClient.readContract({ address: fx.chain.token, abi: parseAbi(["function nonces(address) view returns (uint256)"]), functionName: "nonces", args: [unapproved.address] });
    expect(nonces).toBe(1n); // the EIP-2612 permit was used
  });

  it("refuses an EIP-2612 permit for another value: permit2_2612_amount_mismatch", async () => {
    const unapproved = await freshPayer();
    const body = await exactPayment(exactRequirements(20_000n), toClientEvmSigner(unapproved, fx.chain.publicClient), { eip2612GasSponsoring: {} });
    const info = (body.paymentPayload.extensions!.eip2612GasSponsoring as { info: Record<string, string> }).info;
    info.amount = "20001";
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "permit2_2612_amount_mismatch" });
  });

  it("refuses a permit for another spender, recipient, amount or token with 2.27's codes", async () => {
    const body = await exactPayment(exactRequirements(10_000n));
    const otherPayTo = { ...body, paymentRequirements: { ...body.paymentRequirements, payTo: facilitator }, paymentPayload: { ...body.paymentPayload, accepted: { ...body.paymentRequirements, payTo: facilitator } } };
    expect(await post("/verify", otherPayTo)).toMatchObject({ isValid: false, invalidReason: "invalid_permit2_recipient_mismatch" });
    const moreAmount = { ...body, paymentRequirements: { ...body.paymentRequirements, amount: "10001" }, paymentPayload: { ...body.paymentPayload, accepted: { ...body.paymentRequirements, amount: "10001" } } };
    expect(await post("/verify", moreAmount)).toMatchObject({ isValid: false, invalidReason: "permit2_amount_mismatch" });
    // The upto proxy as spender of an exact payment.
    const uptoSpender = await uptoPayment(uptoRequirements(10_000n));
    const mixed = { ...body, paymentPayload: { ...body.paymentPayload, payload: uptoSpender.paymentPayload.payload } };
    expect(await post("/verify", mixed)).toMatchObject({ isValid: false, invalidReason: "invalid_permit2_spender" });
    // A signature over other terms: the witness changed after signing.
    const tampered = structuredClone(body);
    (tampered.paymentPayload.payload as { permit2Authorization: { deadline: string } }).permit2Authorization.deadline = String(BigInt((body.paymentPayload.payload as { permit2Authorization: { deadline: string } }).permit2Authorization.deadline) + 1n);
    expect(await post("/verify", tampered)).toMatchObject({ isValid: false, invalidReason: "invalid_permit2_signature" });
  });

  it("an ERC-1271 wallet as owner: its owner's signature verifies and settles, anyone else's is invalid_permit2_signature", async () => {
    const wallet = createWalletClient({ account: payer, chain: viemChain, transport: http(fx.chain.rpcUrl) });
    const deployed = await fx.chain.publicClient.waitForTransactionReceipt({
      hash: await wallet.deployContract({ abi: smartWalletArtifact.abi, bytecode: smartWalletArtifact.bytecode, args: [payer.address] }),
      timeout: 10_000,
    });
    const smartWallet = getAddress(deployed.contractAddress!);
    await fx.chain.mint(smartWallet, 1_000_000n);
    const approve = encodeFunctionData({ abi: erc20Abi, functionName: "approve", args: [permit2Address, maxUint256] });
    await fx.chain.publicClient.waitForTransactionReceipt({
      hash: await wallet.writeContract({ address: smartWallet, abi: smartWalletArtifact.abi, functionName: "execute", args: [fx.chain.token, 0n, approve] }),
      timeout: 10_000,
    });
    const signedBy = (key: PrivateKeyAccount): ClientEvmSigner => ({ address: smartWallet, signTypedData: (typedData) => key.signTypedData(typedData as never) });

    const forged = await exactPayment(exactRequirements(10_000n), signedBy(privateKeyToAccount(keys.stranger)));
    expect(await post("/verify", forged)).toMatchObject({ isValid: false, invalidReason: "invalid_permit2_signature", payer: smartWallet });

    const body = await exactPayment(exactRequirements(10_000n), signedBy(payer));
    expect(await post("/verify", body)).toEqual({ isValid: true, payer: smartWallet });
    const settled = await post("/settle", body);
    expect(settled).toMatchObject({ success: true, payer: smartWallet, amount: "10000" });
    expect((await transfersInTx(fx.chain, settled.transaction as Hex, smartWallet, payTo)).map((log) => log.args.value)).toEqual([10_000n]);
  });

  it("refuses a permit past its deadline: permit2_deadline_expired at verify and settle", async () => {
    const body = await exactPayment(exactRequirements(10_000n, { maxTimeoutSeconds: 3 }));
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "permit2_deadline_expired" });
    expect(await post("/settle", body)).toMatchObject({ success: false, errorReason: "permit2_deadline_expired", transaction: "" });
    // 2.27's order: the window before the amount, so an expired permit for another amount is expired, as 2.27 says.
    const otherAmount = { ...body.paymentRequirements, amount: "10001" };
    const expiredAndOtherAmount = { ...body, paymentRequirements: otherAmount, paymentPayload: { ...body.paymentPayload, accepted: otherAmount } };
    expect(await post("/verify", expiredAndOtherAmount)).toMatchObject({ isValid: false, invalidReason: "permit2_deadline_expired" });
  });
});

describe("upto", () => {
  it("verifies against the cap and charges less: payTo gets exactly the charge, the answer names it", async () => {
    const body = await uptoPayment(uptoRequirements(500_000n));
    expect(await post("/verify", body)).toEqual({ isValid: true, payer: payer.address });
    const payToBefore = await fx.chain.balanceOf(payTo);
    const payerBefore = await fx.chain.balanceOf(payer.address);

    const settled = await post("/settle", charging(body, 123_456n));
    expect(settled).toMatchObject({ success: true, payer: payer.address, network: NETWORK, amount: "123456" });
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + 123_456n);
    expect(await fx.chain.balanceOf(payer.address)).toBe(payerBefore - 123_456n);
    const receipt = await fx.chain.publicClient.getTransactionReceipt({ hash: settled.transaction as Hex });
    expect(receipt.to?.toLowerCase()).toBe(x402UptoPermit2ProxyAddress.toLowerCase());
    expect(receipt.from.toLowerCase()).toBe(facilitator.toLowerCase());

    const [row] = await settlementRows(fx.database.url, nonceHex(body));
    expect(row).toMatchObject({ status: "confirmed", scheme: "upto", transfer_method: "permit2", value_atomic: "123456", permitted_atomic: "500000" });

    // The rest of the cap is gone with the nonce: the same authorization charged again is a duplicate.
    expect(await post("/settle", charging(body, 1_000n))).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
    // The identical request (same charge) too, once its success was answered.
    expect(await post("/settle", charging(body, 123_456n))).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: settled.transaction });
  });

  it("sends from exactly the key the witness names (the second signer here)", async () => {
    const body = await uptoPayment(uptoRequirements(50_000n, {}, facilitator2));
    expect(await post("/verify", body)).toEqual({ isValid: true, payer: payer.address });
    const settled = await post("/settle", charging(body, 40_000n));
    expect(settled).toMatchObject({ success: true, amount: "40000" });
    const receipt = await fx.chain.publicClient.getTransactionReceipt({ hash: settled.transaction as Hex });
    expect(receipt.from.toLowerCase()).toBe(facilitator2.toLowerCase());
  });

  it("refuses a charge above the cap: invalid_upto_evm_payload_settlement_exceeds_amount, nothing sent", async () => {
    const body = await uptoPayment(uptoRequirements(100_000n));
    expect(await post("/settle", charging(body, 100_001n))).toMatchObject({ success: false, errorReason: "invalid_upto_evm_payload_settlement_exceeds_amount", transaction: "" });
    expect(await nonceUsed(payer.address, nonceOf(body))).toBe(false);
    // The cap itself is fine.
    expect(await post("/settle", charging(body, 100_000n))).toMatchObject({ success: true, amount: "100000" });
  });

  it("refuses at verify a charge below the cap (verify is against the cap): permit2_amount_mismatch", async () => {
    const body = await uptoPayment(uptoRequirements(100_000n));
    const lower = { ...charging(body, 99_999n), paymentPayload: { ...body.paymentPayload, accepted: { ...body.paymentRequirements, amount: "99999" } } };
    expect(await post("/verify", lower)).toMatchObject({ isValid: false, invalidReason: "permit2_amount_mismatch" });
  });

  it("refuses a permit past its deadline: permit2_deadline_expired", async () => {
    const body = await uptoPayment(uptoRequirements(100_000n, { maxTimeoutSeconds: 3 }));
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "permit2_deadline_expired" });
    expect(await post("/settle", charging(body, 50_000n))).toMatchObject({ success: false, errorReason: "permit2_deadline_expired", transaction: "" });
  });

  it("refuses a witness naming a facilitator that is not one of our keys: upto_facilitator_mismatch", async () => {
    const body = await uptoPayment(uptoRequirements(100_000n, {}, addressOf(keys.stranger)));
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "upto_facilitator_mismatch", payer: payer.address });
    expect(await post("/settle", charging(body, 1_000n))).toMatchObject({ success: false, errorReason: "upto_facilitator_mismatch", transaction: "" });
  });

  it("charges 0 without a transaction and records nothing, as 2.27: whoever settles 0 first cannot void the seller's later charge (review 16 attack 2)", async () => {
    const body = await uptoPayment(uptoRequirements(100_000n));
    const payToBefore = await fx.chain.balanceOf(payTo);
    const blockBefore = await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 });

    // The buyer (or anyone who can call /settle) settles its own payload for 0 before the seller does.
    const zero = await post("/settle", charging(body, 0n));
    expect(zero).toEqual({ success: true, payer: payer.address, transaction: "", network: NETWORK, amount: "0" });
    expect(await post("/settle", charging(body, 0n))).toEqual(zero);
    expect(await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(blockBefore);
    expect(await settlementRows(fx.database.url, nonceHex(body))).toEqual([]);
    expect(await post("/verify", body)).toMatchObject({ isValid: true });

    // The seller's real charge still settles, once; a 0 after it is another charge of a settled authorization.
    const charged = await post("/settle", charging(body, 5_000n));
    expect(charged).toMatchObject({ success: true, amount: "5000" });
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + 5_000n);
    expect(await post("/settle", charging(body, 0n))).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: charged.transaction });
    const [row] = await settlementRows(fx.database.url, nonceHex(body));
    expect(row).toMatchObject({ status: "confirmed", value_atomic: "5000", tx_hash: charged.transaction });
  });

  it("a charge of 0 runs verify's chain checks at the cap first: an unfunded or unapproved payer is refused with 2.27's code, nothing recorded", async () => {
    // Funded, but no allowance to Permit2.
    const unapproved = await freshPayer();
    const blockBefore = await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 });
    // No USDC, no ETH, no allowance (review 16 H1: this was a free success:true).
    const unfunded = privateKeyToAccount(generatePrivateKey());
    const poor = await uptoPayment(uptoRequirements(ONE_USDC), unfunded);
    expect(await post("/settle", charging(poor, 0n))).toMatchObject({ success: false, errorReason: "permit2_insufficient_balance", transaction: "" });
    const noAllowance = await uptoPayment(uptoRequirements(ONE_USDC), unapproved);
    expect(await post("/settle", charging(noAllowance, 0n))).toMatchObject({ success: false, errorReason: "permit2_allowance_required", transaction: "" });
    for (const body of [poor, noAllowance]) expect(await settlementRows(fx.database.url, nonceHex(body))).toEqual([]);
    expect(await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(blockBefore);
  });

  it("a charge of 0 writes no Bazaar entry; the permit verifies valid afterwards (a 0 charge takes nothing)", async () => {
    const seller = randomPayTo();
    const bazaar = {
      info: { input: { type: "http", method: "GET", queryParams: { q: "x" } }, output: { type: "json", example: { ok: true } } },
      schema: { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: { input: { type: "object" } }, required: ["input"] },
    };
    const body = await uptoPayment(uptoRequirements(100_000n, { payTo: seller }));
    body.paymentPayload.resource = { url: "https://evil.example/zero" };
    body.paymentPayload.extensions = { ...body.paymentPayload.extensions, bazaar };
    expect(await post("/settle", charging(body, 0n))).toMatchObject({ success: true, amount: "0", transaction: "" });
    await fx.facilitator.services.bazaar.idle();
    const listed = await fx.facilitator.app.inject({ method: "GET", url: `/discovery/resources?payTo=${seller}` });
    expect(listed.statusCode, listed.body).toBe(200);
    const listing = listed.json() as { items: unknown[] };
    expect(listing.items).toEqual([]);
    // The control: the same extension on a charge that moved money is listed.
    const paid = await uptoPayment(uptoRequirements(100_000n, { payTo: seller }));
    paid.paymentPayload.resource = { url: "https://seller.example/paid" };
    paid.paymentPayload.extensions = { ...paid.paymentPayload.extensions, bazaar };
    expect(await post("/settle", charging(paid, 1_000n))).toMatchObject({ success: true, amount: "1000" });
    await fx.facilitator.services.bazaar.idle();
    const after = (await fx.facilitator.app.inject({ method: "GET", url: `/discovery/resources?payTo=${seller}` })).json() as { items: unknown[] };
    expect(JSON.stringify(after.items)).toContain("https://seller.example/paid");
    expect(JSON.stringify(after.items)).not.toContain("evil.example");
    // A 0 charge takes nothing: the permit is still unused and still valid (as with 2.27).
    expect(await nonceUsed(payer.address, nonceOf(body))).toBe(false);
    expect(await post("/verify", body)).toMatchObject({ isValid: true });
  });

  it("concurrent settles of one authorization: one transaction, one success, the rest duplicate_settlement", async () => {
    const body = await uptoPayment(uptoRequirements(200_000n));
    const answers = await Promise.all(Array.from({ length: 6 }, () => post("/settle", charging(body, 150_000n))));
    const successes = answers.filter((answer) => answer.success === true);
    expect(successes).toHaveLength(1);
    expect(answers.filter((answer) => answer.errorReason === "duplicate_settlement")).toHaveLength(5);
    const txHash = successes[0]!.transaction as Hex;
    expect((await transfersInTx(fx.chain, txHash, payer.address, payTo)).map((log) => log.args.value)).toEqual([150_000n]);
    const rows = await settlementRows(fx.database.url, nonceHex(body));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "confirmed", tx_hash: txHash });
  });

  it("with the client's eip2612GasSponsoring permit for the cap: settleWithPermit charges the lower amount", async () => {
    const unapproved = await freshPayer();
    const body = await uptoPayment(uptoRequirements(300_000n), toClientEvmSigner(unapproved, fx.chain.publicClient), { eip2612GasSponsoring: {} });
    expect(await post("/verify", body)).toEqual({ isValid: true, payer: unapproved.address });
    const settled = await post("/settle", charging(body, 100_000n));
    expect(settled).toMatchObject({ success: true, amount: "100000" });
    expect((await transfersInTx(fx.chain, settled.transaction as Hex, unapproved.address, payTo)).map((log) => log.args.value)).toEqual([100_000n]);
  });

  it("refuses a payer without an allowance to Permit2: permit2_allowance_required", async () => {
    const unapproved = await freshPayer();
    const body = await uptoPayment(uptoRequirements(100_000n), unapproved);
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "permit2_allowance_required" });
    expect(await post("/settle", charging(body, 10_000n))).toMatchObject({ success: false, errorReason: "permit2_allowance_required" });
  });

  it("refuses an EIP-3009 payload for upto: unsupported_payload_type", async () => {
    const eip3009 = await paymentBody(fx.chain, { payerKey: keys.payer, payTo, amountAtomic: 10_000n });
    const body = { ...eip3009, paymentRequirements: { ...eip3009.paymentRequirements, scheme: "upto" }, paymentPayload: { ...eip3009.paymentPayload, accepted: { ...eip3009.paymentRequirements, scheme: "upto" } } };
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "unsupported_payload_type" });
  });
});

describe("the claim key is Permit2's (owner, nonce), across tokens and schemes", () => {
  it("an upto payment reusing an exact payment's nonce is the same authorization: refused once the first is settled", async () => {
    const first = await exactPayment(exactRequirements(10_000n));
    expect(await post("/settle", first)).toMatchObject({ success: true });
    // The same owner and nonce, signed for the upto proxy by the official client (which picks random
    // nonces: its signer is given this one): Permit2 would refuse it (InvalidNonce).
    const nonce = nonceOf(first);
    const sameNonceSigner: ClientEvmSigner = {
      address: payer.address,
      signTypedData: (typedData) => payer.signTypedData({ ...typedData, message: { ...typedData.message, nonce } } as never),
    };
    const requirements = uptoRequirements(10_000n);
    const result = await new UptoEvmScheme(sameNonceSigner).createPaymentPayload(2, requirements);
    (result.payload as { permit2Authorization: { nonce: string } }).permit2Authorization.nonce = nonce.toString();
    const body: Body = { x402Version: 2, paymentPayload: { x402Version: 2, resource: { url: "http://127.0.0.1/resource" }, accepted: requirements, payload: result.payload }, paymentRequirements: requirements };
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "permit2_invalid_nonce" });
    expect(await post("/settle", charging(body, 5_000n))).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
  });
});

describe("gas per settlement (Anvil, local stand-ins; payTo already holds USDC, fresh nonces)", () => {
  it("measures exact EIP-3009, exact Permit2 and upto", async () => {
    const eip3009 = await post("/settle", await paymentBody(fx.chain, { payerKey: keys.payer, payTo, amountAtomic: 10_000n }));
    const exact = await post("/settle", await exactPayment(exactRequirements(10_000n)));
    const upto = await post("/settle", charging(await uptoPayment(uptoRequirements(50_000n)), 10_000n));
    const gas = async (answer: Record<string, unknown>) => (await fx.chain.publicClient.getTransactionReceipt({ hash: answer.transaction as Hex })).gasUsed;
    const measured = { exactEip3009: await gas(eip3009), exactPermit2: await gas(exact), upto: await gas(upto) };
    console.log(`gas per settlement: ${JSON.stringify(measured, (_key, value: unknown) => (typeof value === "bigint" ? Number(value) : value))}`);
    // The README quotes these figures (*Permit2*, gas per settlement): keep them in step.
    const quoted = { exactEip3009: 73_799n, exactPermit2: 85_091n, upto: 86_191n };
    const toleranceBasisPoints = 200n; // 2 %: calldata zero bytes (signatures, nonces) move gas by a few dozen
    for (const [kind, gasUsed] of Object.entries(measured) as [keyof typeof quoted, bigint][]) {
      const deviation = gasUsed > quoted[kind] ? gasUsed - quoted[kind] : quoted[kind] - gasUsed;
      expect(deviation * 10_000n, `${kind}: measured ${gasUsed}, README says ${quoted[kind]}`).toBeLessThanOrEqual(quoted[kind] * toleranceBasisPoints);
    }
  });
});
