import type { StoreError } from '../errors.js';

/**
 * A pending partition whose stored payload does not parse (a damaged row), read in place of its
 * payload (`payloadCell`, src/store/sql-rows.ts). The partition fails with this error, once and
 * without running its handler (src/runtime/work.ts); the batch's other partitions, those of the
 * same page too, run as usual. The row itself is left as it is.
 */
export class UnreadablePayload {
  constructor(readonly error: StoreError) {}
}
