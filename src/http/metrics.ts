import type { Engine } from '../engine.js';
import { registerMetrics } from '../prometheus/index.js';
import { loadPromClient } from '../prometheus/prom-client.js';
import { HttpProblem } from './problem.js';

/**
 * `GET /metrics`: the engine's metrics (partita/prometheus) in a registry of the handler's own, so
 * they never collide with the host's registry. Registered when the handler is created, so the
 * counters count from then on. Without prom-client the route answers 404 saying what to install.
 */
export class MetricsEndpoint {
  private readonly registry: { metrics(): Promise<string>; contentType: string } | undefined;
  private readonly missing: string | undefined;

  constructor(engine: Engine) {
    try {
      const prom = loadPromClient();
      const registry = new prom.Registry();
      registerMetrics(engine, registry);
      this.registry = registry;
    } catch (err) {
      this.missing = (err as Error).message;
    }
  }

  async respond(): Promise<Response> {
    if (!this.registry)
      throw new HttpProblem(404, 'NO_ROUTE', `Metrics are not available: ${this.missing ?? 'disabled'}`);
    const text = await this.registry.metrics();
    return new Response(text, {
      status: 200,
      headers: { 'content-type': this.registry.contentType, 'cache-control': 'no-store' },
    });
  }
}
