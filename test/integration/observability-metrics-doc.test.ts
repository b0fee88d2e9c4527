// Every metric the code defines, and every metric a dashboard queries, is documented in
// docs/metrics.md; and every metric name follows the conventions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expressions } from '../../scripts/dashboard-kit';
import { allDashboards } from '../../scripts/gen-dashboards';

const ROOT = path.resolve(__dirname, '..', '..');
const DOC = fs.readFileSync(path.join(ROOT, 'docs', 'metrics.md'), 'utf8');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'gen' ? [] : sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Metric names as string literals anywhere in src/ (definitions, and names read by kurve top). */
function namesInSource(): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of sourceFiles(path.join(ROOT, 'src'))) {
    for (const m of fs.readFileSync(f, 'utf8').matchAll(/['"`](kurve_[a-z0-9_]+)['"`]/g)) out.set(m[1], path.relative(ROOT, f));
  }
  return out;
}

const documented = (name: string): boolean => DOC.includes(`\`${name}\``) || DOC.includes(`${name}\``) || DOC.includes(`\`${name}{`);

describe('docs/metrics.md', () => {
  const names = namesInSource();

  it('finds the metrics defined in src/', () => {
    expect(names.size).toBeGreaterThan(40);
    expect(names.has('kurve_rpc_requests_total')).toBe(true);
  });

  it('documents every metric defined in src/', () => {
    const missing = [...names].filter(([n]) => !documented(n)).map(([n, f]) => `${n} (${f})`);
    expect(missing).toEqual([]);
  });

  it('documents every metric a dashboard queries', () => {
    const missing = new Set<string>();
    for (const d of Object.values(allDashboards())) {
      for (const { expr } of expressions(d)) {
        for (const m of expr.matchAll(/\bkurve_[a-z0-9_]+/g)) {
          const base = m[0].replace(/_(bucket|sum|count)$/, '');
          if (!documented(m[0]) && !documented(base)) missing.add(m[0]);
        }
      }
    }
    expect([...missing]).toEqual([]);
  });

  it('queries only metrics the code exports (or prom-client process defaults)', () => {
    const unknown = new Set<string>();
    for (const d of Object.values(allDashboards())) {
      for (const { expr } of expressions(d)) {
        for (const m of expr.matchAll(/\bkurve_[a-z0-9_]+/g)) {
          const base = m[0].replace(/_(bucket|sum|count)$/, '');
          if (!names.has(m[0]) && !names.has(base) && !/^kurve_(process|nodejs)_/.test(m[0])) unknown.add(m[0]);
        }
      }
    }
    expect([...unknown]).toEqual([]);
  });

  it('names follow the conventions: base units, counters end in _total', () => {
    const bad: string[] = [];
    for (const m of DOC.matchAll(/^\| `(kurve_[a-z0-9_]+)` \| (counter|gauge|histogram) \|/gm)) {
      const [, name, type] = m;
      if (type === 'counter' && !name.endsWith('_total')) bad.push(`${name}: counter without _total`);
      if (type !== 'counter' && name.endsWith('_total')) bad.push(`${name}: ${type} ending in _total`);
      if (/_(ms|us|milliseconds|kb|mb|kib|mib)(_|$)/.test(name)) bad.push(`${name}: not a base unit`);
    }
    expect(bad).toEqual([]);
  });
});
