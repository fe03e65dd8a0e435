import pino, { type Logger } from "pino";

/**
 * Structured JSON logs. Keys that could ever hold a secret are redacted by path, as a second line
 * of defence: signer keys are never passed to a logger in the first place.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "x402-facilitator" },
    redact: {
      paths: ["privateKey", "*.privateKey", "signerPrivateKeys", "*.signerPrivateKeys", "req.headers.authorization", "databaseUrl", "*.databaseUrl"],
      censor: "[redacted]",
    },
  });
}
