-- Payers one of whose settlement calls failed on chain by their own doing, whatever their code: a key
-- without code can move its funds away (or burn its nonces) between our simulation and our
-- transaction, and every one of its settlements in flight then fails. For PAYER_ONE_AT_A_TIME_MS after
-- it the payer has one settlement in flight at a time per token. A new table only: rolling-safe (an
-- older instance neither writes nor reads it, so during a rollout its payers are not limited there).
CREATE TABLE "payer_failed_calls" (
	"chain_id" integer NOT NULL,
	"payer" text NOT NULL,
	"last_failed_at" timestamp with time zone DEFAULT now() NOT NULL,
	"failures" integer DEFAULT 1 NOT NULL,
	CONSTRAINT "payer_failed_calls_chain_id_payer_pk" PRIMARY KEY("chain_id","payer")
);
