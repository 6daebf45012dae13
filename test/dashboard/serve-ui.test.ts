import { describe, expect, it } from 'vitest';
import { batchMachine } from '../../src/machines/batch.js';
import { FILES, INDEX_HTML, VERSION } from '../../src/ui/assets.js';
import { serveUi } from '../../src/ui/serve.js';

/** serveUi on its own: routes, content types, the security policy and caching. */

const BASE = '/partita';
const get = (path: string, init: RequestInit = {}, basePath = BASE) =>
  serveUi(new Request(`http://localhost${basePath}${path}`, init), { basePath, path });

describe('the page', () => {
  it.each(['/ui', '/ui/', '/ui/batch/b-42', '/ui/batch/a%2Fb'])('is served at %s', async (path) => {
    const res = await get(path);
    expect(res?.status).toBe(200);
    expect(res?.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res?.headers.get('cache-control')).toBe('no-cache');
    const html = await res!.text();
    expect(html).toContain(`<meta name="partita-base" content="${BASE}">`);
    expect(html).toContain(`<script type="module" src="${BASE}/ui/assets/${VERSION}/app.js"></script>`);
  });

  it('has no inline script or style, and a policy that forbids them', async () => {
    const res = await get('/ui');
    const html = await res!.text();
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    const csp = res!.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe');
    expect(res!.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('escapes the base path where it writes it', async () => {
    const html = await (await get('/ui', {}, '/a"b<c'))!.text();
    expect(html).toContain('content="/a&quot;b&lt;c"');
    expect(html).not.toContain('/a"b<c');
  });

  it('answers 304 to a browser that has it, and HEAD without a body', async () => {
    const first = await get('/ui');
    const etag = first!.headers.get('etag')!;
    const again = await get('/ui', { headers: { 'if-none-match': etag } });
    expect(again?.status).toBe(304);
    expect(await again!.text()).toBe('');
    const head = await get('/ui', { method: 'HEAD' });
    expect(head?.status).toBe(200);
    expect(head?.headers.get('content-length')).toBe(String(Buffer.byteLength(await first!.text())));
    expect(await head!.text()).toBe('');
  });

  it('refuses other methods with 405', async () => {
    const res = await get('/ui', { method: 'POST' });
    expect(res?.status).toBe(405);
    expect(res?.headers.get('allow')).toBe('GET, HEAD');
    expect(res?.headers.get('content-type')).toBe('application/problem+json');
    // The API's problem shape, as for any other route.
    expect(await res!.json()).toEqual({
      type: 'urn:partita:problem:method_not_allowed',
      title: 'Method Not Allowed',
      status: 405,
      detail: 'POST is not allowed here.',
      instance: '/partita/ui',
      code: 'METHOD_NOT_ALLOWED',
    });
  });
});

describe('assets', () => {
  it('serves the current version for good, with its content type', async () => {
    const js = await get(`/ui/assets/${VERSION}/app.js`);
    expect(js?.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js?.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await js!.text()).toBe(FILES['app.js']);
    const css = await get(`/ui/assets/${VERSION}/styles.css`);
    expect(css?.headers.get('content-type')).toBe('text/css; charset=utf-8');
  });

  it('serves an older version the current files, not to keep', async () => {
    const res = await get('/ui/assets/0ld/app.js');
    expect(res?.status).toBe(200);
    expect(res?.headers.get('cache-control')).toBe('no-cache');
  });

  it.each([
    '/ui/nope',
    `/ui/assets/${VERSION}/nope.js`,
    `/ui/assets/${VERSION}/index.html`,
    `/ui/assets/${VERSION}/toString`,
    '/ui/batch/a/b',
    '/uix',
  ])('leaves %s to the handler (404)', async (path) => {
    expect(await get(path)).toBeUndefined();
  });

  it('has every module that a module imports', () => {
    for (const [name, text] of Object.entries(FILES)) {
      for (const [, imported] of text.matchAll(/from '\.\/([^']+)'/g))
        expect(Object.keys(FILES), `${name} imports ${imported}`).toContain(imported);
    }
  });

  it('stays small: under 64 KB in all, before compression', () => {
    const bytes = [INDEX_HTML, ...Object.values(FILES)].reduce((n, t) => n + Buffer.byteLength(t), 0);
    expect(bytes).toBeLessThan(64 * 1024);
  });
});

describe('statechart.json', () => {
  it('has the batch machine’s states and transitions, and the status of each state', async () => {
    const res = await get('/ui/statechart.json');
    expect(res?.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const chart = (await res!.json()) as {
      initial: string;
      states: { key: string; status: string; final: boolean }[];
      transitions: { source: string; target: string; event: string; guard?: string }[];
    };
    expect(chart.initial).toBe('queued');
    expect(chart.states.map((s) => s.key)).toEqual(Object.keys(batchMachine.root.states));
    const statusOf = Object.fromEntries(chart.states.map((s) => [s.key, s.status]));
    expect(statusOf).toMatchObject({
      queued: 'QUEUED',
      processing: 'PROCESSING',
      cancelling: 'PROCESSING',
      finalizing: 'FINALIZING',
      completed: 'COMPLETED',
      partial: 'PARTIAL',
      failed: 'FAILED',
      cancelled: 'CANCELLED',
    });
    expect(chart.states.filter((s) => s.final).map((s) => s.key)).toEqual([
      'completed',
      'partial',
      'failed',
      'cancelled',
    ]);
    expect(chart.transitions).toContainEqual(
      expect.objectContaining({
        source: 'processing',
        target: 'finalizing',
        event: 'always',
        guard: 'allSettled',
      }),
    );
    expect(chart.transitions).toContainEqual(
      expect.objectContaining({
        source: 'finalizing',
        target: 'partial',
        event: 'FINALIZED',
        guard: 'isPartial',
      }),
    );
  });
});
