/**
 * The local Permit2 proxies expose everything the @x402/evm 2.27 SDK's proxy ABIs name, with the
 * same signatures (hence selectors): the facilitator may call them with the SDK's ABI, and a
 * signature drift would show here without a chain.
 */
import type { Abi } from "viem";
import { describe, expect, it } from "vitest";
import { x402ExactPermit2ProxyABI, x402UptoPermit2ProxyABI } from "@x402/evm";
import { x402ExactPermit2ProxyArtifact, x402UptoPermit2ProxyArtifact } from "../../../src/sandbox/artifacts.js";
import { abiSignatures as signatures } from "../../helpers/abi-signatures.js";

describe("x402 Permit2 proxy ABIs", () => {
  it.each([
    ["exact", x402ExactPermit2ProxyABI as unknown as Abi, x402ExactPermit2ProxyArtifact.abi],
    ["upto", x402UptoPermit2ProxyABI as unknown as Abi, x402UptoPermit2ProxyArtifact.abi],
  ])("%s: every function, event and error of the SDK's ABI is in ours, with the same signature", (_name, sdkAbi, ourAbi) => {
    const ours = new Set(signatures(ourAbi));
    const sdk = signatures(sdkAbi);
    expect(sdk.length).toBeGreaterThan(10);
    expect(sdk.filter((signature) => !ours.has(signature))).toEqual([]);
  });

  it("settle and settleWithPermit take the SDK's struct layouts", () => {
    const settle = (abi: Abi) => signatures(abi).filter((signature) => /^function settle/.test(signature)).sort();
    expect(settle(x402ExactPermit2ProxyArtifact.abi)).toEqual([
      "function settle(((address,uint256),uint256,uint256),address,(address,uint256),bytes)",
      "function settleWithPermit((uint256,uint256,bytes32,bytes32,uint8),((address,uint256),uint256,uint256),address,(address,uint256),bytes)",
    ]);
    expect(settle(x402UptoPermit2ProxyArtifact.abi)).toEqual([
      "function settle(((address,uint256),uint256,uint256),uint256,address,(address,address,uint256),bytes)",
      "function settleWithPermit((uint256,uint256,bytes32,bytes32,uint8),((address,uint256),uint256,uint256),uint256,address,(address,address,uint256),bytes)",
    ]);
  });
});
