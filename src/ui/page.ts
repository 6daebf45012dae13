import { FILES, INDEX_HTML, VERSION } from './assets.js';
import { type Body, CONTENT_TYPES, etagOf, REVALIDATE } from './respond.js';

/** The handler's basePath, as the page's URLs use it: no trailing slash, '' for the root. */
export function normalizeBase(basePath: string): string {
  return basePath.replace(/\/+$/, '');
}

const escapeAttribute = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The rendered page by basePath: a handler has one basePath, so this holds one entry or very few. */
const pages = new Map<string, Body>();

/**
 * The one HTML page of the dashboard, for every route under /ui (the script reads the path and
 * draws the list or a batch). Asset URLs carry VERSION, so they can be cached for good while the
 * page itself is revalidated; modulepreload fetches all modules at once instead of one import at a
 * time.
 */
export function page(basePath: string): Body {
  const base = normalizeBase(basePath);
  let body = pages.get(base);
  if (!body) {
    const assets = `${base}/ui/assets/${VERSION}`;
    const preload = Object.keys(FILES)
      .filter((name) => name.endsWith('.js') && name !== 'app.js')
      .map((name) => `<link rel="modulepreload" href="${escapeAttribute(`${assets}/${name}`)}">`)
      .join('\n');
    const text = INDEX_HTML.replaceAll('%BASE%', escapeAttribute(base))
      .replaceAll('%ASSETS%', escapeAttribute(assets))
      .replace('%PRELOAD%', preload);
    body = { text, type: CONTENT_TYPES.html!, etag: etagOf(text), cache: REVALIDATE };
    pages.set(base, body);
  }
  return body;
}
