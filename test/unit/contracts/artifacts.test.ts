/**
 * The committed contract artifacts must match the sources: the fingerprint of the current sources
 * (+ solc version + settings) is compared with the one stored at build time, without compiling.
 * On failure: run `npm run contracts:build` and commit contracts/build/.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { buildDir, sourceHash } from "../../../scripts/contracts-compiler.js";
import {
  multicall3Artifact,
  permit2Artifact,
  smartWalletArtifact,
  smartWalletFactoryArtifact,
  testUsdcArtifact,
  x402ExactPermit2ProxyArtifact,
  x402UptoPermit2ProxyArtifact,
} from "../../../src/sandbox/artifacts.js";

const EXPECTED_CONTRACTS = ["BatchSettler", "Erc6492Probe", "Multicall3", "SmartWallet", "SmartWalletFactory", "TestUSDC", "JunkFactory", "HollowFactory", "GasBurnerWallet", "GasBurnerDelegate", "Permit2", "X402ExactPermit2Proxy", "X402UptoPermit2Proxy"];

describe("contract artifacts", () => {
  it("exist for every contract the sandbox uses", () => {
    const built = readdirSync(buildDir)
      .filter((file) => file.endsWith(".json"))
      .map((file) => path.basename(file, ".json"));
    expect(built).toEqual(expect.arrayContaining(EXPECTED_CONTRACTS));
  });

  it("are current: every artifact carries the hash of today's sources", () => {
    const currentHash = sourceHash();
    for (const file of readdirSync(buildDir).filter((f) => f.endsWith(".json"))) {
      const artifact = JSON.parse(readFileSync(path.join(buildDir, file), "utf8")) as { sourceHash: string };
      expect(artifact.sourceHash, `${file} is stale: run npm run contracts:build`).toBe(currentHash);
    }
  });

  it("load through src/sandbox/artifacts.ts with bytecode and ABI", () => {
    for (const artifact of [
      testUsdcArtifact,
      multicall3Artifact,
      smartWalletArtifact,
      smartWalletFactoryArtifact,
      permit2Artifact,
      x402ExactPermit2ProxyArtifact,
      x402UptoPermit2ProxyArtifact,
    ]) {
      expect(artifact.bytecode).toMatch(/^0x[0-9a-f]{100,}$/);
      expect(artifact.deployedBytecode).toMatch(/^0x[0-9a-f]{100,}$/);
      expect(artifact.abi.length).toBeGreaterThan(0);
    }
    const overloads = (name: string) =>
      testUsdcArtifact.abi.filter((item) => item.type === "function" && item.name === name).length;
    expect(overloads("transferWithAuthorization")).toBe(2);
    expect(overloads("receiveWithAuthorization")).toBe(2);
    expect(overloads("cancelAuthorization")).toBe(2);
    expect(overloads("permit")).toBe(2);
  });
});
