-- Payers one of whose settlement calls failed on chain with the authorization unused, whatever their
-- code: a key without code can move its funds away between our simulation and our transaction, and
-- every one of its settlements in flight then fails. For PAYER_FAILED_CALL_SERIAL_MS after it the payer
-- has one settlement in flight at a time. A new table only: rolling-safe (an older instance neither
-- writes nor reads it, so during a rollout its payers are not serialised there).
CREATE TABLE "payer_failed_calls" (
	"chain_id" integer NOT NULL,
	"payer" text NOT NULL,
	"last_failed_at" timestamp with time zone DEFAULT now() NOT NULL,
	"failures" integer DEFAULT 1 NOT NULL,
	CONSTRAINT "payer_failed_calls_chain_id_payer_pk" PRIMARY KEY("chain_id","payer")
);
