// Renders a `kurve top` frame as plain text (fits 80 columns; no colours, so --once is greppable).
import type { Frame, OpRow } from './frame';

export function fmtRate(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(1);
}

export function fmtBytes(v: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** Seconds as µs/ms/s with three significant digits; '–' when unknown. */
export function fmtSeconds(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  if (v < 1e-3) return `${(v * 1e6).toPrecision(3)}µs`;
  if (v < 1) return `${(v * 1e3).toPrecision(3)}ms`;
  return `${v.toPrecision(3)}s`;
}

const pct = (v: number | undefined): string => (v === undefined ? '–' : `${(v * 100).toFixed(1)}%`);

function opTable(title: string, rows: OpRow[] | undefined, limit: number): string[] {
  if (rows === undefined) return [`${title}: not available (no fuse_trace metrics: BPF not loaded on this mount)`];
  const active = rows.filter((r) => r.opsPerSec > 0 || r.errorsPerSec > 0).slice(0, limit);
  const lines = [`${title}`, `  ${'OP'.padEnd(14)}${'ops/s'.padStart(10)}${'p50'.padStart(10)}${'p99'.padStart(10)}${'err/s'.padStart(9)}`];
  if (!active.length) lines.push('  (idle)');
  for (const r of active) {
    lines.push(`  ${r.op.padEnd(14)}${fmtRate(r.opsPerSec).padStart(10)}${fmtSeconds(r.p50).padStart(10)}${fmtSeconds(r.p99).padStart(10)}${fmtRate(r.errorsPerSec).padStart(9)}`);
  }
  return lines;
}

export function renderFrame(f: Frame, source: string, at: Date, limit = 12): string {
  const userOps = f.user.reduce((a, r) => a + r.opsPerSec, 0);
  const kernelOps = f.kernel?.reduce((a, r) => a + r.opsPerSec, 0);
  const lines = [
    `kurve top — ${source} — ${at.toISOString().slice(11, 19)} UTC — interval ${f.intervalSeconds.toFixed(1)} s`,
    `requests  daemon ${fmtRate(userOps)}/s   kernel ${kernelOps === undefined ? '–' : `${fmtRate(kernelOps)}/s`}   errors ${fmtRate(f.errorsPerSec)}/s   invalidations ${fmtRate(f.invalidationsPerSec)}/s`,
    `data      read ${fmtBytes(f.readBytesPerSec)}/s   written ${fmtBytes(f.writtenBytesPerSec)}/s   uploaded ${fmtBytes(f.uploadedBytesPerSec)}/s   fetched ${fmtBytes(f.fetchedBytesPerSec)}/s`,
    `caches    chunk-cache hits ${pct(f.cacheHitRatio)}   passthrough opens ${pct(f.passthroughShare)}   feed ${f.feedConnected === undefined ? '–' : f.feedConnected ? 'connected' : 'DISCONNECTED'}`,
    `process   handles ${f.openHandles ?? '–'}   inodes ${f.inodes ?? '–'}   cpu ${pct(f.cpuShare)}   rss ${f.rssBytes === undefined ? '–' : fmtBytes(f.rssBytes)}`,
    '',
    ...opTable('FUSE requests seen by the daemon (userspace)', f.user, limit),
    '',
    ...opTable('FUSE requests seen by the kernel (BPF fuse_trace)', f.kernel, limit),
  ];
  return lines.join('\n') + '\n';
}
