CREATE TABLE "payer_chain_failures" (
	"chain_id" integer NOT NULL,
	"payer" text NOT NULL,
	"last_failed_at" timestamp with time zone DEFAULT now() NOT NULL,
	"failures" integer DEFAULT 1 NOT NULL,
	CONSTRAINT "payer_chain_failures_chain_id_payer_pk" PRIMARY KEY("chain_id","payer")
);
