/**
 * BatchSettler itself on a real Anvil, its packed calls written by encodeBatchSettle: every call
 * runs with its own gas limit, a call that burns gas spends at most that limit and sinks nobody, a
 * call the remaining gas cannot fully fund is skipped (never run short), each payment is proven by
 * its own AuthorizationUsed + Transfer pair, and bytes after the argument (a builder code) are not read.
 */
import { concat, createWalletClient, decodeFunctionData, http, keccak256, numberToHex, parseEventLogs, size, slice, toHex, type Address, type Hex, type TransactionReceipt } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batchSettlerAbi, batchSettlerAddress, encodeBatchSettle, type GasLimitedCall } from "../../../src/contracts/batch-settler.js";
import { transferWithAuthorizationCall } from "../../../src/exact-evm/transfer-call.js";
import { builderCodeSuffix } from "../../../src/protocol/builder-code.js";
import { paymentLogOf } from "../../../src/settlement/receipt.js";
import { anvilDevPrivateKeys } from "../../../src/sandbox/anvil.js";
import { delegateEoa, deployContract } from "../../helpers/attackers.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { authorizationOf, signPayment } from "../../helpers/payments.js";

const amountAtomic = 10_000n;
const payTo = addressOf(keys.payTo);
const payerKeys: Hex[] = Array.from({ length: 4 }, (_, i) => keccak256(toHex(`batch-settler-payer/${i}`)));
const transferGasLimit = 90_000n;

let chain: TestChain;

beforeAll(async () => {
  chain = await startTestChain();
  for (const key of payerKeys) await chain.mint(addressOf(key), 1_000_000n);
});
afterAll(async () => chain?.stop());

interface Payment {
  call: GasLimitedCall;
  from: Address;
  nonce: Hex;
}

async function payment(payerKey: Hex): Promise<Payment> {
  const signed = await signPayment({ payerKey, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic });
  const { to, data } = transferWithAuthorizationCall(chain.token, authorizationOf(signed), signed.signature);
  return { call: { target: to, gasLimit: transferGasLimit, callData: data }, from: addressOf(payerKey), nonce: signed.authorization.nonce };
}

async function sendBatch(data: Hex, gas: bigint): Promise<TransactionReceipt> {
  const wallet = createWalletClient({ account: privateKeyToAccount(keys.facilitator), transport: http(chain.rpcUrl) });
  const hash = await wallet.sendTransaction({ to: batchSettlerAddress, data, gas, chain: null });
  return chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 });
}

function paid(receipt: TransactionReceipt, p: Payment): boolean {
  return paymentLogOf(receipt, { token: chain.token, from: p.from, to: payTo, valueAtomic: amountAtomic }, p.nonce) !== undefined;
}

function failures(receipt: TransactionReceipt) {
  return parseEventLogs({ abi: batchSettlerAbi, eventName: "CallFailed", logs: receipt.logs }).map((log) => ({ index: Number(log.args.index), skipped: log.args.skipped }));
}

interface CallFrame {
  to: string;
  gas: Hex;
  gasUsed: Hex;
  calls?: CallFrame[];
}

async function callFrames(hash: Hex): Promise<CallFrame[]> {
  const trace = (await chain.publicClient.request({ method: "debug_traceTransaction" as never, params: [hash, { tracer: "callTracer" }] as never })) as CallFrame;
  return trace.calls ?? [];
}

describe("BatchSettler", () => {
  it("runs every call with its own gas limit; each payment is proven by its own logs; a builder-code suffix is not read", async () => {
    const payments = await Promise.all(payerKeys.slice(0, 3).map(payment));
    const data = concat([encodeBatchSettle(payments.map((p) => p.call)), builderCodeSuffix("my_facilitator")]);
    const receipt = await sendBatch(data, 400_000n);
    expect(receipt.status).toBe("success");
    expect(payments.every((p) => paid(receipt, p))).toBe(true);
    expect(failures(receipt)).toEqual([]);
    const frames = await callFrames(receipt.transactionHash);
    expect(frames.map((frame) => [frame.to.toLowerCase(), BigInt(frame.gas)])).toEqual(payments.map(() => [chain.token.toLowerCase(), transferGasLimit]));
  });

  it("bounds a call that burns all its gas to its own limit (an EIP-7702 payer whose signature check burns it): the calls around it are paid", async () => {
    const burner = await deployContract(chain, "GasBurnerDelegate");
    const attackerKey = anvilDevPrivateKeys[7]!;
    await chain.mint(addressOf(attackerKey), 1_000_000n);
    const [before, attack, after] = await Promise.all([payment(payerKeys[0]!), payment(attackerKey), payment(payerKeys[1]!)]);
    await delegateEoa(chain, attackerKey, burner); // after signing: USDC now asks its code (ERC-1271), which burns all it gets
    const receipt = await sendBatch(encodeBatchSettle([before.call, attack.call, after.call]), 2_000_000n);
    expect(receipt.status).toBe("success");
    expect(paid(receipt, before) && paid(receipt, after)).toBe(true);
    expect(paid(receipt, attack)).toBe(false);
    expect(failures(receipt)).toEqual([{ index: 1, skipped: false }]);
    const burnt = (await callFrames(receipt.transactionHash))[1]!;
    expect(BigInt(burnt.gas)).toBe(transferGasLimit);
    expect(BigInt(burnt.gasUsed)).toBeLessThanOrEqual(transferGasLimit);
    // The whole batch cost about three calls' limits at most, not the 2M it was given.
    expect(receipt.gasUsed).toBeLessThan(21_000n + 3n * transferGasLimit);
  });

  it("skips a call the remaining gas cannot give its whole limit, and still runs the ones it can", async () => {
    const [first, greedy, last] = await Promise.all(payerKeys.slice(0, 3).map(payment));
    const tooBig = { ...greedy!.call, gasLimit: 5_000_000n };
    const receipt = await sendBatch(encodeBatchSettle([first!.call, tooBig, last!.call]), 300_000n);
    expect(receipt.status).toBe("success");
    expect(paid(receipt, first!) && paid(receipt, last!)).toBe(true);
    expect(paid(receipt, greedy!)).toBe(false);
    expect(failures(receipt)).toEqual([{ index: 1, skipped: true }]);
    expect((await callFrames(receipt.transactionHash)).length).toBe(2); // the skipped call never ran
  });

  it("reverts a batch whose packed calls end inside a call, or whose first call names no target (nothing is paid, every row may be settled again)", async () => {
    const p = await payment(payerKeys[3]!);
    const simulate = (packed: Hex) =>
      chain.publicClient.simulateContract({ account: addressOf(keys.facilitator), address: batchSettlerAddress, abi: batchSettlerAbi, functionName: "settle", args: [packed], gas: 300_000n });
    const [packed] = decodeFunctionData({ abi: batchSettlerAbi, data: encodeBatchSettle([p.call]) }).args;
    await expect(simulate(slice(packed, 0, size(packed) - 10))).rejects.toThrow(/MalformedBatch/);
    // A first call that says "same target as the call before": there is none.
    await expect(simulate(concat([numberToHex(0x8000 | size(p.call.callData), { size: 2 }), numberToHex(p.call.gasLimit, { size: 4 }), p.call.callData]))).rejects.toThrow(/MalformedBatch/);
    // The same call framed properly goes through (the two above failed for their framing only).
    expect((await simulate(packed)).result).toBe(0n);
  });
});
