/** JSON responses. Everything the API says is live state, so nothing may be cached. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
  });
}

/** The path of a batch's resource, for `Location`. Ids may hold any character: each is encoded. */
export function batchPath(basePath: string, id: string): string {
  return `${basePath}/batches/${encodeURIComponent(id)}`;
}
