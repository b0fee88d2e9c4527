// Fetches and parses one /metrics scrape over HTTP, with a deadline (kurve top, observability tests).
import * as http from 'node:http';
import { parsePrometheusText, Scrape } from './prom-text';

/** `target` is HOST:PORT or a full http:// URL; the path defaults to /metrics. */
export function metricsUrl(target: string): string {
  if (/^https?:\/\//.test(target)) return target;
  return `http://${target}/metrics`;
}

export function fetchText(url: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    // agent: false: no keep-alive socket outlives the call (it would hold a CLI or a test open).
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) reject(new Error(`${url}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
        else resolve(body);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ECONNREFUSED' ? new Error(`${url}: connection refused (is the mount running with --metrics at that address?)`) : err));
  });
}

export async function scrape(target: string, timeoutMs?: number): Promise<{ scrape: Scrape; at: number }> {
  const text = await fetchText(metricsUrl(target), timeoutMs);
  return { scrape: parsePrometheusText(text), at: performance.now() };
}
