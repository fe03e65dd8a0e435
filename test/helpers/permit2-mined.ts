/**
 * Permit2 payments on a chain the test mines (Anvil --no-mining, blocks ordered by tip): payloads
 * from the official @x402/evm 2.27 clients, the test's own transactions sent ahead of the
 * facilitator's, and a stranger's front-run of a permit through the exact proxy. Shared by the
 * Permit2 verdict tests (test/integration/settlement/permit2-*.test.ts).
 */
import { createWalletClient, defineChain, erc20Abi, http, parseGwei, type Abi, type Address, type Hex, type PrivateKeyAccount } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { expect } from "vitest";
import type { PaymentRequirements } from "@x402/core/types";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { permit2Address, x402ExactPermit2ProxyAddress } from "../../src/contracts/permit2.js";
import { exactPermit2ProxyAbi } from "../../src/permit2/abi.js";
import { addressOf, keys, nodeHolds, type TestChain } from "./chain.js";
import type { PaymentFixture } from "./fixture.js";
import { settlementRows } from "./sdk.js";
import { waitFor } from "./wait.js";

export const NETWORK = "eip155:84532";
export const payTo = addressOf(keys.payTo);
const facilitator = addressOf(keys.facilitator);
const viemChain = defineChain({ id: 84532, name: "anvil", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: ["http://127.0.0.1"] } } });
/** Far above the facilitator's tip: the test's own transaction goes first in the next block. */
export const frontTip = parseGwei("50");

export function requirements(chain: TestChain, scheme: "exact" | "upto", amountAtomic: bigint, overrides: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return {
    scheme,
    network: NETWORK,
    amount: amountAtomic.toString(),
    asset: chain.token,
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2", assetTransferMethod: "permit2", ...(scheme === "upto" ? { facilitatorAddress: facilitator } : {}) },
    ...overrides,
  };
}

/** A payload from the 2.27 client scheme, in the body a resource server sends (`overrides`: e.g. maxTimeoutSeconds). */
export async function body(chain: TestChain, account: PrivateKeyAccount, scheme: "exact" | "upto", amountAtomic: bigint, overrides: Partial<PaymentRequirements> = {}) {
  const req = requirements(chain, scheme, amountAtomic, overrides);
  const client = scheme === "upto" ? new UptoEvmScheme(account) : new ExactEvmScheme(account);
  return resourceServerBody(req, (await client.createPaymentPayload(2, req)).payload);
}

/** The /verify or /settle body a resource server sends for `payload` under `req`. */
function resourceServerBody<P>(req: PaymentRequirements, payload: P) {
  return { x402Version: 2, paymentPayload: { x402Version: 2, resource: { url: "http://127.0.0.1/r" }, accepted: req, payload }, paymentRequirements: req };
}

/**
 * An exact-Permit2 payload from the 2.27 client, signed over a nonce of the test's choosing (the
 * client draws a random one): for tests that burn a word of the payer's nonce bitmap at once.
 */
export async function bodyWithNonce(chain: TestChain, account: PrivateKeyAccount, amountAtomic: bigint, nonce: bigint) {
  const req = requirements(chain, "exact", amountAtomic);
  const signer = { address: account.address, signTypedData: (args: Parameters<PrivateKeyAccount["signTypedData"]>[0]) => account.signTypedData({ ...args, message: { ...args.message, nonce } } as never) };
  const result = await new ExactEvmScheme(signer as never).createPaymentPayload(2, req);
  (result.payload as { permit2Authorization: { nonce: string } }).permit2Authorization.nonce = nonce.toString();
  return resourceServerBody(req, result.payload);
}

export type Body = Awaited<ReturnType<typeof body>>;
export const permitOf = (b: Body) =>
  b.paymentPayload.payload as { permit2Authorization: { nonce: string; deadline: string; from: Address; witness: { to: Address; validAfter: string }; permitted: { token: Address; amount: string } }; signature: Hex };
export const nonceHex = (b: Body) => `0x${BigInt(permitOf(b).permit2Authorization.nonce).toString(16).padStart(64, "0")}`;

export async function settle(f: PaymentFixture, b: unknown, amountAtomic?: bigint): Promise<Record<string, unknown>> {
  const payload = amountAtomic === undefined ? b : { ...(b as Body), paymentRequirements: { ...(b as Body).paymentRequirements, amount: amountAtomic.toString() } };
  const response = await f.facilitator.app.inject({ method: "POST", url: "/settle", payload: payload as Record<string, unknown> });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Record<string, unknown>;
}

/** Sends from `account` into the pool (not mined), with a tip above the facilitator's (`tip`, default frontTip). */
export async function sendFromTest(
  f: PaymentFixture,
  account: PrivateKeyAccount,
  request: { address: Address; abi: Abi; functionName: string; args: readonly unknown[] },
  tip = frontTip,
): Promise<Hex> {
  const wallet = createWalletClient({ account, chain: viemChain, transport: http(f.chain.rpcUrl) });
  const hash = await wallet.writeContract({ ...request, gas: 300_000n, maxPriorityFeePerGas: tip, maxFeePerGas: parseGwei("100") } as never);
  await waitFor("the test's transaction in the pool", () => nodeHolds(f.chain, hash), 10_000, 20);
  return hash;
}

export async function minedApprove(f: PaymentFixture, account: PrivateKeyAccount, amountAtomic: bigint): Promise<void> {
  await sendFromTest(f, account, { address: f.chain.token, abi: erc20Abi as Abi, functionName: "approve", args: [permit2Address, amountAtomic] });
  await f.chain.testClient.mine({ blocks: 1 });
}

/** The exact proxy's settle(permit, owner, witness, signature) arguments for an exact payment's permit. */
export function exactSettleArgs(b: Body) {
  const auth = permitOf(b).permit2Authorization;
  return [
    { permitted: { token: auth.permitted.token, amount: BigInt(auth.permitted.amount) }, nonce: BigInt(auth.nonce), deadline: BigInt(auth.deadline) },
    auth.from,
    { to: auth.witness.to, validAfter: BigInt(auth.witness.validAfter) },
    permitOf(b).signature,
  ] as const;
}

/** Someone other than the facilitator sends the payment's permit to the exact proxy (anyone may: it checks no caller). */
export async function frontRun(f: PaymentFixture, b: Body, tip = frontTip): Promise<Hex> {
  const request = { address: x402ExactPermit2ProxyAddress, abi: exactPermit2ProxyAbi as Abi, functionName: "settle", args: exactSettleArgs(b) };
  return sendFromTest(f, privateKeyToAccount(keys.stranger), request, tip);
}

/** Waits until the facilitator's transaction for this payment is in the node's pool. */
export async function facilitatorSent(f: PaymentFixture, b: Body): Promise<Hex> {
  return waitFor(
    "the facilitator's transaction in the pool",
    async () => {
      const hash = (await settlementRows(f.database.url, nonceHex(b)))[0]?.tx_hash as Hex | undefined;
      return hash && (await nodeHolds(f.chain, hash)) ? hash : undefined;
    },
    15_000,
    25,
  );
}

/** Mines a block whenever the facilitator has a transaction waiting, until `answer` settles. */
export async function mineUntil<T>(f: PaymentFixture, answer: Promise<T>): Promise<T> {
  let done = false;
  void answer.finally(() => (done = true));
  while (!done) {
    const pending = (await f.chain.testClient.request({ method: "txpool_status" } as never)) as { pending: string };
    if (Number(pending.pending) > 0) await f.chain.testClient.mine({ blocks: 1 });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return answer;
}
