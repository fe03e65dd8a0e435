/** `signers` prints a line per network and signer; an unreachable RPC is named without its key. */
import { describe, expect, it } from "vitest";
import { signersCommand } from "../../../src/cli/key-commands.js";
import { freePort } from "../../../src/sandbox/free-port.js";

const secret = "SECRETKEY123";
const signer = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

describe("signersCommand", () => {
  it("reports an unreachable RPC without printing its URL's secret", async () => {
    const closedPort = await freePort();
    const lines: string[] = [];
    await signersCommand(
      {
        DATABASE_URL: "postgres://x@127.0.0.1/db",
        SIGNER_PRIVATE_KEYS: signer,
        NETWORKS: "base-sepolia",
        RPC_URLS_84532: `http://user:${secret}@127.0.0.1:${closedPort}/v2/${secret}?apikey=${secret}`,
        RPC_RETRY_COUNT: "0",
      },
      (line) => lines.push(line),
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^eip155:84532 {2}0x\w{40} {2}unreachable: /);
    expect(lines[0]).not.toContain(secret);
  });
});
