/**
 * What the facilitator encodes and decodes (src/permit2/abi.ts, human-readable) against the
 * @x402/evm 2.27 SDK's proxy ABIs and the local stand-ins' Permit2 errors: same signatures, hence
 * the same selectors, so our calls reach the public contracts' code.
 */
import type { Abi } from "viem";
import { describe, expect, it } from "vitest";
import { x402ExactPermit2ProxyABI, x402UptoPermit2ProxyABI } from "@x402/evm";
import { exactPermit2ProxyAbi, permit2Abi, uptoPermit2ProxyAbi } from "../../../src/permit2/abi.js";
import { permit2Artifact, x402ExactPermit2ProxyArtifact, x402UptoPermit2ProxyArtifact } from "../../../src/sandbox/artifacts.js";
import { abiSignatures as signatures } from "../../helpers/abi-signatures.js";

describe("src/permit2/abi.ts", () => {
  it.each([
    ["exact", exactPermit2ProxyAbi as Abi, x402ExactPermit2ProxyABI as unknown as Abi, x402ExactPermit2ProxyArtifact.abi],
    ["upto", uptoPermit2ProxyAbi as Abi, x402UptoPermit2ProxyABI as unknown as Abi, x402UptoPermit2ProxyArtifact.abi],
  ])("%s proxy: each of our items is in the SDK's ABI or the contract's, with the same signature", (_name, ours, sdkAbi, contractAbi) => {
    const known = new Set([...signatures(sdkAbi), ...signatures(contractAbi)]);
    expect(signatures(ours).filter((signature) => !known.has(signature))).toEqual([]);
    // The calls we send are the SDK's own.
    const sdk = new Set(signatures(sdkAbi));
    expect(signatures(ours).filter((signature) => signature.startsWith("function ") && !sdk.has(signature))).toEqual([]);
  });

  it("Permit2: nonceBitmap and the errors are the contract's", () => {
    const known = new Set(signatures(permit2Artifact.abi));
    expect(signatures(permit2Abi as Abi).filter((signature) => !known.has(signature))).toEqual([]);
  });
});
