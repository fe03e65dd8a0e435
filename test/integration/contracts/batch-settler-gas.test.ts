/**
 * Gas per landed payment through BatchSettler, against one settlement per transaction, on a real
 * Anvil with TestUSDC: batches of 1, 8 and 32 distinct payers paying one payTo (the bench's
 * shape: 32 payers, one payee). Prints the figures and a breakdown from Anvil's call tracer: the
 * token calls' own gas, the calldata, and what is left (BatchSettler's loop and decoding), and the
 * floor: the token calls as they ran, their own calldata and one base cost.
 */
import { createWalletClient, decodeFunctionData, http, keccak256, toHex, type Hex, type TransactionReceipt } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { transferWithAuthorizationCall } from "../../../src/exact-evm/transfer-call.js";
import { batchSettlerAddress, encodeBatchSettle } from "../../../src/contracts/batch-settler.js";
import { batchTransaction } from "../../../src/settlement/batch-transaction.js";
import type { PreparedTransaction } from "../../../src/settlement/prepare-sign-send.js";
import { authorizationOf, signPayment } from "../../helpers/payments.js";
import { paymentLogOf } from "../../../src/settlement/receipt.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";

const payerCount = 32;
const amountAtomic = 10_000n;
const payerKeys: Hex[] = Array.from({ length: payerCount }, (_, i) => keccak256(toHex(`gas-payer/${i}`)));
const payTo = addressOf(keys.payTo);

let chain: TestChain;

beforeAll(async () => {
  chain = await startTestChain();
  for (const key of payerKeys) await chain.mint(privateKeyToAccount(key).address, 1_000_000_000n);
  await chain.mint(payTo, 1n); // the payee holds a balance already, as in any long run
});
afterAll(async () => chain?.stop());

const wallet = () => createWalletClient({ account: privateKeyToAccount(keys.facilitator), transport: http(chain.rpcUrl) });

async function preparedPayments(count: number): Promise<PreparedTransaction[]> {
  return Promise.all(
    payerKeys.slice(0, count).map(async (payerKey) => {
      const payment = await signPayment({ payerKey, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic });
      const call = transferWithAuthorizationCall(chain.token, authorizationOf(payment), payment.signature);
      const estimate = await chain.publicClient.estimateGas({ account: addressOf(keys.facilitator), to: call.to, data: call.data });
      const gasLimit = (estimate * 12n) / 10n;
      return { call, gasLimit, maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n, chainPendingNonce: 0, signerBalanceWei: 10n ** 21n, payerHasCode: false };
    }),
  );
}

async function send(prepared: PreparedTransaction): Promise<TransactionReceipt> {
  const hash = await wallet().sendTransaction({ to: prepared.call.to, data: prepared.call.data, gas: prepared.gasLimit, chain: null });
  return chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 });
}

/** Calldata gas (EIP-2028): 16 a non-zero byte, 4 a zero byte. */
function calldataGas(data: Hex): number {
  let gas = 0;
  for (let i = 2; i < data.length; i += 2) gas += data.slice(i, i + 2) === "00" ? 4 : 16;
  return gas;
}

interface CallFrame {
  to: string;
  gasUsed: Hex;
  calls?: CallFrame[];
}

/** The gas the token calls used themselves (Anvil's callTracer, the outer frame's direct children). */
async function innerCallsGas(hash: Hex): Promise<number> {
  const trace = (await chain.publicClient.request({ method: "debug_traceTransaction" as never, params: [hash, { tracer: "callTracer" }] as never })) as CallFrame;
  return (trace.calls ?? []).reduce((sum, call) => sum + Number(BigInt(call.gasUsed)), 0);
}

describe("BatchSettler gas per landed payment", () => {
  it("prints single and batched gas per payment for batches of 1, 8 and 32", async () => {
    const singles = await preparedPayments(payerCount);
    let singleGas = 0n;
    for (const prepared of singles) {
      const receipt = await send(prepared);
      expect(receipt.status).toBe("success");
      singleGas += receipt.gasUsed;
    }
    const singlePerPayment = Number(singleGas) / payerCount;
    console.log(`[gas] single settlement: ${singlePerPayment.toFixed(0)} gas per payment (mean of ${payerCount})`);

    const ratios: Record<number, number> = {};
    const aboveFloor: Record<number, number> = {};
    for (const size of [1, 8, 32]) {
      const items = await preparedPayments(size);
      // A batch of one is sent as a plain call by batchTransaction; built here through BatchSettler
      // anyway, to show its fixed cost.
      const batch =
        size === 1
          ? { ...items[0]!, call: { to: batchSettlerAddress, data: encodeBatchSettle([{ target: chain.token, gasLimit: items[0]!.gasLimit - 21_000n, callData: items[0]!.call.data }]) }, gasLimit: items[0]!.gasLimit + 20_000n }
          : batchTransaction(items);
      const receipt = await send(batch);
      expect(receipt.status).toBe("success");
      // Every payment is proven by its own AuthorizationUsed + Transfer pair in the batch's logs.
      for (const item of items) {
        const args = decodeFunctionData({ abi: eip3009Abi, data: item.call.data }).args as unknown as [Hex, Hex, bigint, bigint, bigint, Hex];
        expect(paymentLogOf(receipt, { token: chain.token, from: args[0], to: args[1], valueAtomic: args[2] }, args[5])).toBeDefined();
      }
      const perPayment = Number(receipt.gasUsed) / size;
      ratios[size] = perPayment / singlePerPayment;
      const inner = await innerCallsGas(receipt.transactionHash);
      const calldata = calldataGas(batch.call.data);
      const innerCalldata = items.reduce((sum, item) => sum + calldataGas(item.call.data), 0);
      const wrapper = Number(receipt.gasUsed) - 21_000 - calldata - inner;
      // The floor of a batch with this token: the token calls as they ran, their own calldata, one
      // base cost. What is above it is BatchSettler's (its framing, loop, CALLs, the cold token access).
      const floorPerPayment = (inner + innerCalldata + 21_000) / size;
      aboveFloor[size] = perPayment - floorPerPayment;
      console.log(
        `[gas] batch of ${size}: ${perPayment.toFixed(0)} gas per payment (${ratios[size]!.toFixed(3)} of single); per payment: ` +
          `token call ${(inner / size).toFixed(0)}, ` +
          `calldata ${(calldata / size).toFixed(0)} (of which the authorization itself ${(innerCalldata / size).toFixed(0)}), ` +
          `BatchSettler execution ${(wrapper / size).toFixed(0)}, base cost ${(21_000 / size).toFixed(0)}; ` +
          `floor ${floorPerPayment.toFixed(0)} (${(floorPerPayment / singlePerPayment).toFixed(3)} of single), ${aboveFloor[size]!.toFixed(0)} above it`,
      );
    }
    expect(ratios[32]).toBeLessThan(ratios[8]!);
    // BatchSettler's share per payment in a batch of 32 (measured ~690; ~2,200 when it took an ABI array of structs).
    expect(aboveFloor[32]).toBeLessThan(1_000);
  });
});
