import { HttpProblem } from './problem.js';

type ServeUi = (request: Request, opts: { basePath: string; path: string }) => Promise<Response | undefined>;

let loading: Promise<ServeUi> | undefined;

/**
 * `${basePath}/ui` and below: the dashboard (src/ui/serve.ts). Loaded on the first request for it,
 * so an API-only host never loads the dashboard's code or assets.
 */
export async function ui(request: Request, basePath: string, path: string): Promise<Response> {
  loading ??= import('../ui/serve.js').then((m) => m.serveUi as ServeUi);
  const serve = await loading.catch((err: unknown) => {
    loading = undefined; // try again next time
    throw err;
  });
  const response = await serve(request, { basePath, path });
  if (!response) throw new HttpProblem(404, 'NO_ROUTE', `No dashboard page at ${basePath}${path}.`);
  return response;
}
