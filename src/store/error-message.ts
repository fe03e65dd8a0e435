import { redactedExcerpt, storedErrorMessageMaxChars } from "../redact.js";
import { postgresSafeText } from "./postgres-text.js";

/**
 * The form every write of settlements.error_message takes. The text is often a viem or node error,
 * which can quote an RPC URL and its API key; redacting at the one place rows are written covers
 * every caller, present and future. A payer's contract chooses its revert text, NUL included.
 */
export function storedErrorMessage(message: string): string {
  return postgresSafeText(redactedExcerpt(message, storedErrorMessageMaxChars));
}
