import { redactedExcerpt } from "../redact.js";
import { postgresSafeText } from "./postgres-text.js";

/** error_message is read back into answers and by operators: long enough for a revert text, no longer. */
export const storedErrorMessageMaxChars = 1_000;

/**
 * The form every write of settlements.error_message takes. The text is often a viem or node error,
 * which can quote an RPC URL and its API key; redacting at the one place rows are written covers
 * every caller, present and future. A payer's contract chooses its revert text, NUL included.
 */
export function storedErrorMessage(message: string): string {
  return postgresSafeText(redactedExcerpt(message, storedErrorMessageMaxChars));
}
