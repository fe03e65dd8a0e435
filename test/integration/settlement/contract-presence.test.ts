import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, http, type PublicClient } from "viem";
import { systemClock } from "../../../src/clock.js";
import { batchSettlerAddress } from "../../../src/contracts/batch-settler.js";
import { startAnvil, type AnvilInstance } from "../../../src/sandbox/anvil.js";
import { installBatchSettler, installPermit2, installX402Permit2Proxies } from "../../../src/sandbox/deploy.js";
import { DependencyUnavailableError } from "../../../src/errors.js";
import { Permit2Contracts } from "../../../src/permit2/presence.js";
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

describe("Permit2Contracts.listed (what /supported asks)", () => {
  it("asks a chain without Permit2 once, then answers from memory until the recheck", async () => {
    const contracts = new Permit2Contracts(systemClock);
    proxy.resetCounts();
    expect(await contracts.listed(84532, client, "upto", 1_000)).toBe(false);
    expect(await contracts.listed(84532, client, "upto", 1_000)).toBe(false);
    expect(proxy.received("eth_getCode")).toBe(2); // Permit2 and the upto proxy, once each
  });

  it("during an RPC outage answers from the last known state, without asking on every request; verify's deployed() is a 503", async () => {
    const unknown = new Permit2Contracts(systemClock);
    proxy.set("drop");
    proxy.resetCounts();
    expect(await unknown.listed(84532, client, "upto", 1_000)).toBe(false); // never answered: not listed
    const askedOnce = proxy.received("eth_getCode");
    expect(await unknown.listed(84532, client, "upto", 1_000)).toBe(false);
    expect(proxy.received("eth_getCode")).toBe(askedOnce); // the fault holdoff: no new call
    await expect(unknown.deployed(84532, client, "upto")).rejects.toBeInstanceOf(DependencyUnavailableError);

    proxy.set("pass");
    await installPermit2(anvil.rpcUrl);
    await installX402Permit2Proxies(anvil.rpcUrl);
    const known = new Permit2Contracts(systemClock);
    expect(await known.listed(84532, client, "upto", 1_000)).toBe(true);
    proxy.set("drop");
    proxy.resetCounts();
    expect(await known.listed(84532, client, "upto", 1_000)).toBe(true); // kept through the outage
    expect(await known.deployed(84532, client, "upto")).toBe(true); // verify too: code, once seen, stays
    expect(proxy.received("eth_getCode")).toBe(0);
    proxy.set("pass");
  });
});
