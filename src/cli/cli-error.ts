import { ConfigError } from "../errors.js";

/**
 * Errors of the CLI's own commands, printed by index.ts as one line `x402-facilitator: <message>`
 * (no "configuration error": a key that matches nothing is not a misconfiguration).
 *
 * Exit codes of every command:
 *   0  done
 *   1  the command ran and failed: nothing matched (`keys revoke`), or part of what it reports
 *      could not be read (`signers` with an RPC unreachable, after printing every line it could);
 *      also any unexpected fault (printed with the LOG_LEVEL=debug hint)
 *   2  the command line or the configuration is wrong: usage (an unknown command, action or flag,
 *      a missing or malformed value, an ambiguous key prefix), a ConfigError, or — for `payment` —
 *      an RPC, token or key given on its command line that cannot be used
 */
export const exitCodes = { failed: 1, usage: 2 } as const;

export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

export class CliError extends Error {
  override name = "CliError";

  constructor(
    message: string,
    readonly exitCode: ExitCode,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }
}

/** The command line is wrong (exit 2). */
export class UsageError extends CliError {
  override name = "UsageError";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, exitCodes.usage, options);
  }
}

/** What the command was asked to find or do is not there (exit 1). */
export class NotFoundError extends CliError {
  override name = "NotFoundError";
  constructor(message: string) {
    super(message, exitCodes.failed);
  }
}

/** True when `args` asks for help (`--help`, `-h` or `help` as the first word). */
export function wantsHelp(args: readonly string[]): boolean {
  return args[0] === "help" || args.includes("--help") || args.includes("-h");
}

/** A ConfigError from a shared parser (a network name given as a flag) is the command line's fault. */
export function asUsage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
}
