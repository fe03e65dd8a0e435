-- Permit2 payments (`exact` over Permit2, `upto`): a settlement is unique on its nonce in the
-- namespace the chain keeps it in. EIP-3009 nonces are per token, so rows written before keep their
-- token as nonce_contract (the same key as before); Permit2 rows name the Permit2 contract, whose
-- nonce bitmap is per owner across all tokens. Every row written before is EIP-3009, where the payer
-- signed for exactly the value: permitted_atomic = value_atomic. One UPDATE fills both, so the table
-- is rewritten once. Drizzle runs a migration in one transaction, so the table is never without its
-- unique key in between.
-- Not a rolling migration: an instance older than 0010 claims with ON CONFLICT on the old key, which
-- no longer exists after this (42P10), and doesn't write nonce_contract. Stop every instance first
-- (README, "Upgrading").
ALTER TABLE "settlements" ADD COLUMN "nonce_contract" text;--> statement-breakpoint
ALTER TABLE "settlements" ADD COLUMN "permitted_atomic" numeric(78, 0);--> statement-breakpoint
UPDATE "settlements" SET "nonce_contract" = "asset", "permitted_atomic" = "value_atomic";--> statement-breakpoint
ALTER TABLE "settlements" ALTER COLUMN "nonce_contract" SET NOT NULL, ALTER COLUMN "permitted_atomic" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "settlements" ADD COLUMN "scheme" text DEFAULT 'exact' NOT NULL;--> statement-breakpoint
ALTER TABLE "settlements" ADD COLUMN "transfer_method" text DEFAULT 'eip3009' NOT NULL;--> statement-breakpoint
DROP INDEX "settlements_authorization_key";--> statement-breakpoint
CREATE UNIQUE INDEX "settlements_authorization_key" ON "settlements" USING btree ("chain_id","nonce_contract","payer","nonce");
