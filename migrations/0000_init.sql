CREATE TYPE "public"."settlement_status" AS ENUM('claimed', 'signed', 'submitted', 'confirmed', 'failed');--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"key" text PRIMARY KEY NOT NULL,
	"request_hash" text NOT NULL,
	"settlement_id" uuid,
	"response" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "released_nonces" (
	"chain_id" integer NOT NULL,
	"address" text NOT NULL,
	"nonce" bigint NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "released_nonces_chain_id_address_nonce_pk" PRIMARY KEY("chain_id","address","nonce")
);
--> statement-breakpoint
CREATE TABLE "settlements" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"chain_id" integer NOT NULL,
	"asset" text NOT NULL,
	"payer" text NOT NULL,
	"nonce" text NOT NULL,
	"pay_to" text NOT NULL,
	"value_atomic" numeric(78, 0) NOT NULL,
	"valid_after_seconds" numeric(78, 0) NOT NULL,
	"valid_before_seconds" numeric(78, 0) NOT NULL,
	"authorization_digest" text NOT NULL,
	"signature" text NOT NULL,
	"x402_version" smallint NOT NULL,
	"network" text NOT NULL,
	"status" "settlement_status" NOT NULL,
	"error_reason" text,
	"error_message" text,
	"tx_hash" text,
	"raw_tx" text,
	"signer" text,
	"tx_nonce" bigint,
	"gas_limit" bigint,
	"broadcast_at" timestamp with time zone,
	"settled_tx_hash" text,
	"block_number" bigint,
	"gas_used" bigint,
	"pending_answered" boolean DEFAULT false NOT NULL,
	"success_answered" boolean DEFAULT false NOT NULL,
	"lease_until" timestamp with time zone,
	"attempt" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "signer_nonces" (
	"chain_id" integer NOT NULL,
	"address" text NOT NULL,
	"next_nonce" bigint NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "signer_nonces_chain_id_address_pk" PRIMARY KEY("chain_id","address")
);
--> statement-breakpoint
CREATE UNIQUE INDEX "settlements_authorization_key" ON "settlements" USING btree ("chain_id","asset","payer","nonce");--> statement-breakpoint
CREATE INDEX "settlements_unfinished" ON "settlements" USING btree ("status","updated_at") WHERE status in ('claimed', 'signed', 'submitted');--> statement-breakpoint
CREATE INDEX "settlements_created_at" ON "settlements" USING btree ("created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "settlements_tx_hash" ON "settlements" USING btree ("tx_hash") WHERE tx_hash is not null;