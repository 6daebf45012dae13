// How numbers, times and statuses read on screen, in one place.

/** The statuses after which nothing changes (mirrors FINAL_STATUSES in src/summary.ts). */
const FINAL = new Set(['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED']);

/** @param {string} status */
export const isFinal = (status) => FINAL.has(status);

/**
 * Whole percent settled, rounded down so 100 % means every partition has settled.
 * @param {{ progress: number }} summary
 */
export const percent = (summary) => Math.floor(summary.progress * 100);

/** @param {{ succeeded: number; failed: number }} summary */
export const settled = (summary) => summary.succeeded + summary.failed;

/** @param {number} n */
export const count = (n) => n.toLocaleString('en');

/** @param {string | undefined} iso */
export function time(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** @param {number | undefined} ms */
export function duration(ms) {
  if (ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/**
 * Short text for a result or an error message in a table cell.
 * @param {unknown} value
 * @param {number} [max]
 */
export function brief(value, max = 120) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) return '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * The dashboard path of a batch page.
 * @param {string} base
 * @param {string} id
 */
export const batchHref = (base, id) => `${base}/ui/batch/${encodeURIComponent(id)}`;
