/**
 * partita/http: an engine's HTTP API as a fetch-standard handler, `(Request) => Promise<Response>`,
 * and its adapter to node:http. Routes, status codes and mounting: docs/operating.md.
 */
export { createHandler } from './handler.js';
export { type NodeListenerOptions, toNodeListener } from './node.js';
export type {
  Action,
  Authorize,
  AuthorizeContext,
  FetchHandler,
  HandlerOptions,
  Page,
} from './types.js';
