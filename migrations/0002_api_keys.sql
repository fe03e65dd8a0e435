CREATE TABLE "api_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"key_hash" text NOT NULL,
	"key_prefix" text NOT NULL,
	"role" text DEFAULT 'client' NOT NULL,
	"allowed_pay_to" text[],
	"allowed_networks" text[],
	"allowed_assets" text[],
	"rate_limit_per_minute" integer,
	"daily_gas_budget_wei" numeric(78, 0),
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_keys_key_hash_unique" UNIQUE("key_hash")
);
--> statement-breakpoint
ALTER TABLE "settlements" ADD COLUMN "gas_cost_wei" numeric(78, 0);--> statement-breakpoint
ALTER TABLE "settlements" ADD COLUMN "api_key_id" uuid;--> statement-breakpoint
CREATE INDEX "settlements_api_key_created_at" ON "settlements" USING btree ("api_key_id","created_at");--> statement-breakpoint
CREATE INDEX "settlements_payer" ON "settlements" USING btree ("payer","created_at");--> statement-breakpoint
CREATE INDEX "settlements_pay_to" ON "settlements" USING btree ("pay_to","created_at");