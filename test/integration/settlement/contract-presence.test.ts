import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, http, type PublicClient } from "viem";
import { systemClock } from "../../../src/clock.js";
import { batchSettlerAddress } from "../../../src/contracts/batch-settler.js";
import { startAnvil, type AnvilInstance } from "../../../src/sandbox/anvil.js";
import { installBatchSettler } from "../../../src/sandbox/deploy.js";
import { ContractPresence } from "../../../src/settlement/contract-presence.js";
import { startFaultyRpcProxy, type FaultyRpcProxy } from "../../helpers/faulty-rpc-proxy.js";

/**
 * Whether BatchSettler is on a chain is asked once per chain, also when the answer is "no code"
 * (viem reports that as `undefined`, which once read like an RPC fault and was asked again on every
 * settle); only an RPC fault leaves it unknown.
 */
let anvil: AnvilInstance;
let proxy: FaultyRpcProxy;
let client: PublicClient;

beforeAll(async () => {
  anvil = await startAnvil({ chainId: 84532 });
  proxy = await startFaultyRpcProxy({ upstreamUrl: anvil.rpcUrl });
  client = createPublicClient({ transport: http(proxy.url, { retryCount: 0, timeout: 2_000 }) }) as PublicClient;
});
afterAll(async () => {
  await proxy?.stop();
  await anvil?.stop();
});

describe("ContractPresence", () => {
  it("remembers an address without code instead of asking the node on every settle", async () => {
    const presence = new ContractPresence(batchSettlerAddress, systemClock);
    proxy.resetCounts();
    expect(await presence.isDeployed(84532, client)).toBe(false);
    expect(await presence.isDeployed(84532, client)).toBe(false);
    expect(proxy.received("eth_getCode")).toBe(1);
  });

  it("asks again after an RPC fault, and remembers a deployed contract", async () => {
    const presence = new ContractPresence(batchSettlerAddress, systemClock);
    proxy.set("drop");
    expect(await presence.isDeployed(84532, client)).toBe(false); // not known: settle alone this time
    proxy.set("pass");
    await installBatchSettler(anvil.rpcUrl);
    proxy.resetCounts();
    expect(await presence.isDeployed(84532, client)).toBe(true);
    expect(await presence.isDeployed(84532, client)).toBe(true);
    expect(proxy.received("eth_getCode")).toBe(1);
  });
});
