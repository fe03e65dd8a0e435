import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * The dashboard's browser session: a cookie holding a random token (dashboard_sessions in Postgres
 * holds its SHA-256, the admin key it belongs to and its expiry; see DashboardSessionsRepository).
 * Never the admin key itself: a cookie leaks more easily than a header (a browser profile, a proxy
 * log), and a leaked session dies with its expiry, its logout or its key's revocation.
 */
export const sessionCookieName = "x402_dashboard";
/** Only the dashboard's own routes (/dashboard, /dashboard/login, /dashboard/logout) receive it. */
export const sessionCookiePath = "/dashboard";
/** A session lasts this long from its login (not extended by use): 12 h, one working day. */
export const sessionTtlMs = 12 * 60 * 60 * 1000;
/** Login attempts per client IP per minute (behind a proxy: set TRUST_PROXY, or every client shares one bucket). */
export const loginAttemptsPerMinute = 10;

/** The value of cookie `name` in the request's Cookie header(s), or undefined. */
export function readCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const index = part.indexOf("=");
    if (index < 0) continue;
    if (part.slice(0, index).trim() !== name) continue;
    const value = part.slice(index + 1).trim();
    return value.startsWith('"') && value.endsWith('"') && value.length >= 2 ? value.slice(1, -1) : value;
  }
  return undefined;
}

/**
 * The request reached us over https: TLS to this process, or X-Forwarded-Proto https from a proxy
 * that TRUST_PROXY names (Fastify's request.protocol believes the header from those peers only).
 */
export function cameOverHttps(request: FastifyRequest): boolean {
  return request.protocol === "https";
}

function cookieAttributes(request: FastifyRequest, maxAgeSeconds: number): string {
  return [`Path=${sessionCookiePath}`, "HttpOnly", "SameSite=Strict", `Max-Age=${maxAgeSeconds}`, ...(cameOverHttps(request) ? ["Secure"] : [])].join("; ");
}

export function setSessionCookie(request: FastifyRequest, reply: FastifyReply, token: string): void {
  reply.header("set-cookie", `${sessionCookieName}=${token}; ${cookieAttributes(request, Math.floor(sessionTtlMs / 1000))}`);
}

export function clearSessionCookie(request: FastifyRequest, reply: FastifyReply): void {
  reply.header("set-cookie", `${sessionCookieName}=; ${cookieAttributes(request, 0)}`);
}

function singleHeader(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

function originOf(url: string): string | undefined {
  try {
    const origin = new URL(url).origin;
    return origin === "null" ? undefined : origin;
  } catch {
    return undefined;
  }
}

/**
 * Why a state-changing dashboard POST (login, logout) looks cross-site, or undefined when it does
 * not. A browser says where a request comes from: `Sec-Fetch-Site` (set by the browser, no page can
 * forge it; decisive when present, whatever a proxy did to the Host header), else `Origin`, which
 * must be this site's own (scheme and host as Fastify sees them: X-Forwarded-Proto and
 * X-Forwarded-Host count only from TRUST_PROXY peers). A request with neither is not a browser's
 * form post (curl, a script): it has no victim's cookies to abuse. The session cookie is
 * SameSite=Strict on top, so no other site's page makes a browser send it.
 */
export function crossSiteReason(request: FastifyRequest): string | undefined {
  const site = singleHeader(request, "sec-fetch-site");
  if (site !== undefined) return site.trim().toLowerCase() === "same-origin" ? undefined : `the browser says it came from another site (Sec-Fetch-Site: ${site})`;
  const origin = singleHeader(request, "origin");
  if (origin === undefined) return undefined;
  const own = originOf(`${request.protocol}://${request.host}`);
  const given = originOf(origin);
  if (given === undefined || own === undefined || given !== own) return `it came from ${given ?? "an opaque origin"}, not from ${own ?? "this site"}`;
  return undefined;
}

/** A browser navigating (Accept names text/html): it is better served a redirect to the login form than a JSON 401. */
export function wantsHtml(request: FastifyRequest): boolean {
  return /\btext\/html\b/i.test(singleHeader(request, "accept") ?? "");
}
