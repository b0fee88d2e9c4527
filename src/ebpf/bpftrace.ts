// Runs a bpftrace program with `-f json` and parses its output (one JSON object per line) into
// typed events. Ends after a duration or on abort (SIGINT to bpftrace, which then prints its maps).
import { spawn } from 'node:child_process';
import { findInPath } from './features';

export interface HistBucket {
  readonly min: number;
  readonly max: number;
  readonly count: number;
}
/** Map keys as bpftrace prints them: multi-part keys are joined with commas, split back here. */
export type BpftraceEvent =
  | { type: 'attached_probes'; probes: number }
  | { type: 'printf'; text: string }
  | { type: 'time'; text: string }
  | { type: 'map'; name: string; entries: Array<{ key: string[]; value: number }> }
  | { type: 'hist'; name: string; series: Array<{ key: string[]; buckets: HistBucket[] }> }
  | { type: 'stats'; name: string; series: Array<{ key: string[]; count: number; average: number; total: number }> };

function splitKey(k: string): string[] {
  return k === '' ? [] : k.split(',');
}

/** Parses one line of `bpftrace -f json`; returns undefined for blank or unknown lines. */
export function parseBpftraceLine(line: string): BpftraceEvent | undefined {
  if (line.trim() === '') return undefined;
  let msg: { type?: string; data?: unknown };
  try {
    msg = JSON.parse(line) as { type?: string; data?: unknown };
  } catch {
    return undefined;
  }
  const data = msg.data as Record<string, unknown>;
  switch (msg.type) {
    case 'attached_probes':
      return { type: 'attached_probes', probes: Number((data as { probes?: number }).probes ?? 0) };
    case 'printf':
    case 'time':
      return { type: msg.type, text: String(msg.data) };
    case 'map': {
      const [name, v] = Object.entries(data)[0] ?? ['', {}];
      const entries = typeof v === 'object' && v !== null
        ? Object.entries(v as Record<string, number>).map(([k, n]) => ({ key: splitKey(k), value: Number(n) }))
        : [{ key: [], value: Number(v) }];
      return { type: 'map', name, entries };
    }
    case 'hist': {
      const [name, v] = Object.entries(data)[0] ?? ['', []];
      const series = Array.isArray(v)
        ? [{ key: [], buckets: v as HistBucket[] }]
        : Object.entries(v as Record<string, HistBucket[]>).map(([k, b]) => ({ key: splitKey(k), buckets: b }));
      return { type: 'hist', name, series };
    }
    case 'stats': {
      const [name, v] = Object.entries(data)[0] ?? ['', {}];
      type S = { count: number; average: number; total: number };
      const obj = v as Record<string, S> | S;
      const series = 'count' in obj && typeof obj.count === 'number'
        ? [{ key: [], ...(obj as S) }]
        : Object.entries(obj as Record<string, S>).map(([k, s]) => ({ key: splitKey(k), ...s }));
      return { type: 'stats', name, series };
    }
    default:
      return undefined;
  }
}

export interface BpftraceRun {
  readonly events: BpftraceEvent[];
  /** stderr lines other than the harmless RLIMIT_MEMLOCK warning. */
  readonly errors: string[];
  readonly exitCode: number | null;
  readonly aborted: boolean;
}

export interface BpftraceOptions {
  /** Ends the run (SIGINT: bpftrace prints its maps and exits) after this long. */
  readonly durationMs: number;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: BpftraceEvent) => void;
  readonly bpftrace?: string;
}

/** Why bpftrace cannot run here, or undefined. */
export function whyNoBpftrace(): string | undefined {
  if (!findInPath('bpftrace')) return 'bpftrace is not installed (apt install bpftrace)';
  if (process.getuid?.() !== 0) return 'bpftrace needs root';
  return undefined;
}

export async function runBpftrace(program: string, opts: BpftraceOptions): Promise<BpftraceRun> {
  const bin = opts.bpftrace ?? findInPath('bpftrace');
  if (!bin) throw new Error('bpftrace is not installed (apt install bpftrace)');
  // The duration is an interval probe: bpftrace exits by itself and prints its maps. (A SIGINT that
  // lands while it is still attaching can be lost, so signals are only for Ctrl-C and are repeated.)
  const ms = Math.max(1, Math.round(opts.durationMs));
  const child = spawn(bin, ['-f', 'json', '-e', `${program}\ninterval:ms:${ms} { exit(); }\n`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: BpftraceEvent[] = [];
  const errors: string[] = [];
  let aborted = false;
  let repeat: NodeJS.Timeout | undefined;
  let killer: NodeJS.Timeout | undefined;
  const stop = () => {
    if (child.exitCode !== null || child.signalCode !== null || killer) return;
    child.kill('SIGINT');
    repeat = setInterval(() => child.kill('SIGINT'), 1_000);
    // Bounded: bpftrace prints its maps on SIGINT; if it has not exited 5 s later, kill it.
    killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  };
  // Safety net if the interval probe never fires (compilation stuck): stop 20 s past the duration.
  const fallback = setTimeout(stop, ms + 20_000);
  let buf = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const ev = parseBpftraceLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (!ev) continue;
      events.push(ev);
      opts.onEvent?.(ev);
    }
  });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const onAbort = () => {
    aborted = true;
    stop();
  };
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const exitCode = await new Promise<number | null>((resolve) => {
    child.on('close', (code) => resolve(code));
    child.on('error', (e) => {
      errors.push(e.message);
      resolve(null);
    });
  });
  clearInterval(repeat);
  clearTimeout(killer);
  clearTimeout(fallback);
  opts.signal?.removeEventListener('abort', onAbort);
  const tail = buf.trim();
  if (tail) {
    const ev = parseBpftraceLine(tail);
    if (ev) events.push(ev);
  }
  for (const line of err.split('\n')) {
    if (line.trim() && !/RLIMIT_MEMLOCK/.test(line)) errors.push(line.trim());
  }
  return { events, errors, exitCode, aborted };
}
