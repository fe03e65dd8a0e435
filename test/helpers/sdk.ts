/**
 * Shared pieces for the SDK interop tests (test/e2e/sdk-*.test.ts): a seller app (express or
 * hono) listening on 127.0.0.1, a fetch and an axios instance that record what the SDK sends,
 * base64-JSON header decoding, and the on-chain / Postgres facts those tests assert.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import axios, { AxiosError, type AxiosInstance } from "axios";
import type { Express } from "express";
import type { Hono } from "hono";
import { parseAbi, type Address, type Hex } from "viem";
import { withPgClient } from "./database.js";
import type { TestChain } from "./chain.js";

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

/** A listening server's URL, and a close that ends its keep-alive connections too. */
function runningServer(server: Server): RunningServer {
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Listens on 127.0.0.1 with a free port. */
export async function listenLocal(app: Express): Promise<RunningServer> {
  const server: Server = await new Promise((resolve, reject) => {
    const started = app.listen(0, "127.0.0.1", () => resolve(started));
    started.once("error", reject);
  });
  return runningServer(server);
}

/** A hono app served by @hono/node-server on 127.0.0.1 with a free port. */
export async function listenHono(app: Hono): Promise<RunningServer> {
  const server = await new Promise<Server>((resolve, reject) => {
    const started = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(started as Server)) as Server;
    started.once("error", reject);
  });
  return runningServer(server);
}

export interface RecordedRequest {
  url: string;
  headers: Headers;
}

/** A fetch for the SDKs to wrap: it records every outgoing request's URL and headers, then fetches. */
export function recordingFetch(): { fetch: typeof globalThis.fetch; requests: RecordedRequest[] } {
  const requests: RecordedRequest[] = [];
  const recorder: typeof globalThis.fetch = async (input, init) => {
    const request = new Request(input, init);
    requests.push({ url: request.url, headers: new Headers(request.headers) });
    return globalThis.fetch(request);
  };
  return { fetch: recorder, requests };
}

/**
 * A fresh axios instance for the SDKs to wrap: a request interceptor records every outgoing
 * request's URL and headers (the payment retry goes through it again).
 */
export function recordingAxios(): { axios: AxiosInstance; requests: RecordedRequest[] } {
  const requests: RecordedRequest[] = [];
  const instance = axios.create();
  instance.interceptors.request.use((config) => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(config.headers.toJSON())) if (value !== undefined && value !== null) headers.set(name, String(value));
    requests.push({ url: instance.getUri(config), headers });
    return config;
  });
  return { axios: instance, requests };
}

/** What a buyer ended with, the same for a fetch and an axios SDK: the final response and every request it sent. */
export interface Purchase {
  status: number;
  body: string;
  headers: Headers;
  requests: RecordedRequest[];
}

/** GET through a payment-wrapped fetch. */
export async function purchaseViaFetch(fetchWithPayment: typeof globalThis.fetch, requests: RecordedRequest[], url: string): Promise<Purchase> {
  const response = await fetchWithPayment(url);
  return { status: response.status, body: await response.text(), headers: response.headers, requests };
}

/** GET through a payment-wrapped axios. axios rejects on a 402 (also the one after a refused payment): the purchase is then the error's response. */
export async function purchaseViaAxios(instance: AxiosInstance, requests: RecordedRequest[], url: string): Promise<Purchase> {
  const response = await instance.get(url).catch((error: unknown) => {
    if (error instanceof AxiosError && error.response) return error.response;
    throw error;
  });
  const headers = new Headers();
  for (const [name, value] of Object.entries(response.headers)) if (typeof value === "string") headers.set(name, value);
  const body = typeof response.data === "string" ? response.data : JSON.stringify(response.data);
  return { status: response.status, body, headers, requests };
}

/** base64(UTF-8 JSON) → object, decoded independently of the SDKs. */
export function decodeBase64Json<T = Record<string, unknown>>(value: string | null | undefined): T {
  if (!value) throw new Error("header missing");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new Error(`not standard base64: ${value.slice(0, 40)}…`);
  return JSON.parse(Buffer.from(value, "base64").toString("utf8")) as T;
}

/** AuthorizationUsed(payer, nonce) logs: how many times this authorization was spent on chain. */
export async function authorizationsUsed(chain: TestChain, payer: Address, nonce: Hex): Promise<number> {
  const logs = await chain.publicClient.getContractEvents({
    address: chain.token,
    abi: parseAbi(["event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)"]),
    eventName: "AuthorizationUsed",
    args: { authorizer: payer, nonce },
    fromBlock: 0n,
  });
  return logs.length;
}

/** Transfer(from → to) logs of the token in one transaction. */
export async function transfersInTx(chain: TestChain, txHash: Hex, from: Address, to: Address) {
  const receipt = await chain.publicClient.getTransactionReceipt({ hash: txHash });
  const logs = await chain.publicClient.getContractEvents({
    address: chain.token,
    abi: parseAbi(["event Transfer(address indexed from, address indexed to, uint256 value)"]),
    eventName: "Transfer",
    args: { from, to },
    blockHash: receipt.blockHash,
  });
  return logs.filter((log) => log.transactionHash === txHash);
}

/** The settlements rows of one authorization nonce (stored lowercase). */
export async function settlementRows(databaseUrl: string, nonce: string): Promise<Record<string, unknown>[]> {
  return withPgClient(databaseUrl, async (client) => (await client.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows);
}

export async function settlementRowsOfPayer(databaseUrl: string, payer: Address): Promise<Record<string, unknown>[]> {
  return withPgClient(databaseUrl, async (client) => (await client.query("select * from settlements where payer = $1", [payer.toLowerCase()])).rows);
}
