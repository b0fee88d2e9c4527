// The process's prom-client registry and the /metrics HTTP endpoint every Kurve process exposes.
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as prom from 'prom-client';
import { moduleLogger } from './logger';

export const registry = new prom.Registry();
let defaultsCollected = false;

/** Process CPU/memory/event-loop metrics, prefixed kurve_ (once per process). */
export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  prom.collectDefaultMetrics({ register: registry, prefix: 'kurve_' });
}

/** Get-or-create, so modules loaded twice in one process (embedded mode) share one metric. */
export function counter<L extends string>(cfg: prom.CounterConfiguration<L>): prom.Counter<L> {
  return (registry.getSingleMetric(cfg.name) as prom.Counter<L> | undefined) ?? new prom.Counter({ ...cfg, registers: [registry] });
}
export function gauge<L extends string>(cfg: prom.GaugeConfiguration<L>): prom.Gauge<L> {
  return (registry.getSingleMetric(cfg.name) as prom.Gauge<L> | undefined) ?? new prom.Gauge({ ...cfg, registers: [registry] });
}
export function histogram<L extends string>(cfg: prom.HistogramConfiguration<L>): prom.Histogram<L> {
  return (registry.getSingleMetric(cfg.name) as prom.Histogram<L> | undefined) ?? new prom.Histogram({ ...cfg, registers: [registry] });
}

/** Latency buckets from 10 µs to ~10 s, for RPC and FUSE request durations. */
export const LATENCY_BUCKETS = [1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricsServer {
  readonly address: string;
  close(): Promise<void>;
}

/** Serves GET /metrics on host:port (port 0 picks a free one). */
export async function startMetricsServer(listen: string): Promise<MetricsServer> {
  const { host, port } = parseHostPort(listen);
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics' && req.url !== '/') {
      res.writeHead(404).end('not found\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => res.writeHead(500).end(String(err.message)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const address = `${addr.address}:${addr.port}`;
  moduleLogger('metrics').info({ address }, 'metrics listening');
  return {
    address,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

export function parseHostPort(s: string, defaultHost = '127.0.0.1'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s.trim());
  if (!m) {
    if (/^\d+$/.test(s.trim())) return { host: defaultHost, port: Number(s) };
    throw new Error(`invalid address "${s}": expected HOST:PORT`);
  }
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in "${s}"`);
  return { host: m[1] ?? (m[2] || defaultHost), port };
}
