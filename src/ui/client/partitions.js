import { h } from './dom.js';
import { brief, duration, time } from './format.js';

const PAGE = 50;
/**
 * Failed first, then the rest by status, each in index order. Each phase is a filtered listing, so
 * no page is spent on rows to skip (the server scans from the first partition for every page).
 */
const PHASES = ['failed', 'succeeded', 'pending'];

/**
 * The batch's partitions, a page at a time ("Load more"): `?status=failed` first, then succeeded,
 * then pending. A snapshot: while the batch runs a partition can move on between two pages, so the
 * table is loaded again when the batch ends, and on "Refresh partitions".
 *
 * @param {import('./api.js').Api} api
 * @param {string} id
 */
export function partitionTable(api, id) {
  const tbody = h('tbody');
  const note = h('p', { class: 'muted', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', hidden: true, onclick: () => next() }, 'Load more partitions');
  /** Index into PHASES; PHASES.length when every partition is shown. */
  let phase = 0;
  /** @type {string | undefined} */
  let cursor;
  let shown = 0;
  let generation = 0;

  /** @param {any} p */
  const row = (p) =>
    h(
      'tr',
      { class: `partition-${p.status}` },
      h('td', { class: 'num' }, p.index),
      h('th', { scope: 'row' }, p.key),
      h('td', {}, h('span', { class: `pstatus pstatus-${p.status}` }, p.status)),
      h('td', { class: 'num' }, p.attempts),
      h('td', { class: 'num' }, duration(p.durationMs)),
      h('td', {}, time(p.finishedAt)),
      h(
        'td',
        { class: 'detail' },
        // Results are left out (they can be large; the API sends them with ?include=result).
        p.error
          ? `${p.error.name}${p.error.code ? ` (${p.error.code})` : ''}: ${brief(p.error.message)}`
          : '',
      ),
    );

  async function next() {
    const mine = generation;
    more.setAttribute('disabled', '');
    try {
      // Fill a page, across phases: there may be fewer failed partitions than a page.
      let added = 0;
      while (phase < PHASES.length && added < PAGE) {
        const page = await api.partitions(id, { status: PHASES[phase], cursor, limit: PAGE - added });
        if (mine !== generation) return;
        tbody.append(...page.items.map(row));
        added += page.items.length;
        cursor = page.nextCursor;
        if (!cursor) phase++;
      }
      shown += added;
      more.hidden = phase === PHASES.length;
      note.textContent = `${shown} partition${shown === 1 ? '' : 's'} shown${phase === PHASES.length ? '' : ' so far'}.`;
    } catch (err) {
      if (mine === generation)
        note.textContent = `Could not load partitions: ${/** @type {Error} */ (err).message}`;
    } finally {
      more.removeAttribute('disabled');
    }
  }

  return {
    el: h(
      'div',
      {},
      h(
        'table',
        { class: 'partitions' },
        h('caption', { class: 'visually-hidden' }, 'Partitions, failed first'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['#', 'Key', 'Status', 'Attempts', 'Took', 'Finished', 'Error'].map((t) =>
              h('th', { scope: 'col' }, t),
            ),
          ),
        ),
        tbody,
      ),
      note,
      more,
    ),
    /** Start again from the first page (after the batch ended, or on request). */
    reload() {
      generation++;
      phase = 0;
      cursor = undefined;
      shown = 0;
      tbody.replaceChildren();
      return next();
    },
  };
}
