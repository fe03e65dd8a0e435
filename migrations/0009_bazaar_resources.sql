CREATE TABLE "bazaar_resources" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"pay_to" text NOT NULL,
	"resource" text NOT NULL,
	"type" text NOT NULL,
	"action" text NOT NULL,
	"x402_version" smallint NOT NULL,
	"accepts" jsonb NOT NULL,
	"description" text,
	"mime_type" text,
	"service_name" text,
	"tags" text[],
	"icon_url" text,
	"extensions" jsonb NOT NULL,
	"extension_keys" text[] NOT NULL,
	"search_text" text NOT NULL,
	"bytes" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_updated" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "bazaar_resources_key" ON "bazaar_resources" USING btree ("pay_to","resource","type","action");--> statement-breakpoint
CREATE INDEX "bazaar_resources_pay_to_last_updated" ON "bazaar_resources" USING btree ("pay_to","last_updated");--> statement-breakpoint
CREATE INDEX "bazaar_resources_last_updated" ON "bazaar_resources" USING btree ("last_updated");