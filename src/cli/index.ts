import path from "node:path";
import { databaseUrlFrom, isSandboxEnv, loadConfig } from "../config.js";
import { ConfigError } from "../errors.js";
import { batchSettlerCommand } from "./batch-settler-command.js";
import { CliError, exitCodes, UsageError } from "./cli-error.js";
import { keysCommand, signersCommand } from "./key-commands.js";
import { paymentCommand } from "./payment-command.js";
import { createLogger, logFormatFrom, logLevelFrom } from "../logger.js";
import { closeOnSignals, startedByNpm, startServer } from "../server-process.js";
import { redactedMessage, redactUrls } from "../redact.js";
import { runMigrations } from "../store/migrate.js";

const usage = `x402-facilitator <command>

  serve     run the facilitator (default). With no DATABASE_URL, NETWORKS, FACILITATOR_CONFIG
            or SIGNER_PRIVATE_KEYS set, runs the local sandbox instead.
  sandbox   run the local sandbox: embedded Postgres, Anvil, test USDC, a funded demo payer
  migrate   apply database migrations to DATABASE_URL and exit
  keys      API keys (needs DATABASE_URL; keys help for the flags):
            keys create --name NAME [--admin] [--pay-to A,B] [--networks N,M] [--assets A,B]
              [--rate-limit PER_MINUTE] [--daily-gas-budget-wei WEI]
            keys list
            keys revoke <id | key | key prefix, as keys list prints it>
  signers   each signer's address, nonce and balance (ETH) per network (needs the serve
            configuration); exit 1 when an RPC does not answer
  batch-settler status|deploy [--network N]
            whether BatchSettler (needed for batched settlement) is on each network; deploy puts it
            there from the first signer key, one transaction (needs the serve configuration)
  payment   --rpc URL --token ADDR --key KEY --to ADDR --amount N [--v1] [--network N]
            [--valid-seconds S]: print a signed /verify and /settle body for any chain with an
            EIP-3009 token, its domain and chain id read from the RPC (payment --help)
  help      show this text; <command> --help shows a command's

Exit codes: 0 done, 1 failed (no key matches, an RPC did not answer, an unexpected fault),
2 usage or configuration error. Configuration is by environment variable; see README.md.`;

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

async function main(argv: string[]): Promise<void> {
  const command = argv[0] ?? "serve";
  const log = createLogger(logLevelFrom(process.env), undefined, logFormatFrom(process.env));
  switch (command) {
    case "serve":
      if (isSandboxEnv()) return runSandbox(log);
      {
        const config = loadConfig();
        const server = await startServer(config, log);
        closeOnSignals(log, server.close, { whenParentExits: startedByNpm() });
      }
      return;
    case "sandbox":
      return runSandbox(log);
    case "migrate": {
      await runMigrations(databaseUrlFrom(process.env));
      log.info("migrations applied");
      return;
    }
    case "keys":
      return keysCommand(argv.slice(1), process.env, out, err);
    case "signers":
      return signersCommand(process.env, out, argv.slice(1));
    case "batch-settler":
      return batchSettlerCommand(argv.slice(1), process.env, out);
    case "payment":
      return paymentCommand(argv.slice(1), out, err);
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${usage}\n`);
      return;
    default:
      throw new UsageError(`unknown command "${command}" (see x402-facilitator help)`);
  }
}

async function runSandbox(log: ReturnType<typeof createLogger>): Promise<void> {
  // Imported lazily: production `serve` never loads the sandbox (embedded Postgres, Anvil).
  const { sandboxBanner, startSandbox } = await import("../sandbox/sandbox.js");
  const sandbox = await startSandbox(process.env, log);
  closeOnSignals(log, sandbox.close, { whenParentExits: startedByNpm() });
  process.stdout.write(`${sandboxBanner(sandbox.info, path.resolve(process.env.DATA_DIR ?? ".data"))}\n`);
}

// stderr is kept by process managers like a log: an RPC or Postgres URL in a start-up error (and
// its key or password) is redacted here as in the logs.
main(process.argv.slice(2)).catch((error: unknown) => {
  // A usage mistake or a key that matches nothing: one line, the command's own exit code.
  if (error instanceof CliError) {
    process.stderr.write(`x402-facilitator: ${redactUrls(error.message)}\n`);
    process.exit(error.exitCode);
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`x402-facilitator: configuration error: ${redactUrls(error.message)}\n`);
    process.exit(exitCodes.usage);
  }
  // node:util parseArgs: an unknown or malformed flag is the caller's mistake, not a crash.
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_")) {
    // Node quotes a stray positional argument: it may be a key whose --flag was forgotten.
    const line = code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL" ? "unexpected argument: every value follows its --flag" : redactedMessage(error).split("\n")[0];
    process.stderr.write(`x402-facilitator: ${line} (see x402-facilitator help)\n`);
    process.exit(exitCodes.usage);
  }
  // Anything else is a bug or an outage: one line, the stack only when asked for.
  const stack = process.env.LOG_LEVEL === "debug" || process.env.LOG_LEVEL === "trace";
  const text = error instanceof Error && stack && error.stack ? error.stack : `${redactedMessage(error).split("\n")[0]} (LOG_LEVEL=debug prints the stack)`;
  process.stderr.write(`x402-facilitator: ${redactUrls(text)}\n`);
  process.exit(exitCodes.failed);
});
