import { LeaseLostError, PartitaError, StoreError, ValidationError } from '../errors.js';
import type { Settled } from './sqlite-group.js';

/**
 * How a write's end crosses from the writer thread (src/store/sqlite-writer.ts) to the store: an
 * answer as is (rows, numbers, booleans: what structured clone keeps), an error as the fields that
 * make it again on this side, with its class and `code`. The writer raises only these three
 * classes; anything else became a StoreError there (`toStoreError`).
 */
export type WireSettled =
  | { ok: true; value: unknown }
  | {
      ok: false;
      code: string;
      message: string;
      batchId?: string | undefined;
      issues?: ReadonlyArray<{ path: string; message: string }> | undefined;
    };

export function toWire(s: Settled): WireSettled {
  if (s.ok) return s;
  const err = s.error;
  if (err instanceof LeaseLostError)
    return { ok: false, code: err.code, message: err.message, batchId: err.batchId };
  if (err instanceof ValidationError)
    return { ok: false, code: err.code, message: err.message, issues: err.issues };
  const message = err instanceof Error ? err.message : String(err);
  return { ok: false, code: err instanceof PartitaError ? err.code : 'STORE', message };
}

export function fromWire(w: WireSettled): Settled {
  if (w.ok) return w;
  if (w.code === 'LEASE_LOST') return { ok: false, error: new LeaseLostError(w.batchId ?? '') };
  if (w.code === 'VALIDATION') return { ok: false, error: new ValidationError(w.message, w.issues ?? []) };
  return { ok: false, error: new StoreError(w.message) };
}
