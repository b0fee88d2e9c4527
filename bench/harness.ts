// The benchmark harness: named benchmarks produce rows (one figure per system, measured in the
// same run), a target per row, a markdown table with ratios, and a JSON record of the run.
import type { BenchEnv } from './env';

/** A figure for one system, or why there is none. */
export type Cell = { readonly value: number; readonly note?: string } | { readonly unavailable: string } | { readonly error: string };

/**
 * What a row must achieve. `ratio`: kurve / ext4 (or kurve / reference) against a bound;
 * `absolute`: kurve's own value against a bound. `min` means higher is better.
 */
export interface Target {
  readonly kind: 'ratio-ext4' | 'absolute' | 'ratio-reference';
  readonly bound: 'min' | 'max';
  readonly value: number;
}

/** One measured quantity on each system. The reference column is for A/B rows (e.g. BPF off). */
export interface Row {
  readonly name: string;
  readonly unit: string;
  readonly higherIsBetter: boolean;
  readonly ext4?: Cell;
  readonly baseline?: Cell;
  readonly kurve?: Cell;
  /** An A/B comparison inside Kurve (e.g. without fuse_trace): label + cell. */
  readonly reference?: { readonly label: string; readonly cell: Cell };
  readonly target?: Target;
  readonly notes?: string;
}

export interface Benchmark {
  readonly name: string;
  readonly description: string;
  run(env: BenchEnv): Promise<Row[]>;
}

export interface RowResult extends Row {
  readonly benchmark: string;
  readonly ratioExt4?: number;
  readonly ratioBaseline?: number;
  readonly ratioReference?: number;
  readonly met?: boolean;
}

export const valueOf = (c: Cell | undefined): number | undefined => (c && 'value' in c ? c.value : undefined);

/** Runs a measurement and turns a throw into an error cell, so one failure never stops the run. */
export async function cell(fn: () => Promise<Cell | number>): Promise<Cell> {
  try {
    const r = await fn();
    return typeof r === 'number' ? { value: r } : r;
  } catch (err) {
    if (err instanceof Unavailable) return { unavailable: err.message };
    return { error: (err as Error)?.message?.split('\n')[0] ?? String(err) };
  }
}

/** Thrown when a system cannot be measured here (not built, no privileges); reported, not failed. */
export class Unavailable extends Error {}

export function evaluate(benchmark: string, row: Row): RowResult {
  const k = valueOf(row.kurve);
  const e = valueOf(row.ext4);
  const b = valueOf(row.baseline);
  const r = valueOf(row.reference?.cell);
  const ratio = (x?: number, y?: number): number | undefined => (x !== undefined && y !== undefined && y !== 0 ? x / y : undefined);
  const ratioExt4 = ratio(k, e);
  const ratioBaseline = ratio(k, b);
  const ratioReference = ratio(k, r);
  let met: boolean | undefined;
  const t = row.target;
  if (t) {
    const x = t.kind === 'absolute' ? k : t.kind === 'ratio-ext4' ? ratioExt4 : ratioReference;
    if (x !== undefined) met = t.bound === 'min' ? x >= t.value : x <= t.value;
  }
  return { ...row, benchmark, ratioExt4, ratioBaseline, ratioReference, met };
}

export function fmtNumber(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

function fmtCell(c: Cell | undefined): string {
  if (!c) return '–';
  if ('value' in c) return fmtNumber(c.value) + (c.note ? ` (${c.note})` : '');
  if ('unavailable' in c) return `unavailable: ${c.unavailable}`;
  return `error: ${c.error}`;
}

function fmtTarget(t: Target | undefined, unit: string): string {
  if (!t) return '–';
  const op = t.bound === 'min' ? '≥' : '≤';
  if (t.kind === 'absolute') return `${op} ${fmtNumber(t.value)} ${unit}`;
  return `${op} ${t.value}× ${t.kind === 'ratio-ext4' ? 'ext4' : 'ref'}`;
}

const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The run's markdown table: one line per row, ratios as Kurve ÷ other (for times, lower is better). */
export function markdownTable(rows: RowResult[]): string {
  const head = ['benchmark', 'unit', 'ext4', 'fuse-native', 'Kurve', 'reference', 'Kurve/ext4', 'Kurve/fuse-native', 'Kurve/ref', 'target', 'met'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  const r = (x?: number): string => (x === undefined ? '–' : `${x.toFixed(2)}×`);
  const notes: string[] = [];
  for (const row of rows) {
    const ref = row.reference ? `${row.reference.label}: ${fmtCell(row.reference.cell)}` : '–';
    const met = row.met === undefined ? (row.target ? 'n/a' : '–') : row.met ? 'met' : 'NOT met';
    let name = row.name;
    if (row.notes) {
      notes.push(row.notes);
      name += ` [${notes.length}]`;
    }
    lines.push(`| ${[name, row.unit, fmtCell(row.ext4), fmtCell(row.baseline), fmtCell(row.kurve), ref,
      r(row.ratioExt4), r(row.ratioBaseline), r(row.ratioReference), fmtTarget(row.target, row.unit), met].map(esc).join(' | ')} |`);
  }
  if (notes.length) lines.push('', ...notes.map((n, i) => `[${i + 1}] ${n}`));
  return lines.join('\n');
}
