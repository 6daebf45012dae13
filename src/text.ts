/**
 * Showing anyone's text (ids, keys, members' names, error messages from upstream) inside partita's
 * own messages and the CLI's output. This module depends on nothing: the worker runner imports it
 * too (through values.ts).
 */

/**
 * Control characters, the bidirectional controls that reorder what follows them, and the zero-width
 * characters that make two ids look alike: shown as escapes (`\u001b`), never sent as they are.
 * Ids, keys, meta and error messages are anyone's text (a submit over HTTP, an upstream error a
 * handler rethrows): as they were, they could retitle or clear the operator's terminal, rewrite the
 * line of a log that shows a failure, or show `gnp.exe` as `exe.png` (an outside probe).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are what it finds.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]/g;

/** `text` with every control character shown as an escape (see {@link UNSAFE}). */
export function visible(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
