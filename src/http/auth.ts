import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { FacilitatorError } from "../errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Services } from "../services.js";
import type { ApiKeyRow } from "../store/schema.js";
import { readCookie, sessionCookieName } from "./dashboard-session.js";
import { isLocalCaller } from "./local-caller.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The caller's API key, when it presented a valid one (or a dashboard session of one). */
    apiKey?: ApiKeyRow;
    /** How the admin key came: the Bearer header, or a dashboard session cookie. */
    authenticatedBy?: "bearer" | "session";
    /** A dashboard session cookie came that is unknown, expired, or of a revoked key. */
    staleSession?: boolean;
  }
  interface FastifyContextConfig {
    /** An admin route that also takes the dashboard session cookie (issued by POST /dashboard/login). */
    sessionCookie?: boolean;
  }
}

const bearerPattern = /^Bearer\s+([\x21-\x7e]{1,512})$/i;

/**
 * Resolves `Authorization: Bearer <key>` on every request (before rate limiting, which counts per
 * key). With AUTH=api-keys, /verify and /settle need a valid, unrevoked key; admin routes always
 * check a presented key. Wrapped with fastify-plugin so the hook covers every route of the app.
 */
export const authPlugin = fp(async (app: FastifyInstance, options: { services: Services }) => {
  const { services } = options;
  app.decorateRequest("apiKey", undefined);
  app.decorateRequest("authenticatedBy", undefined);
  app.decorateRequest("staleSession", undefined);
  app.addHook("onRequest", async (request) => {
    const kind = request.routeOptions.config?.routeKind;
    const paymentRoute = kind === "verify" || kind === "settle";
    const required = paymentRoute && services.policy.auth === "api-keys";
    const header = request.headers.authorization;
    if (header === undefined) {
      if (required) throw unauthorized("this facilitator needs an API key: send Authorization: Bearer <key>");
      // The header wins when both come; a session is looked up only on the routes that take one.
      const token = kind === "admin" && request.routeOptions.config?.sessionCookie ? readCookie(request, sessionCookieName) : undefined;
      if (token !== undefined) {
        const key = await services.dashboardSessions.findActive(token);
        if (key) {
          request.apiKey = key;
          request.authenticatedBy = "session";
        } else request.staleSession = true;
      }
      return;
    }
    if (!required && kind !== "admin") return; // auth off: a key is not needed, and not checked
    const match = bearerPattern.exec(header);
    const key = match ? await services.apiKeys.findActive(match[1]!) : undefined;
    if (!key) throw unauthorized("the API key is unknown or revoked");
    request.apiKey = key;
    request.authenticatedBy = "bearer";
  });
});

/**
 * Settlement history and the dashboard: an admin key; with AUTH=off also a caller on the loopback
 * interface that was not forwarded by a proxy (the sandbox and local operators), never a remote one.
 */
export async function requireAdmin(services: Services, request: FastifyRequest): Promise<void> {
  if (request.apiKey?.role === "admin") return;
  if (request.apiKey) throw new FacilitatorError(ReasonCode.forbidden, "this API key is not an admin key");
  if (services.policy.auth === "off" && isLocalCaller(request)) return;
  if (request.staleSession) throw unauthorized("the dashboard session has expired, was logged out, or its admin key was revoked: log in again at /dashboard/login");
  const viaSession = request.routeOptions.config?.sessionCookie ? " (or log in at /dashboard/login)" : "";
  throw unauthorized(`an admin API key is needed: send Authorization: Bearer <key>${viaSession}`);
}

function unauthorized(message: string): FacilitatorError {
  return new FacilitatorError(ReasonCode.unauthorized, message);
}
