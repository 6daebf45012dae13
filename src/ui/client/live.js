import { isFinal } from './format.js';
import { watch } from './watch.js';

/**
 * Browsers open at most 6 connections per host over HTTP/1.1 and an event stream holds one for as
 * long as it lives: with more streams than that, every other request of the page would wait. Four
 * leaves two for the API calls. Over HTTP/2 this limit is moot, but harmless.
 */
const MAX_STREAMS = 4;

/**
 * Live rows of the batch list: one event stream per running batch that is on screen, at most
 * MAX_STREAMS at once, first rows first. A row scrolled off screen, or a hidden tab, gives its stream
 * up; when it comes back its stream starts with the current summary, so nothing is missed.
 *
 * @param {(id: string) => string} urlOf the events URL of a batch
 */
export function liveRows(urlOf) {
  /** @type {Map<string, { el: Element; status: string; visible: boolean; gone: boolean; onSummary: (s: any) => void }>} */
  const rows = new Map();
  /** @type {Map<string, () => void>} */
  const streams = new Map();
  /** @type {WeakMap<Element, string>} */
  const idOf = new WeakMap();
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const id = idOf.get(entry.target);
      const row = id === undefined ? undefined : rows.get(id);
      if (row) row.visible = entry.isIntersecting;
    }
    sync();
  });

  function sync() {
    const wanted = [...rows.entries()]
      .filter(([, r]) => r.visible && !r.gone && !isFinal(r.status) && !document.hidden)
      .sort(([, a], [, b]) =>
        a.el.compareDocumentPosition(b.el) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1,
      )
      .slice(0, MAX_STREAMS)
      .map(([id]) => id);
    for (const [id, close] of streams) {
      if (wanted.includes(id)) continue;
      close();
      streams.delete(id);
    }
    for (const id of wanted) if (!streams.has(id)) open(id);
  }

  /** @param {string} id */
  function open(id) {
    const close = watch(
      urlOf(id),
      (summary) => {
        const row = rows.get(id);
        if (!row) return;
        row.status = summary.status;
        row.onSummary(summary);
        if (isFinal(summary.status)) {
          streams.delete(id);
          sync(); // a slot is free: the next running row gets it
        }
      },
      () => {
        const row = rows.get(id);
        if (row) row.gone = true;
        streams.delete(id);
        sync();
      },
    );
    streams.set(id, close);
  }

  document.addEventListener('visibilitychange', sync);

  return {
    /**
     * @param {string} id
     * @param {Element} el the row
     * @param {string} status
     * @param {(summary: any) => void} onSummary
     */
    track(id, el, status, onSummary) {
      rows.set(id, { el, status, visible: false, gone: false, onSummary });
      idOf.set(el, id);
      observer.observe(el);
    },
    clear() {
      observer.disconnect();
      for (const close of streams.values()) close();
      streams.clear();
      rows.clear();
    },
    dispose() {
      this.clear();
      document.removeEventListener('visibilitychange', sync);
    },
  };
}
