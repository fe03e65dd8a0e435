import { readFileSync } from "node:fs";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";

/** package.json ships with the package, two levels above this file (src/http/ under tsx, dist/http/ compiled). */
function packageVersion(): string {
  try {
    const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === "string" ? version : "0.0.0";
  } catch {
    return "0.0.0";
  }
}

/**
 * The OpenAPI 3 document is collected from route schemas as routes are added (an onRoute hook),
 * so this must be registered before the routes it documents: buildApp calls it first.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "x402-facilitator",
        version: packageVersion(),
        description: "Self-hostable x402 facilitator: verifies and settles EIP-3009 USDC payments (exact scheme), exactly once, backed by Postgres.",
      },
      tags: [
        { name: "operator", description: "Settlement history and dashboard: an admin API key, or loopback with AUTH=off" },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: "http", scheme: "bearer", description: "API key: Authorization: Bearer x402_…" },
          dashboardSession: { type: "apiKey", in: "cookie", name: "x402_dashboard", description: "Dashboard session from POST /dashboard/login (an admin key in a form); /dashboard only." },
        },
      },
    },
  });
}

/** Swagger UI at /docs (assets served from the package, nothing external) and the document at /openapi.json. */
export async function registerOpenApiRoutes(app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, { routePrefix: "/docs" });
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
}
