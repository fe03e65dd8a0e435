import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {  encodeFunctionData, keccak256, parseAbi, toFunctionSelector, toHex, type Address, type Hex } from "viem";
import { anvilDevPrivateKeys } from "../../../src/sandbox/anvil.js";
import { multicall3Address } from "../../../src/exact-evm/multicall3.js";
import { defaultLimits } from "../../../src/config.js";
import { deployContract, delegateEoa, walletPayment } from "../../helpers/attackers.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { startFaultyRpcProxy, recentParamsMax, type FaultyRpcProxy } from "../../helpers/faulty-rpc-proxy.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import {  signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";

/**
 * Issue 11.5, unbounded simulation. A deployed ERC-1271 payer whose isValidSignature burns every
 * unit of gas it is given (GasBurnerWallet): every /verify and /settle asks it whether it accepts
 * the signature, and an eth_call without a `gas` field makes the node run it up to the node's own
 * cap (tens of millions of gas of node time per request, for free). Now every eth_call about a
 * payment carries an explicit gas limit, the settlement cap (GAS_PER_SETTLEMENT_MAX). The
 * facilitator talks to Anvil through a recording proxy, so the test sees the limits actually sent
 * on the wire. The same for an EIP-7702 key delegated to a burner, whose code the token runs in
 * every simulation and in /settle's gas estimate (sent as a raw eth_estimateGas with `gas`: viem's
 * estimateGas() drops that parameter).
 */
const payTo = addressOf(keys.payTo);
const signer = addressOf(keys.facilitator);
const amountAtomic = 10_000n;
const cap = defaultLimits.gasPerSettlementMax;

const f = usePaymentFixture({ label: "erc1271_gas_burner" });
let proxy: FaultyRpcProxy;
let facilitator: TestFacilitator;
let burner: Address;

beforeAll(async () => {
  burner = await deployContract(f.chain, "GasBurnerWallet");
  await f.chain.mint(burner, 1_000_000n); // a funded payer: the balance is not what refuses it
  proxy = await startFaultyRpcProxy({ upstreamUrl: f.chain.rpcUrl });
  facilitator = await startTestFacilitator({ databaseUrl: f.database.url, rpcUrls: [proxy.url], token: f.chain.token });
});

afterAll(async () => {
  await facilitator?.close();
  await proxy?.stop();
});

type CallObject = { to?: string; data?: string; gas?: string };

/** The first param (the call object) of every eth_call / eth_estimateGas the facilitator sent since the last reset. */
function sentCalls(): { method: string; call: CallObject }[] {
  return ["eth_call", "eth_estimateGas"].flatMap((method) => {
    const params = proxy.lastParams(method);
    expect(params.length).toBe(proxy.received(method)); // none fell out of the bounded record
    expect(params.length).toBeLessThan(recentParamsMax);
    return params.map((p) => ({ method, call: (p[0] ?? {}) as CallObject }));
  });
}

describe("a gas-burning ERC-1271 wallet cannot make the node run to its own cap", () => {
  it("control: the wallet really burns whatever it is given", async () => {
    const payment = await walletPayment(f.chain, { wallet: burner, payTo, valueAtomic: amountAtomic }); // who signs does not matter: the wallet's code decides
    const block = await f.chain.publicClient.getBlock();
    const data = encodeFunctionData({
      abi: parseAbi(["function isValidSignature(bytes32, bytes) view returns (bytes4)"]),
      functionName: "isValidSignature",
      args: [keccak256("0x01"), payment.signature],
    });
    // What one call costs the node, with and without a limit (eth_createAccessList reports gasUsed).
    const bounded = await f.chain.publicClient.createAccessList({ account: signer, to: burner, data, gas: cap });
    expect(bounded.gasUsed).toBeLessThanOrEqual(cap);
    expect(bounded.gasUsed).toBeGreaterThan(cap - 10_000n); // it burnt (nearly) all it was given
    // Without a limit the node runs it to its own cap (Anvil: the block gas limit) and it dies there,
    // out of gas: an internal error (-32603) that the facilitator used to read as "RPC unavailable".
    await expect(f.chain.publicClient.createAccessList({ account: signer, to: burner, data })).rejects.toThrow(/OutOfGas/);
    console.log(`[attack] ERC-1271 gas burner: one isValidSignature call burns ${bounded.gasUsed} gas under the facilitator's limit of ${cap}; without a gas field it runs to the node's cap (Anvil block gas limit ${block.gasLimit}) and fails OutOfGas`);
  });

  it.each([
    ["a 65-byte signature (not the wallet's key: ERC-1271 decides)", (signature: Hex) => signature],
    ["a long signature (smart-wallet format)", (signature: Hex) => `${signature}${"ab".repeat(64)}` as Hex],
  ] as const)("refuses a payment with %s, no 5xx, nothing broadcast, every eth_call bounded by the settlement cap", async (_what, shape) => {
    const payment = await walletPayment(f.chain, { wallet: burner, payTo, valueAtomic: amountAtomic }); // who signs does not matter: the wallet's code decides
    const body = v2Body({ ...payment, signature: shape(payment.signature) }, v2Requirements({ token: f.chain.token, payTo, amountAtomic }));
    const txCountBefore = await f.chain.publicClient.getTransactionCount({ address: signer });
    proxy.resetCounts();

    const verified = await facilitator.app.inject({ method: "POST", url: "/verify", payload: body });
    const settles = [];
    for (let i = 0; i < 2; i++) settles.push(await facilitator.app.inject({ method: "POST", url: "/settle", payload: body }));

    // First what was asked of the node: the wallet was asked (once per request at least), and every
    // eth_call / eth_estimateGas carried a gas limit within the cap.
    const calls = sentCalls();
    const asked = calls.filter(({ call }) => call.to?.toLowerCase() === burner.toLowerCase());
    expect(asked.length).toBeGreaterThanOrEqual(3);
    for (const { method, call } of calls) {
      expect(call.gas, `${method} to ${call.to} without a gas limit`).toBeDefined();
      expect(BigInt(call.gas!), `${method} to ${call.to} with gas ${call.gas}`).toBeLessThanOrEqual(cap);
    }

    // Then the answers: refusals, never a 5xx.
    expect(verified.statusCode).toBe(200);
    expect(verified.json()).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_signature", payer: burner });
    for (const settled of settles) {
      expect(settled.statusCode).toBe(200);
      expect(settled.json()).toMatchObject({ success: false, errorReason: "invalid_exact_evm_signature", transaction: "" });
    }

    // Nothing sent, nothing claimed.
    expect(await f.chain.publicClient.getTransactionCount({ address: signer })).toBe(txCountBefore);
    expect(proxy.transactionsReceived()).toBe(0);
    const rows = await withPgClient(f.database.url, async (c) => (await c.query("select * from settlements where payer = $1", [burner.toLowerCase()])).rows);
    expect(rows).toEqual([]);
    console.log(
      `[attack] ERC-1271 gas burner (${_what}): ${calls.length} eth_call/eth_estimateGas over 1 verify + 2 settles, gas limits sent: ${[...new Set(calls.map(({ call }) => BigInt(call.gas!)))].join(", ")} (cap ${cap}); 0 gas spent by the signer`,
    );
  });
});

const transferWithAuthorizationSelector = toFunctionSelector(
  "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
);
/** Selectors of the token's own view functions, which run no payer code: balanceOf, authorizationState, name, version. */
const tokenViewSelectors = [
  toFunctionSelector("balanceOf(address)"),
  toFunctionSelector("authorizationState(address,bytes32)"),
  toFunctionSelector("name()"),
  toFunctionSelector("version()"),
];

describe("an EIP-7702 key whose delegate burns gas in the token's signature check", () => {
  const attackerKey = anvilDevPrivateKeys[7]!;
  const attacker = addressOf(attackerKey);

  beforeAll(async () => {
    await f.chain.mint(attacker, 1_000_000n);
    await delegateEoa(f.chain, attackerKey, await deployContract(f.chain, "GasBurnerDelegate"));
    expect(await f.chain.publicClient.getCode({ address: attacker })).toMatch(/^0xef0100/i);
  });

  /**
   * A valid ECDSA signature by the key itself: the facilitator's signature check passes (a plain
   * key), and USDC (v2.2: ERC-1271 when the signer has code) runs the delegate in every simulation.
   */
  async function attack() {
    const payment = await signPayment({ payerKey: attackerKey, token: f.chain.token, chainId: f.chain.chainId, payTo, valueAtomic: amountAtomic });
    const body = v2Body(payment, v2Requirements({ token: f.chain.token, payTo, amountAtomic }));
    const txCountBefore = await f.chain.publicClient.getTransactionCount({ address: signer });
    proxy.resetCounts();
    const verified = await facilitator.app.inject({ method: "POST", url: "/verify", payload: body });
    const settled = await facilitator.app.inject({ method: "POST", url: "/settle", payload: body });
    return { payment, verified, settled, txCountBefore, calls: sentCalls() };
  }

  it("bounds every simulation eth_call: refused at verify and settle, nothing broadcast, the row failed before broadcast", async () => {
    const { payment, verified, settled, txCountBefore, calls } = await attack();

    const tokenViewsWithoutGas = new Set<string>();
    for (const { method, call } of calls.filter(({ method }) => method === "eth_call")) {
      const selector = call.data?.slice(0, 10).toLowerCase() as Hex | undefined;
      // The token's own views (balanceOf, authorizationState, name, version) run no payer code.
      if (call.gas === undefined && call.to?.toLowerCase() === f.chain.token.toLowerCase() && tokenViewSelectors.includes(selector!)) {
        tokenViewsWithoutGas.add(selector!);
        continue;
      }
      expect(call.gas, `${method} to ${call.to} (${selector}) without a gas limit`).toBeDefined();
      // Verify's one-round-trip Multicall3 read gives the simulation the cap and the reads beside it 100k.
      const allowed = call.to?.toLowerCase() === multicall3Address.toLowerCase() ? cap + 100_000n : cap;
      expect(BigInt(call.gas!), `${method} to ${call.to} (${selector}) with gas ${call.gas}`).toBeLessThanOrEqual(allowed);
    }
    // The simulations themselves were among them, bounded; /settle got as far as its gas estimate.
    expect(calls.some(({ method, call }) => method === "eth_call" && call.data?.startsWith(transferWithAuthorizationSelector) && call.gas !== undefined)).toBe(true);
    expect(calls.filter(({ method }) => method === "eth_estimateGas").map(({ call }) => call.data?.slice(0, 10))).toEqual([transferWithAuthorizationSelector]);

    expect(verified.statusCode).toBe(200);
    expect(verified.json()).toMatchObject({ isValid: false, payer: attacker });
    expect(settled.statusCode).toBe(200);
    expect(settled.json()).toMatchObject({ success: false, transaction: "", payer: attacker });
    expect(await f.chain.publicClient.getTransactionCount({ address: signer })).toBe(txCountBefore);
    expect(proxy.transactionsReceived()).toBe(0);
    const rows = await withPgClient(f.database.url, async (c) => (await c.query("select * from settlements where nonce = $1", [payment.authorization.nonce.toLowerCase()])).rows);
    expect(rows.every((row) => row.status === "failed" && row.broadcast_at === null && row.tx_hash === null)).toBe(true);
    console.log(
      `[attack] EIP-7702 gas-burning delegate, alone: verify ${verified.json().invalidReason}, settle ${settled.json().errorReason} (row: ${rows.map((row) => `${row.status}/${row.error_reason}`).join(",") || "none"}); ` +
        `eth_call gas limits sent: ${[...new Set(calls.filter(({ method, call }) => method === "eth_call" && call.gas).map(({ call }) => BigInt(call.gas!)))].join(", ")}; ` +
        `token views sent without a gas field: ${[...tokenViewsWithoutGas].join(", ") || "none"}; 0 gas spent by the signer`,
    );
  });

  // viem (2.57, actions/public/estimateGas.ts) takes `gas` out of estimateGas()'s arguments and never
  // puts it in the eth_estimateGas request, so prepare-sign-send.ts sends the request itself.
  it("bounds /settle's gas estimate by the settlement cap", async () => {
    const { calls } = await attack();
    const estimates = calls.filter(({ method }) => method === "eth_estimateGas");
    expect(estimates.length).toBeGreaterThan(0);
    // What the estimate as sent costs the node: one run of it at the node's own cap (callTracer's
    // gasUsed). A measurement only: it must not be what makes this test fail.
    const [sent] = estimates;
    const gasUsedOf = async (call: CallObject) =>
      BigInt(((await f.chain.publicClient.request({ method: "debug_traceCall" as never, params: [call, "latest", { tracer: "callTracer" }] as never })) as { gasUsed: Hex }).gasUsed);
    try {
      console.log(
        `[attack] EIP-7702 delegate: /settle's eth_estimateGas sent with gas=${sent!.call.gas ?? "none"}; one run of it costs the node ${await gasUsedOf(sent!.call)} gas as sent, ${await gasUsedOf({ ...sent!.call, gas: toHex(cap) })} with gas=${cap}`,
      );
    } catch (error) {
      console.log(`[attack] EIP-7702 delegate: could not trace the estimate: ${String(error).split("\n")[0]}`);
    }
    for (const { call } of estimates) {
      expect(call.gas, "eth_estimateGas without a gas limit").toBeDefined();
      expect(BigInt(call.gas!)).toBeLessThanOrEqual(cap);
    }
  });
});
