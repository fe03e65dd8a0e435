import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createWalletClient,
  decodeFunctionData,
  encodeFunctionData,
  http,
  keccak256,
  serializeErc6492Signature,
  toHex,
  type Address,
  type Hex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { multicall3Address } from "../../../src/exact-evm/multicall3.js";
import { smartWalletFactoryArtifact } from "../../../src/sandbox/artifacts.js";
import { walletPayment } from "../../helpers/attackers.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import {  v2Body, v2Requirements } from "../../helpers/payments.js";
import { postJson } from "../../helpers/http.js";

/** Smart-wallet payers: a deployed ERC-1271 wallet, and a counterfactual one (ERC-6492). */
const payTo = addressOf(keys.payTo);
const amountAtomic = 25_000n;
const owner = privateKeyToAccount(keys.stranger);

let chain: TestChain;
let database: TestDatabase;
let facilitator: TestFacilitator;
let factory: Address;

beforeAll(async () => {
  chain = await startTestChain();
  database = await createTestDatabase("wallets");
  const deployer = createWalletClient({ account: privateKeyToAccount(keys.facilitator3), transport: http(chain.rpcUrl) });
  const hash = await deployer.deployContract({ abi: smartWalletFactoryArtifact.abi, bytecode: smartWalletFactoryArtifact.bytecode, chain: null });
  factory = (await chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 })).contractAddress!;
  // The operator allows this one factory (ERC6492_ALLOWED_FACTORIES); others are refused.
  facilitator = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [chain.rpcUrl], token: chain.token, limits: { erc6492AllowedFactories: [factory.toLowerCase()] } });
});

afterAll(async () => {
  await facilitator?.close();
  await database?.drop();
  await chain?.stop();
});

const predict = (salt: Hex) =>
  chain.publicClient.readContract({ address: factory, abi: smartWalletFactoryArtifact.abi, functionName: "predict", args: [owner.address, salt] }) as Promise<Address>;
const deployCalldata = (salt: Hex) => encodeFunctionData({ abi: smartWalletFactoryArtifact.abi, functionName: "deploy", args: [owner.address, salt] });

const post = async (route: "/verify" | "/settle", body: unknown) => (await postJson(facilitator.app, route, body)).body;

