CREATE TABLE "gas_budget_days" (
	"api_key_id" uuid NOT NULL,
	"day" date NOT NULL,
	"reserved_wei" numeric(78, 0) DEFAULT '0' NOT NULL,
	"spent_wei" numeric(78, 0) DEFAULT '0' NOT NULL,
	CONSTRAINT "gas_budget_days_api_key_id_day_pk" PRIMARY KEY("api_key_id","day")
);
--> statement-breakpoint
CREATE TABLE "gas_reservations" (
	"settlement_id" uuid NOT NULL,
	"attempt" integer NOT NULL,
	"api_key_id" uuid NOT NULL,
	"day" date NOT NULL,
	"reserved_wei" numeric(78, 0) NOT NULL,
	"settled" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "gas_reservations_settlement_id_attempt_pk" PRIMARY KEY("settlement_id","attempt")
);
--> statement-breakpoint
-- Today's spend so far (it was summed from settlements before): budgets keep counting across the upgrade.
INSERT INTO "gas_budget_days" ("api_key_id", "day", "spent_wei")
SELECT "api_key_id", (now() AT TIME ZONE 'utc')::date, sum("gas_cost_wei")
FROM "settlements"
WHERE "api_key_id" IS NOT NULL AND "gas_cost_wei" IS NOT NULL AND "created_at" >= date_trunc('day', now() AT TIME ZONE 'utc') AT TIME ZONE 'utc'
GROUP BY "api_key_id";
