import { parseBuilderCodeSuffixFromCalldata } from "@x402/extensions/builder-code";
import { decodeFunctionData, hexToBytes, size, slice, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { defaultLimits } from "../../../src/config.js";
import { SharedChainReads } from "../../../src/chain/shared-reads.js";
import { batchSettlerAbi, batchSettlerAddress, decodeBatchSettle } from "../../../src/contracts/batch-settler.js";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { isRejection, resolvePayment } from "../../../src/exact-evm/resolve.js";
import { builderCodeSuffix, erc8021Marker } from "../../../src/protocol/builder-code.js";
import { normalize, type Envelope } from "../../../src/protocol/normalize.js";
import { isPrepared, prepareTransaction } from "../../../src/settlement/prepare-sign-send.js";
import { pay, settle, settlementRows, whileSignerLocked } from "../../helpers/batching.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { startTestFacilitator } from "../../helpers/facilitator.js";
import { usePaymentFixture } from "../../helpers/fixture.js";

/**
 * BUILDER_CODE: every settlement transaction, a plain token call or a BatchSettler batch, carries
 * the operator's ERC-8021 suffix at the end of its calldata, read here from the mined transactions
 * on Anvil. TestUSDC (like USDC) and BatchSettler ignore the trailing bytes: the payments go
 * through unchanged.
 */
const code = "bc_test_facilitator";
const suffix = builderCodeSuffix(code);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

const f = usePaymentFixture({ label: "builder_code", payerBalanceAtomic: 100_000_000n, facilitator: { builderCode: code, limits: { settleBatchMax: 16 } } });

/** The calldata without the suffix, after checking that it ends with exactly one. */
function withoutSuffix(input: Hex): Hex {
  expect(input.endsWith(suffix.slice(2))).toBe(true);
  expect(parseBuilderCodeSuffixFromCalldata(input)).toEqual({ w: code });
  const call = slice(input, 0, size(input) - size(suffix));
  expect(call.includes(erc8021Marker.slice(2))).toBe(false);
  return call;
}

describe("BUILDER_CODE on settlement transactions", () => {
  it("appends the suffix to a plain token call; the payee is paid as without it", async () => {
    const before = await f.chain.balanceOf(payTo);
    const answer = await settle(f, await pay(f, keys.payer, payTo, amountAtomic));
    expect(answer).toMatchObject({ success: true });
    const tx = await f.chain.publicClient.getTransaction({ hash: answer.transaction });
    expect(tx.to?.toLowerCase()).toBe(f.chain.token.toLowerCase());
    const call = decodeFunctionData({ abi: eip3009Abi, data: withoutSuffix(tx.input) });
    expect(call.functionName).toBe("transferWithAuthorization");
    expect(call.args?.[1]).toBe(payTo);
    expect(await f.chain.balanceOf(payTo)).toBe(before + amountAtomic);
    const receipt = await f.chain.publicClient.getTransactionReceipt({ hash: answer.transaction });
    expect(receipt.status).toBe("success");
  });

  it("appends it once to a BatchSettler batch, after the calls, which carry none; every call pays", async () => {
    const payments = await Promise.all(Array.from({ length: 4 }, () => pay(f, keys.payer, payTo, amountAtomic)));
    const before = await f.chain.balanceOf(payTo);
    const answers = await whileSignerLocked(f, payments.length, () => Promise.all(payments.map((body) => settle(f, body))));
    expect(answers.every((answer) => answer.success)).toBe(true);
    expect(await f.chain.balanceOf(payTo)).toBe(before + amountAtomic * BigInt(payments.length));
    // The one that waited on the lock went alone; the three that queued behind it, as one batch.
    const batchHash = answers.map((answer) => answer.transaction).find((hash, _i, all) => all.filter((other) => other === hash).length === payments.length - 1)!;
    expect(batchHash).toBeDefined();
    const batchTx = await f.chain.publicClient.getTransaction({ hash: batchHash });
    expect(batchTx.to?.toLowerCase()).toBe(batchSettlerAddress.toLowerCase());
    const batch = decodeFunctionData({ abi: batchSettlerAbi, data: withoutSuffix(batchTx.input) });
    expect(batch.functionName).toBe("settle");
    const calls = decodeBatchSettle(batchTx.input);
    expect(calls).toHaveLength(payments.length - 1);
    for (const call of calls) {
      expect(call.callData.includes(erc8021Marker.slice(2))).toBe(false);
      expect(decodeFunctionData({ abi: eip3009Abi, data: call.callData }).functionName).toBe("transferWithAuthorization");
    }
    const receipt = await f.chain.publicClient.getTransactionReceipt({ hash: batchHash });
    expect(receipt.status).toBe("success");
    const callFailed = receipt.logs.filter((log) => log.address.toLowerCase() === batchSettlerAddress.toLowerCase());
    expect(callFailed).toEqual([]);
    const rows = await settlementRows(f, batchHash);
    expect(rows.map((row) => row.status)).toEqual(Array(payments.length - 1).fill("confirmed"));
    // The lone one too.
    const lone = answers.find((answer) => answer.transaction !== batchHash)!;
    withoutSuffix((await f.chain.publicClient.getTransaction({ hash: lone.transaction })).input);
  });

  it("estimates gas with the suffix: the gas limit covers its calldata gas", async () => {
    const body = (await pay(f, keys.payer, payTo, amountAtomic)) as unknown as Envelope;
    const { services } = f.facilitator;
    const normalized = normalize(body, services.networkServed);
    if (!normalized.ok) throw new Error("the payment does not normalize");
    const resolved = resolvePayment(normalized.request, (chainId) => services.deps.chains.get(chainId)?.config);
    if (isRejection(resolved)) throw new Error(resolved.message);
    const payment = { ...resolved, payerKind: "eoa" as const };
    const account = privateKeyToAccount(keys.facilitator);
    const client = f.chain.publicClient;
    // Both estimates read the same state (nothing is mined in between): the difference is the suffix.
    const [plain, suffixed] = await Promise.all([prepareTransaction(client, new SharedChainReads(client), payment, account, defaultLimits), prepareTransaction(client, new SharedChainReads(client), payment, account, defaultLimits, suffix)]);
    if (!isPrepared(plain) || !isPrepared(suffixed)) throw new Error("the payment does not prepare");
    const suffixCalldataGas = BigInt(hexToBytes(suffix).reduce((gas, byte) => gas + (byte === 0 ? 4 : 16), 0)); // EIP-2028
    expect(suffixCalldataGas).toBe(660n); // 42 bytes for a 19-character code: one zero (the length's high byte), 41 not
    expect(suffixed.call).toEqual(plain.call); // the call itself stays plain: the suffix is added when signing
    expect(suffixed.gasLimit - plain.gasLimit).toBeGreaterThanOrEqual(suffixCalldataGas);
    expect(suffixed.gasLimit - plain.gasLimit).toBeLessThanOrEqual((suffixCalldataGas * 12n) / 10n + 1n); // the 20 % headroom
  });

  it("adds nothing without BUILDER_CODE", async () => {
    const plain = await startTestFacilitator({ databaseUrl: f.database.url, rpcUrls: [f.chain.rpcUrl], token: f.chain.token });
    try {
      const body = await pay(f, keys.payer, payTo, amountAtomic);
      const answer = (await plain.app.inject({ method: "POST", url: "/settle", payload: body })).json() as { success: boolean; transaction: Hex };
      expect(answer).toMatchObject({ success: true });
      const tx = await f.chain.publicClient.getTransaction({ hash: answer.transaction });
      expect(tx.input.includes(erc8021Marker.slice(2))).toBe(false);
      expect(decodeFunctionData({ abi: eip3009Abi, data: tx.input }).functionName).toBe("transferWithAuthorization");
    } finally {
      await plain.close();
    }
  });
});
