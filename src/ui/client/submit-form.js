import { h } from './dom.js';

/**
 * "Submit a batch": job, input (JSON), optional id and priority; POST /batches. Collapsed by default:
 * operators mostly watch. Invalid JSON is caught here and reported next to the field.
 *
 * @param {import('./api.js').Api} api
 * @param {(summary: any) => void} onSubmitted
 * @param {(text: string, error?: boolean) => void} say
 */
export function submitForm(api, onSubmitted, say) {
  const job = h('input', { id: 'submit-job', name: 'job', required: true, autocomplete: 'off' });
  const inputError = h('p', { id: 'submit-input-error', class: 'field-error', hidden: true });
  const input = h(
    'textarea',
    { id: 'submit-input', name: 'input', rows: 4, required: true, spellcheck: 'false' },
    '{}',
  );
  const id = h('input', { id: 'submit-id', name: 'id', autocomplete: 'off' });
  const priority = h('input', { id: 'submit-priority', name: 'priority', type: 'number', step: 1 });
  const button = h('button', { type: 'submit' }, 'Submit');

  /** @param {SubmitEvent} event */
  async function submit(event) {
    event.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(/** @type {HTMLTextAreaElement} */ (input).value);
    } catch (err) {
      inputError.textContent = `Input is not valid JSON: ${/** @type {Error} */ (err).message}`;
      inputError.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    inputError.hidden = true;
    input.removeAttribute('aria-invalid');
    /** @type {{ job: string; input: unknown; id?: string; priority?: number }} */
    const body = { job: /** @type {HTMLInputElement} */ (job).value.trim(), input: parsed };
    const idValue = /** @type {HTMLInputElement} */ (id).value.trim();
    if (idValue) body.id = idValue;
    const priorityValue = /** @type {HTMLInputElement} */ (priority).value;
    if (priorityValue !== '') body.priority = Number(priorityValue);
    button.setAttribute('disabled', '');
    try {
      const summary = await api.submit(body);
      say(`Submitted batch ${summary.id}.`);
      onSubmitted(summary);
    } catch (err) {
      say(`Could not submit: ${/** @type {Error} */ (err).message}`, true);
    } finally {
      button.removeAttribute('disabled');
    }
  }

  return h(
    'details',
    { class: 'submit' },
    h('summary', {}, 'Submit a batch'),
    h(
      'form',
      { onsubmit: submit, 'aria-label': 'Submit a batch' },
      h('div', { class: 'field' }, h('label', { for: 'submit-job' }, 'Job'), job),
      h(
        'div',
        { class: 'field wide' },
        h('label', { for: 'submit-input' }, 'Input (JSON)'),
        input,
        inputError,
      ),
      h('div', { class: 'field' }, h('label', { for: 'submit-id' }, 'Batch id (optional)'), id),
      h('div', { class: 'field' }, h('label', { for: 'submit-priority' }, 'Priority (optional)'), priority),
      h('div', { class: 'field' }, button),
    ),
  );
}
