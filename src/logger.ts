import pino, { type DestinationStream, type Logger, type LoggerOptions } from "pino";
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
export function createLogger(level: string, destination?: DestinationStream): Logger {
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
  return destination === undefined ? pino(options) : pino(options, destination);
}

function redactLogLine(line: string): string {
  if (line.length > logLineMaxChars) {
    return `${JSON.stringify({ level: 40, time: Date.now(), service: "x402-facilitator", msg: `log line of ${line.length} characters not written: longer than ${logLineMaxChars}` })}\n`;
  }
  return redactUrls(line, logLineMaxChars);
}
