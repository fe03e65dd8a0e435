ALTER TABLE "settlements" ADD COLUMN "last_broadcast_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "settlements" ADD COLUMN "replaced_tx_hashes" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "settlements" ADD COLUMN "fee_bumps" integer DEFAULT 0 NOT NULL;