// The dashboard's entry: reads where the API lives, routes between the list and a batch page.
// Plain DOM modules, no framework and no build step (docs/operating.md, "Dashboard").
import { createApi } from './api.js';
import { batchPage } from './batch-page.js';
import { listPage } from './list-page.js';

const base = document.querySelector('meta[name="partita-base"]')?.getAttribute('content') ?? '';
const api = createApi(base);
const root = /** @type {HTMLElement} */ (document.getElementById('main'));

/** The statechart rarely changes: fetched once per page load, shared by every page. */
let chart;
const statechart = () => {
  chart ??= api.statechart().catch((err) => {
    chart = undefined; // asked again by the next page
    throw err;
  });
  return chart;
};

/** @type {(() => void) | undefined} */
let dispose;
/** The path on screen: a popstate that keeps it (the skip link's #main) needs no new page. */
let shown = '';
/** Counts routings: one that was overtaken while it waited draws nothing. */
let routing = 0;

/**
 * A path segment decoded; as it is when it does not decode (`%E0%A4%A`, a lone `%`): the page then
 * says the batch could not be loaded, where decoding threw and it said "Loading…" for good (an
 * outside probe).
 * @param {string} segment
 */
function decodedSegment(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** @param {boolean} moved focus the new page's heading (not on first load: the browser does that) */
async function route(moved) {
  dispose?.();
  dispose = undefined;
  const mine = ++routing;
  shown = location.pathname;
  const path = location.pathname.slice(base.length);
  const batch = /^\/ui\/batch\/([^/]+)\/?$/.exec(path);
  if (batch) {
    dispose = batchPage({ base, api, root, id: decodedSegment(batch[1]), chart: statechart() });
  } else {
    // The status filter offers the statuses the machine has, in the order the machine has them.
    const statuses = await statechart().then(
      (c) => [...new Set(c.states.map((/** @type {{ status: string }} */ st) => st.status))],
      () => ['QUEUED', 'PROCESSING', 'FINALIZING', 'COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED'],
    );
    if (mine !== routing) return;
    dispose = listPage({ base, api, root, statuses });
  }
  if (moved) root.querySelector('h1')?.focus();
}

/** @param {string} url */
function navigate(url) {
  history.pushState(null, '', url);
  void route(true);
}

// In-page links (data-nav) change the page without reloading it; a modified click (new tab,
// new window) is left to the browser.
document.addEventListener('click', (event) => {
  const link = /** @type {Element} */ (event.target).closest?.('a[data-nav]');
  if (!(link instanceof HTMLAnchorElement) || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(link.href);
});
addEventListener('popstate', () => {
  if (location.pathname !== shown) void route(true);
});
void route(false);
