import { h } from './dom.js';

/**
 * The list's filters, kept in the page URL (?status=&job=) so a filtered list can be bookmarked
 * and survives a reload. The statuses come from the statechart, so a status added to the machine
 * shows up here by itself.
 *
 * @param {string[]} statuses
 * @param {(filter: { status: string; job: string }) => void} onChange
 */
export function filters(statuses, onChange) {
  const params = new URLSearchParams(location.search);
  const status = h(
    'select',
    { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'Any status'),
    statuses.map((s) => h('option', { value: s }, s)),
  );
  /** @type {HTMLSelectElement} */ (status).value = params.get('status') ?? '';
  const job = h('input', {
    id: 'filter-job',
    name: 'job',
    type: 'search',
    list: 'jobs-seen',
    autocomplete: 'off',
    value: params.get('job') ?? '',
  });
  const jobsSeen = h('datalist', { id: 'jobs-seen' });
  const current = () => ({
    status: /** @type {HTMLSelectElement} */ (status).value,
    job: /** @type {HTMLInputElement} */ (job).value.trim(),
  });
  const apply = () => {
    const { status: s, job: j } = current();
    const q = new URLSearchParams();
    if (s) q.set('status', s);
    if (j) q.set('job', j);
    const search = q.toString();
    history.replaceState(history.state, '', `${location.pathname}${search ? `?${search}` : ''}`);
    onChange(current());
  };
  status.addEventListener('change', apply);
  const el = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      'aria-label': 'Filter batches',
      /** @param {SubmitEvent} e */
      onsubmit: (e) => {
        e.preventDefault();
        apply();
      },
    },
    h('div', { class: 'field' }, h('label', { for: 'filter-status' }, 'Status'), status),
    h('div', { class: 'field' }, h('label', { for: 'filter-job' }, 'Job'), job, jobsSeen),
    h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Apply')),
  );
  return {
    el,
    current,
    /** Offer the jobs seen so far as suggestions. @param {Iterable<string>} jobs */
    jobs(jobs) {
      jobsSeen.replaceChildren(...[...jobs].sort().map((j) => h('option', { value: j })));
    },
  };
}