describe("smart-wallet payers", () => {
  it("verifies and settles from a deployed ERC-1271 wallet through the bytes overload", async () => {
    const salt = keccak256(toHex("deployed"));
    const wallet = await predict(salt);
    const deployer = createWalletClient({ account: privateKeyToAccount(keys.facilitator3), transport: http(chain.rpcUrl) });
    const hash = await deployer.sendTransaction({ to: factory, data: deployCalldata(salt), chain: null });
    await chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 });
    await chain.mint(wallet, amountAtomic);

    const payment = await walletPayment(chain, { wallet, payTo, valueAtomic: amountAtomic }); // the owner (keys.stranger) signs
    const body = v2Body(payment, v2Requirements({ token: chain.token, payTo, amountAtomic }));
    expect(await post("/verify", body)).toEqual({ isValid: true, payer: wallet });
    const settled = await post("/settle", body);
    expect(settled).toMatchObject({ success: true, payer: wallet });
    const tx = await chain.publicClient.getTransaction({ hash: settled.transaction });
    const decoded = decodeFunctionData({ abi: eip3009Abi, data: tx.input });
    expect(decoded.functionName).toBe("transferWithAuthorization");
    expect(decoded.args).toHaveLength(7); // (…, bytes signature): the ERC-1271 overload
    expect(await chain.balanceOf(wallet)).toBe(0n);
  });

  it("verifies and settles from a counterfactual ERC-6492 wallet, deploying it in the same transaction", async () => {
    const salt = keccak256(toHex("counterfactual"));
    const wallet = await predict(salt);
    await chain.mint(wallet, amountAtomic);
    expect(await chain.publicClient.getCode({ address: wallet })).toBeUndefined();

    const payment = await walletPayment(chain, { wallet, payTo, valueAtomic: amountAtomic }); // the owner (keys.stranger) signs
    const wrapped = serializeErc6492Signature({ address: factory, data: deployCalldata(salt), signature: payment.signature });
    const body = v2Body({ ...payment, signature: wrapped }, v2Requirements({ token: chain.token, payTo, amountAtomic }));
    expect(await post("/verify", body)).toEqual({ isValid: true, payer: wallet });
    const payToBefore = await chain.balanceOf(payTo);
    const settled = await post("/settle", body);
    expect(settled).toMatchObject({ success: true, payer: wallet });
    const tx = await chain.publicClient.getTransaction({ hash: settled.transaction });
    expect(tx.to?.toLowerCase()).toBe(multicall3Address.toLowerCase());
    expect(await chain.publicClient.getCode({ address: wallet })).toMatch(/^0x[0-9a-f]+$/);
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
  });

  it("refuses a settlement above its gas cap without sending anything (gas_cap_exceeded)", async () => {
    const capped = await startTestFacilitator({
      databaseUrl: database.url,
      rpcUrls: [chain.rpcUrl],
      token: chain.token,
      limits: { gasPerDeployingSettlementMax: 100_000n, erc6492AllowedFactories: [factory.toLowerCase()] },
    });
    try {
      const salt = keccak256(toHex("over-the-cap"));
      const wallet = await predict(salt);
      await chain.mint(wallet, amountAtomic);
      const payment = await walletPayment(chain, { wallet, payTo, valueAtomic: amountAtomic }); // the owner (keys.stranger) signs
      const wrapped = serializeErc6492Signature({ address: factory, data: deployCalldata(salt), signature: payment.signature });
      const signerNonceBefore = await chain.publicClient.getTransactionCount({ address: addressOf(keys.facilitator) });
      const answer = (await capped.app.inject({
        method: "POST",
        url: "/settle",
        payload: v2Body({ ...payment, signature: wrapped }, v2Requirements({ token: chain.token, payTo, amountAtomic })),
      })).json();
      expect(answer).toMatchObject({ success: false, errorReason: "gas_cap_exceeded", transaction: "" });
      expect(await chain.publicClient.getTransactionCount({ address: addressOf(keys.facilitator) })).toBe(signerNonceBefore);
      expect(await chain.publicClient.getCode({ address: wallet })).toBeUndefined();
    } finally {
      await capped.close();
    }
  });

  it("rejects a counterfactual wallet signature by someone other than its owner", async () => {
    const salt = keccak256(toHex("not-the-owner"));
    const wallet = await predict(salt);
    await chain.mint(wallet, amountAtomic);
    const payment = await walletPayment(chain, { wallet, payTo, valueAtomic: amountAtomic, signerKey: keys.payer });
    const wrapped = serializeErc6492Signature({ address: factory, data: deployCalldata(salt), signature: payment.signature });
    const answer = await post("/verify", v2Body({ ...payment, signature: wrapped }, v2Requirements({ token: chain.token, payTo, amountAtomic })));
    expect(answer).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_signature", payer: wallet });
    const settled = await post("/settle", v2Body({ ...payment, signature: wrapped }, v2Requirements({ token: chain.token, payTo, amountAtomic })));
    expect(settled).toMatchObject({ success: false, errorReason: "invalid_exact_evm_signature", transaction: "" });
  });

  it("rejects a long signature from an address with no code and no ERC-6492 deployment", async () => {
    const wallet = await predict(keccak256(toHex("never-deployed")));
    const payment = await walletPayment(chain, { wallet, payTo, valueAtomic: amountAtomic }); // the owner (keys.stranger) signs
    const longSignature = `${payment.signature}${"00".repeat(32)}` as Hex;
    const answer = await post("/verify", v2Body({ ...payment, signature: longSignature }, v2Requirements({ token: chain.token, payTo, amountAtomic })));
    expect(answer).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_payload_undeployed_smart_wallet", payer: wallet });
  });
});
