/**
 * One owner's concurrent payments, each with the eip2612GasSponsoring permit the 2.27 client signs
 * when its allowance to Permit2 is short: the permits share the token's nonce, so only one can be
 * used (review 16 M1). On 2 s blocks, behind a proxy that makes eth_estimateGas use `latest` (as
 * reth and op-geth do; Anvil defaults to pending, which hides the problem): none of our
 * transactions reverts, at most one settles with the permit, the others are refused cleanly.
 */
import http from "node:http";
import type { Address, Hex, PrivateKeyAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PaymentRequirements } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";

const NETWORK = "eip155:84532";
const payTo = addressOf(keys.payTo);
const signerAddresses = [addressOf(keys.facilitator), addressOf(keys.facilitator2)].map((address) => address.toLowerCase());
let chain: TestChain;
let database: TestDatabase;
let facilitator: TestFacilitator;
let proxy: { url: string; stop(): Promise<void> };

/** Forwards JSON-RPC; an eth_estimateGas without a block tag gets "latest". */
async function latestEstimateProxy(upstream: string): Promise<{ url: string; stop(): Promise<void> }> {
  const withLatest = (call: { method?: string; params?: unknown[] }) => {
    if (call?.method === "eth_estimateGas" && Array.isArray(call.params) && call.params.length === 1) call.params.push("latest");
    return call;
  };
  const server = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const parsed = JSON.parse(Buffer.concat(chunks).toString()) as unknown;
    const body = Array.isArray(parsed) ? parsed.map(withLatest) : withLatest(parsed as { method?: string; params?: unknown[] });
    const upstreamResponse = await fetch(upstream, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    response.writeHead(upstreamResponse.status, { "content-type": "application/json" });
    response.end(await upstreamResponse.text());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, stop: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

beforeAll(async () => {
  chain = await startTestChain({ blockTimeSeconds: 2 });
  proxy = await latestEstimateProxy(chain.rpcUrl);
  database = await createTestDatabase("permit2_2612_lanes");
  facilitator = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [proxy.url], token: chain.token, signerKeys: [keys.facilitator, keys.facilitator2], limits: { settleBudgetMs: 15_000 } });
}, 60_000);
afterAll(async () => {
  await facilitator?.close();
  await proxy?.stop();
  await database?.drop();
  await chain?.stop();
});

async function freshPayer(): Promise<PrivateKeyAccount> {
  const account = privateKeyToAccount(generatePrivateKey());
  await chain.mint(account.address, 10_000_000n);
  await chain.testClient.setBalance({ address: account.address, value: 10n ** 18n });
  return account;
}

function requirements(scheme: "exact" | "upto", amountAtomic: bigint): PaymentRequirements {
  return {
    scheme,
    network: NETWORK,
    amount: amountAtomic.toString(),
    asset: chain.token,
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2", assetTransferMethod: "permit2", ...(scheme === "upto" ? { facilitatorAddress: addressOf(keys.facilitator) } : {}) },
  };
}

async function paymentWithPermit(account: PrivateKeyAccount, scheme: "exact" | "upto", amountAtomic: bigint) {
  const signer = toClientEvmSigner(account, chain.publicClient);
  const client = scheme === "upto" ? new UptoEvmScheme(signer) : new ExactEvmScheme(signer);
  const accepted = requirements(scheme, amountAtomic);
  const result = await client.createPaymentPayload(2, accepted, { extensions: { eip2612GasSponsoring: {} } });
  expect(result.extensions, "the 2.27 client adds the EIP-2612 permit when the allowance is short").toBeDefined();
  return { x402Version: 2, paymentPayload: { x402Version: 2, resource: { url: "http://127.0.0.1/r" }, accepted, payload: result.payload, extensions: result.extensions }, paymentRequirements: accepted };
}

async function settle(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await facilitator.app.inject({ method: "POST", url: "/settle", payload: body as Record<string, unknown> });
  return { status: response.statusCode, json: response.json() as Record<string, unknown> };
}

/** Our signers' transactions in blocks from..head whose calldata names `owner`, and how many reverted. */
async function ourTransactionsFor(owner: Address, fromBlock: bigint): Promise<{ sent: number; reverted: number }> {
  const head = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
  let sent = 0;
  let reverted = 0;
  for (let number = fromBlock; number <= head; number += 1n) {
    const block = await chain.publicClient.getBlock({ blockNumber: number, includeTransactions: true });
    for (const tx of block.transactions as { from: Address; hash: Hex; input: Hex }[]) {
      if (!signerAddresses.includes(tx.from.toLowerCase()) || !tx.input.toLowerCase().includes(owner.slice(2).toLowerCase())) continue;
      sent += 1;
      if ((await chain.publicClient.getTransactionReceipt({ hash: tx.hash })).status !== "success") reverted += 1;
    }
  }
  return { sent, reverted };
}

async function waitForBlocks(count: bigint): Promise<void> {
  const target = (await chain.publicClient.getBlockNumber({ cacheTime: 0 })) + count;
  while ((await chain.publicClient.getBlockNumber({ cacheTime: 0 })) < target) await new Promise((resolve) => setTimeout(resolve, 200));
}

describe("one owner's concurrent EIP-2612 permits (they share the token's nonce)", () => {
  for (const scheme of ["exact", "upto"] as const) {
    it(`${scheme}: 6 at once → one settles with the permit, the rest refused cleanly, no transaction of ours reverts`, async () => {
      const owner = await freshPayer();
      await waitForBlocks(1n);
      const fromBlock = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
      const bodies = await Promise.all(Array.from({ length: 6 }, () => paymentWithPermit(owner, scheme, 10_000n)));
      const answers = await Promise.all(bodies.map((body) => settle(scheme === "upto" ? { ...body, paymentRequirements: { ...body.paymentRequirements, amount: "4000" } } : body)));
      // A settlement_pending answer would still be in flight: wait for two more blocks before counting.
      await waitForBlocks(2n);
      const successes = answers.filter((answer) => answer.json.success === true);
      const refused = answers.filter((answer) => answer.json.success !== true);
      expect(successes.length).toBe(1);
      for (const answer of refused) {
        expect([429, 200]).toContain(answer.status);
        expect(["payer_busy", "permit2_allowance_required"]).toContain(answer.json.errorReason ?? answer.json.error);
        expect(answer.json.transaction ?? "").toBe("");
      }
      const { sent, reverted } = await ourTransactionsFor(owner.address, fromBlock);
      expect({ sent, reverted }).toEqual({ sent: successes.length, reverted: 0 });

      // Afterwards the used permit is refused without gas: its nonce is no longer the token's.
      const refusedBody = bodies[answers.findIndex((answer) => answer.json.success !== true)]!;
      const again = await settle(scheme === "upto" ? { ...refusedBody, paymentRequirements: { ...refusedBody.paymentRequirements, amount: "10000" } } : refusedBody);
      expect(again.json).toMatchObject({ success: false, errorReason: "permit2_allowance_required" });
      expect(String(again.json.errorMessage ?? again.json.message ?? "")).toMatch(/nonce/);
      expect(await ourTransactionsFor(owner.address, fromBlock)).toEqual({ sent: 1, reverted: 0 });
    }, 90_000);
  }
});
