import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { FacilitatorError } from "../errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Services } from "../services.js";
import { renderLogin } from "./dashboard-html.js";
import { dashboardSecurityHeaders } from "./dashboard-route.js";
import { clearSessionCookie, crossSiteReason, loginAttemptsPerMinute, readCookie, sessionCookieName, sessionTtlMs, setSessionCookie } from "./dashboard-session.js";
import { errorAnswer } from "./error-answers.js";

/** A login form body is one key: a few hundred bytes at most. */
const loginBodyLimitBytes = 4096;

interface LoginBody {
  key?: string;
}

/** Refuses a login or logout that a browser says came from another site (dashboard-session.ts). */
function refuseCrossSite(request: FastifyRequest): void {
  const reason = crossSiteReason(request);
  if (reason !== undefined) throw new FacilitatorError(ReasonCode.forbidden, `refused: this form was not sent from the dashboard's own page (${reason})`);
}

/**
 * GET /dashboard/login (the form), POST /dashboard/login (an admin key in the form's `key` field →
 * a session cookie, 303 to /dashboard), POST /dashboard/logout (the session ended, the cookie
 * cleared, 303 to the form). For a browser behind a proxy, which cannot send a Bearer header.
 *
 * Errors are the table's (reasonAnswers: a wrong key 401, a client key 403, a cross-site post 403,
 * too many attempts 429, Postgres down 503), answered as the form again with the message instead
 * of JSON, with the same status.
 */
export async function dashboardLoginRoutes(app: FastifyInstance, options: { services: Services }): Promise<void> {
  const { services } = options;

  // Encapsulated: form bodies are parsed on these routes only (no @fastify/formbody needed).
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: loginBodyLimitBytes }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.setErrorHandler((error, request, reply) => {
    const answer = errorAnswer(error, "other");
    if (answer.isFault) request.log.error({ err: error }, "request failed");
    else request.log.info({ code: answer.body.error, message: answer.body.message }, "dashboard login refused");
    return sendForm(reply.code(answer.statusCode), String(answer.body.message));
  });

  app.get("/dashboard/login", { schema: { hide: true } }, async (_request, reply) => sendForm(reply));

  app.post(
    "/dashboard/login",
    {
      bodyLimit: loginBodyLimitBytes,
      schema: { hide: true, body: { type: "object", properties: { key: { type: "string", maxLength: 512 } } } },
      config: {
        // Per client IP (request.ip: behind TRUST_PROXY, the forwarded client), whatever the key.
        rateLimit: {
          max: loginAttemptsPerMinute,
          timeWindow: 60_000,
          keyGenerator: (request: FastifyRequest) => `dashboard-login:${request.ip}`,
          errorResponseBuilder: (_request: FastifyRequest, context: { after: string }) =>
            Object.assign(new Error(`too many login attempts from this address; try again in ${context.after}`), { statusCode: 429 }),
        },
      },
    },
    async (request, reply) => {
      refuseCrossSite(request);
      const key = ((request.body as LoginBody | undefined)?.key ?? "").trim();
      if (key === "") throw new FacilitatorError(ReasonCode.unauthorized, "enter an admin API key");
      const apiKey = await services.apiKeys.findActive(key);
      if (!apiKey) throw new FacilitatorError(ReasonCode.unauthorized, "that API key is unknown or revoked");
      if (apiKey.role !== "admin") throw new FacilitatorError(ReasonCode.forbidden, "that API key is not an admin key (create one with keys create --admin)");
      // A new login ends the session this browser had: one live session per cookie, never a fixed token.
      const previous = readCookie(request, sessionCookieName);
      if (previous !== undefined) await services.dashboardSessions.delete(previous);
      const session = await services.dashboardSessions.create(apiKey.id, sessionTtlMs);
      request.log.info({ apiKey: apiKey.keyPrefix, expiresAt: session.expiresAt }, "dashboard login");
      setSessionCookie(request, reply, session.token);
      return reply.headers({ "cache-control": "no-store" }).redirect("/dashboard", 303);
    },
  );

  app.post("/dashboard/logout", { bodyLimit: loginBodyLimitBytes, schema: { hide: true } }, async (request, reply) => {
    refuseCrossSite(request);
    const token = readCookie(request, sessionCookieName);
    if (token !== undefined) await services.dashboardSessions.delete(token);
    clearSessionCookie(request, reply);
    return reply.headers({ "cache-control": "no-store" }).redirect("/dashboard/login", 303);
  });
}

function sendForm(reply: FastifyReply, error?: string): FastifyReply {
  return reply
    .headers(dashboardSecurityHeaders)
    .type("text/html; charset=utf-8")
    .send(renderLogin(error === undefined ? {} : { error }));
}
