import { HttpProblem } from './problem.js';

/**
 * Opaque page cursors: base64url of a small JSON object. Clients pass them back unchanged; the
 * shape may change between versions, so nothing outside this file reads them.
 *
 * - Batch listings: `{ o, id }`, the offset of the next page and the id of the last batch shown.
 *   `engine.list` has no cursor of its own, so a page is read as the first `offset + limit` batches
 *   and sliced (cost grows with the offset: fine for an operator's listing, not for deep paging).
 *   Batches are listed newest first, so batches created meanwhile push older ones down: the next
 *   page looks for the last id shown and continues after it, falling back to the offset.
 * - Partition listings: `{ i }`, the last partition index shown; the next page starts after it.
 */

export interface ListCursor {
  offset: number;
  lastId: string | undefined;
}

function encode(value: object): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function decode(cursor: string): Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw badCursor();
}

function badCursor(): HttpProblem {
  return new HttpProblem(
    400,
    'VALIDATION',
    'cursor: not a cursor this server gave out',
    {},
    {
      issues: [{ path: 'cursor', message: 'invalid cursor' }],
    },
  );
}

const isIndex = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

export function encodeListCursor(offset: number, lastId: string | undefined): string {
  return encode(lastId === undefined ? { o: offset } : { o: offset, id: lastId });
}

export function decodeListCursor(cursor: string | null): ListCursor {
  if (cursor === null || cursor === '') return { offset: 0, lastId: undefined };
  const { o, id } = decode(cursor);
  if (!isIndex(o) || (id !== undefined && typeof id !== 'string')) throw badCursor();
  return { offset: o, lastId: id };
}

export function encodePartitionCursor(lastIndex: number): string {
  return encode({ i: lastIndex });
}

/** The last index shown, or -1 for the first page. */
export function decodePartitionCursor(cursor: string | null): number {
  if (cursor === null || cursor === '') return -1;
  const { i } = decode(cursor);
  if (!isIndex(i)) throw badCursor();
  return i;
}
