/**
 * What the tests of one owner's concurrent EIP-2612 permits share (review 16 M1): an RPC proxy that
 * makes eth_estimateGas use `latest` (as reth and op-geth do; Anvil defaults to pending, which hides
 * the problem), payers, 2.27 client payloads carrying the eip2612GasSponsoring permit, and a count
 * of our signers' transactions for an owner, read from the blocks.
 */
import http from "node:http";
import type { Address, Hex, PrivateKeyAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { expect } from "vitest";
import type { PaymentRequirements } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import type { TestChain } from "./chain.js";

export const permitNetwork = "eip155:84532";

/** Forwards JSON-RPC; an eth_estimateGas without a block tag gets "latest". */
export async function latestEstimateProxy(upstream: string): Promise<{ url: string; stop(): Promise<void> }> {
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

/** A new key holding 10 USDC and 1 ETH, with no allowance to Permit2 (so the client signs a permit). */
export async function freshPayer(chain: TestChain): Promise<PrivateKeyAccount> {
  const account = privateKeyToAccount(generatePrivateKey());
  await chain.mint(account.address, 10_000_000n);
  await chain.testClient.setBalance({ address: account.address, value: 10n ** 18n });
  return account;
}

export interface PermitPaymentOptions {
  chain: TestChain;
  payTo: Address;
  /** upto's witness facilitator (the key that must send it). */
  uptoFacilitator: Address;
}

function permit2Requirements(options: PermitPaymentOptions, scheme: "exact" | "upto", amountAtomic: bigint): PaymentRequirements {
  return {
    scheme,
    network: permitNetwork,
    amount: amountAtomic.toString(),
    asset: options.chain.token,
    payTo: options.payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2", assetTransferMethod: "permit2", ...(scheme === "upto" ? { facilitatorAddress: options.uptoFacilitator } : {}) },
  };
}

/** A /settle body the 2.27 client builds, with its EIP-2612 permit (asserted present). */
export async function paymentWithPermit(options: PermitPaymentOptions, account: PrivateKeyAccount, scheme: "exact" | "upto", amountAtomic: bigint) {
  const signer = toClientEvmSigner(account, options.chain.publicClient);
  const client = scheme === "upto" ? new UptoEvmScheme(signer) : new ExactEvmScheme(signer);
  const accepted = permit2Requirements(options, scheme, amountAtomic);
  const result = await client.createPaymentPayload(2, accepted, { extensions: { eip2612GasSponsoring: {} } });
  expect(result.extensions, "the 2.27 client adds the EIP-2612 permit when the allowance is short").toBeDefined();
  return { x402Version: 2, paymentPayload: { x402Version: 2, resource: { url: "http://127.0.0.1/r" }, accepted, payload: result.payload, extensions: result.extensions }, paymentRequirements: accepted };
}

/** Transactions from `signerAddresses` in blocks from..head whose calldata names `owner`, and how many reverted. */
export async function ourTransactionsFor(chain: TestChain, signerAddresses: readonly string[], owner: Address, fromBlock: bigint): Promise<{ sent: number; reverted: number }> {
  const signers = signerAddresses.map((address) => address.toLowerCase());
  const head = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
  let sent = 0;
  let reverted = 0;
  for (let number = fromBlock; number <= head; number += 1n) {
    const block = await chain.publicClient.getBlock({ blockNumber: number, includeTransactions: true });
    for (const tx of block.transactions as { from: Address; hash: Hex; input: Hex }[]) {
      if (!signers.includes(tx.from.toLowerCase()) || !tx.input.toLowerCase().includes(owner.slice(2).toLowerCase())) continue;
      sent += 1;
      if ((await chain.publicClient.getTransactionReceipt({ hash: tx.hash })).status !== "success") reverted += 1;
    }
  }
  return { sent, reverted };
}

/** Resolves once the chain's head is `count` blocks past where it is now. */
export async function waitForBlocks(chain: TestChain, count: bigint): Promise<void> {
  const target = (await chain.publicClient.getBlockNumber({ cacheTime: 0 })) + count;
  while ((await chain.publicClient.getBlockNumber({ cacheTime: 0 })) < target) await new Promise((resolve) => setTimeout(resolve, 200));
}
