import { HttpProblem } from './problem.js';

/**
 * Reading a JSON request body with a size limit. The limit holds however the body arrives: a
 * `Content-Length` beyond it is refused before a byte is read, and a streamed body is cut off as
 * soon as it goes past (the node adapter also stops reading the socket, see node.ts).
 */

/** The node adapter errors the body stream with this when the client sends more than allowed. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

export function tooLarge(limit: number): HttpProblem {
  return new HttpProblem(413, 'BODY_TOO_LARGE', `The request body is larger than ${limit} bytes.`);
}

function isJson(contentType: string | null): boolean {
  if (!contentType) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || type.endsWith('+json');
}

/**
 * The body parsed as JSON, or `undefined` when there is none. A body of another media type is
 * refused (415): a JSON content type cannot be sent cross-site without a CORS preflight, which
 * keeps a plain HTML form on another site from submitting or cancelling batches.
 */
export async function readJson(request: Request, maxBytes: number): Promise<unknown> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  if (!request.body) return undefined;
  const text = await readText(request.body, maxBytes);
  if (text.trim() === '') return undefined;
  if (!isJson(request.headers.get('content-type')))
    throw new HttpProblem(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json.');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpProblem(400, 'VALIDATION', `The body is not valid JSON: ${(err as Error).message}`);
  }
}

async function readText(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<string> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        // Stop the sender: nothing more of this body will be read.
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw tooLarge(err.limit);
    throw err;
  } finally {
    reader.releaseLock();
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(Buffer.concat(chunks));
}
