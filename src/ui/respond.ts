import { createHash } from 'node:crypto';
import { problemResponse } from '../http/problem.js';

/**
 * Responses of the dashboard: content type, security headers, caching (ETag and 304).
 *
 * The Content-Security-Policy allows scripts, styles and connections from this origin only: no
 * inline script or style, no eval, nothing from elsewhere. The page loads app.js as a file for that
 * reason and sets sizes through the CSSOM, which the policy allows, never through style attributes.
 * `img-src data:` is for the empty favicon that keeps browsers from asking /favicon.ico.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** A file whose URL carries its version: it never changes, browsers keep it for a year. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Anything else: browsers keep it but ask (If-None-Match) before each use; 304 when unchanged. */
export const REVALIDATE = 'no-cache';

export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  json: 'application/json; charset=utf-8',
};

export interface Body {
  text: string;
  type: string;
  etag: string;
  cache: string;
}

/** A strong ETag of a body (its SHA-256, shortened: enough to tell versions apart). */
export function etagOf(text: string): string {
  return `"${createHash('sha256').update(text).digest('base64url').slice(0, 22)}"`;
}

/** GET or HEAD: the body, or 304 when the browser's copy (If-None-Match) is current. */
export function respond(request: Request, body: Body): Response {
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'content-type': body.type,
    'cache-control': body.cache,
    etag: body.etag,
  };
  const known = request.headers.get('if-none-match');
  if (known?.split(',').some((tag) => tag.trim().replace(/^W\//, '') === body.etag))
    return new Response(null, { status: 304, headers });
  headers['content-length'] = String(Buffer.byteLength(body.text));
  return new Response(request.method === 'HEAD' ? null : body.text, { status: 200, headers });
}

/**
 * Anything but GET and HEAD under /ui: the API's own problem shape (type, title, status, detail,
 * instance, code), so a client handles a 405 from the dashboard as one from any other route.
 */
export function methodNotAllowed(method: string, instance: string): Response {
  return problemResponse(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed here.`, instance, {
    ...SECURITY_HEADERS,
    allow: 'GET, HEAD',
  });
}
