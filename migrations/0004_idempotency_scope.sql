-- Idempotency keys are scoped per caller (API key id; '' without one) and per route. Rows recorded
-- before are AUTH=off /settle rows: the defaults put them there. Drizzle runs a migration in one
-- transaction, so the table is never without a primary key in between.
ALTER TABLE "idempotency_keys" ADD COLUMN "scope" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD COLUMN "route" text DEFAULT 'settle' NOT NULL;--> statement-breakpoint
ALTER TABLE "idempotency_keys" DROP CONSTRAINT "idempotency_keys_pkey";--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_scope_route_key_pk" PRIMARY KEY("scope","route","key");
