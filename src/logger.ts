import pino, { type DestinationStream, type Logger, type LoggerOptions } from "pino";
import pretty from "pino-pretty";
import { ConfigError } from "./errors.js";
import { redactError, redactUrls } from "./redact.js";

/**
 * A written line longer than this is replaced by a notice: redacting it must stay bounded, and a
 * line this long is a bug of its own (a whole response body logged, say).
 */
const logLineMaxChars = 1_048_576;

/**
 * Structured JSON logs. Keys that could ever hold a secret are redacted by path, as a second line
 * of defence: signer keys are never passed to a logger in the first place.
 *
 * RPC URLs carry API keys and viem copies them into its errors (src/redact.ts). Two layers keep
 * them out of the logs: `err`/`error` fields are serialized with their cause chain and every
 * string redacted before JSON encoding (where a URL is still plain text), and every written line
 * is redacted once more as a whole, so a URL in the message, in `String(error)` under any other
 * key, or in a child logger's bindings is caught too.
 * `destination` defaults to pino's (stdout); tests pass a stream to read what would be written.
 */
const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** LOG_LEVEL, one of pino's levels (default info); anything else names the variable. */
export function logLevelFrom(env: Readonly<Record<string, string | undefined>>): string {
  const value = env.LOG_LEVEL?.trim();
  if (value === undefined || value === "") return "info";
  if ((logLevels as readonly string[]).includes(value)) return value;
  throw new ConfigError(`LOG_LEVEL must be one of ${logLevels.join(", ")}, got "${value}"`);
}

export type LogFormat = "json" | "pretty";

/**
 * LOG_FORMAT: `json` (one JSON object per line, for log shippers) or `pretty` (for people). Unset:
 * pretty when stdout is a terminal, JSON otherwise (a supervisor, a container, a pipe).
 */
export function logFormatFrom(env: Readonly<Record<string, string | undefined>>, stdoutIsTty = Boolean(process.stdout.isTTY)): LogFormat {
  const value = env.LOG_FORMAT?.trim();
  if (value === undefined || value === "") return stdoutIsTty ? "pretty" : "json";
  if (value === "json" || value === "pretty") return value;
  throw new ConfigError(`LOG_FORMAT must be "json" or "pretty", got "${value}"`);
}

/**
 * `pretty` formats the very line JSON would write (after redaction), synchronously, so the same
 * secrets are kept out and nothing is lost on exit.
 */
export function createLogger(level: string, destination?: DestinationStream, format: LogFormat = "json"): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: "x402-facilitator" },
    redact: {
      paths: ["privateKey", "*.privateKey", "signerPrivateKeys", "*.signerPrivateKeys", "req.headers.authorization", "databaseUrl", "*.databaseUrl"],
      censor: "[redacted]",
    },
    serializers: { err: redactError, error: redactError },
    hooks: { streamWrite: redactLogLine },
  };
  if (format === "pretty") {
    const prettyStream = pretty({ sync: true, destination: destination ?? 1, colorize: destination === undefined && Boolean(process.stdout.isTTY), translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,service" });
    return pino(options, prettyStream);
  }
  return destination === undefined ? pino(options) : pino(options, destination);
}

function redactLogLine(line: string): string {
  if (line.length > logLineMaxChars) {
    return `${JSON.stringify({ level: 40, time: Date.now(), service: "x402-facilitator", msg: `log line of ${line.length} characters not written: longer than ${logLineMaxChars}` })}\n`;
  }
  return redactUrls(line, logLineMaxChars);
}
