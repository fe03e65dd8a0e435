/**
 * Entry point of a facilitator run as a CHILD process by test/helpers/facilitator-process.ts:
 * `node --import tsx test/helpers/facilitator-child.ts`. It builds a Config from the environment
 * and runs src/server-process.ts `startServer` exactly as production does (migrations, watcher, listen,
 * SIGTERM → graceful close → exit 0), so crash and shutdown tests exercise the real process.
 *
 * Environment:
 *   DATABASE_URL, SIGNER_PRIVATE_KEYS (comma-separated), RPC_URL, TOKEN_ADDRESS — required
 *   CHAIN_ID (default 84532, served as "eip155:84532" / v1 "base-sepolia"), PORT (default 0),
 *   LOG_LEVEL (default "warn"), SEND_MODE, and every limit loadLimits() reads (SETTLE_BUDGET_MS, …)
 *   X402_TEST_CRASH_AT — read by src/settlement/crash-points.ts itself.
 *
 * Once listening it prints one JSON line on stdout: {"event":"facilitator-ready","url":…,"pid":…}.
 * When its stdin closes (the parent test process died, even by SIGKILL) it shuts down: no orphans.
 */
import { getAddress, type Hex } from "viem";
import { loadLimits, loadSendMode, type Config } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { closeOnSignals, startServer } from "../../src/server-process.js";

/** Also spelled in facilitator-process.ts (importing this file would start a server). */
const readyEvent = "facilitator-ready";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`facilitator-child: ${name} is required`);
  return value;
}

async function main(): Promise<void> {
  const chainId = Number(process.env.CHAIN_ID ?? 84532);
  const config: Config = {
    databaseUrl: required("DATABASE_URL"),
    host: "127.0.0.1",
    port: Number(process.env.PORT ?? 0),
    logLevel: process.env.LOG_LEVEL ?? "warn",
    signerPrivateKeys: required("SIGNER_PRIVATE_KEYS")
      .split(",")
      .map((key) => key.trim() as Hex)
      .filter((key) => key.length > 0),
    networks: [
      {
        network: `eip155:${chainId}`,
        chainId,
        v1Name: chainId === 84532 ? "base-sepolia" : null,
        rpcUrls: [required("RPC_URL")],
        assets: [{ address: getAddress(required("TOKEN_ADDRESS")), name: "USDC", version: "2", decimals: 6 }],
      },
    ],
    limits: loadLimits(process.env),
    sendMode: loadSendMode(process.env),
  };
  const log = createLogger(config.logLevel);
  const server = await startServer(config, log);
  closeOnSignals(log, server.close);
  // The parent holds our stdin: when it goes away, so do we (through the graceful path).
  process.stdin.on("end", () => process.kill(process.pid, "SIGTERM"));
  process.stdin.resume();
  process.stdout.write(`${JSON.stringify({ event: readyEvent, url: server.url, pid: process.pid })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`facilitator-child: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
