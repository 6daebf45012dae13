import { h, replace } from './dom.js';
import { filters } from './filters.js';
import { batchHref, count, time } from './format.js';
import { liveRows } from './live.js';
import { progressBar, statusBadge } from './progress.js';
import { submitForm } from './submit-form.js';

const PAGE = 50;

/**
 * The batch list: filters, a submit form, one row per batch with a live progress bar.
 *
 * @param {{ base: string; api: import('./api.js').Api; root: HTMLElement; statuses: string[] }} ctx
 * @returns {() => void} dispose
 */
export function listPage({ base, api, root, statuses }) {
  document.title = 'Batches · partita';
  const live = liveRows(api.eventsUrl);
  const message = h('p', { class: 'message', role: 'status', 'aria-live': 'polite' });
  /** @param {string} text @param {boolean} [error] */
  const say = (text, error = false) => {
    message.textContent = text;
    message.classList.toggle('error', error);
  };
  const tbody = h('tbody');
  const empty = h('p', { class: 'empty', hidden: true }, 'No batches match these filters.');
  const more = h('button', { type: 'button', hidden: true, onclick: () => load(false) }, 'Load more');
  const refresh = h('button', { type: 'button', onclick: () => load(true) }, 'Refresh');
  const jobs = new Set();
  const filter = filters(statuses, () => load(true));
  /** @type {string | undefined} */
  let cursor;
  let generation = 0;

  /** @param {any} summary */
  function row(summary) {
    const bar = progressBar(`Progress of batch ${summary.id}`);
    const status = h('td', {}, statusBadge(summary.status));
    const failed = h('td', { class: 'num' });
    const tr = h(
      'tr',
      { 'data-id': summary.id },
      h('th', { scope: 'row' }, h('a', { href: batchHref(base, summary.id), 'data-nav': true }, summary.id)),
      h('td', {}, summary.job),
      status,
      h('td', { class: 'progress-cell' }, bar.el),
      failed,
      h('td', {}, h('time', { datetime: summary.createdAt }, time(summary.createdAt))),
    );
    /** @param {any} s */
    const update = (s) => {
      replace(status, statusBadge(s.status));
      failed.textContent = count(s.failed);
      bar.update(s);
    };
    update(summary);
    live.track(summary.id, tr, summary.status, update);
    jobs.add(summary.job);
    return tr;
  }

  /** @param {boolean} fresh start again from the first page */
  async function load(fresh) {
    const mine = ++generation; // a slower earlier answer must not land after a newer one
    if (fresh) cursor = undefined;
    more.setAttribute('disabled', '');
    try {
      const { status, job } = filter.current();
      const page = await api.list({ status, job, limit: PAGE, cursor });
      if (mine !== generation) return;
      if (fresh) {
        live.clear();
        tbody.replaceChildren();
      }
      for (const summary of page.items) tbody.append(row(summary));
      cursor = page.nextCursor;
      more.hidden = !cursor;
      empty.hidden = tbody.childElementCount > 0;
      filter.jobs(jobs);
      if (fresh) say('');
    } catch (err) {
      if (mine === generation) say(`Could not load batches: ${/** @type {Error} */ (err).message}`, true);
    } finally {
      more.removeAttribute('disabled');
    }
  }

  /** @param {any} summary */
  const submitted = (summary) => {
    if (tbody.querySelector(`tr[data-id="${CSS.escape(summary.id)}"]`)) return;
    tbody.prepend(row(summary));
    empty.hidden = true;
  };

  replace(
    root,
    h('div', { class: 'heading' }, h('h1', { tabindex: -1 }, 'Batches'), refresh),
    filter.el,
    submitForm(api, submitted, say),
    message,
    h(
      'table',
      { class: 'batches' },
      h('caption', { class: 'visually-hidden' }, 'Batches, newest first'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Batch', 'Job', 'Status', 'Progress', 'Failed', 'Created'].map((t) =>
            h('th', { scope: 'col' }, t),
          ),
        ),
      ),
      tbody,
    ),
    empty,
    more,
  );
  void load(true);
  return () => live.dispose();
}
