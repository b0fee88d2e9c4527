// A parser for the Prometheus text exposition format (version 0.0.4), enough for `kurve top` and the
// observability tests: HELP/TYPE lines, labels with escapes, NaN/±Inf, optional timestamps.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Scrape {
  readonly samples: Sample[];
  /** TYPE per metric family name (histogram families own their _bucket/_sum/_count series). */
  readonly types: ReadonlyMap<string, MetricType>;
  readonly help: ReadonlyMap<string, string>;
}

export class ParseError extends Error {
  constructor(readonly line: number, reason: string) {
    super(`metrics line ${line}: ${reason}`);
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(s: string, line: number): number {
  // Case-insensitive, as Prometheus (Go's ParseFloat) reads them: prom-client writes NaN as "Nan".
  switch (s.toLowerCase()) {
    case 'nan': return NaN;
    case '+inf': case 'inf': return Infinity;
    case '-inf': return -Infinity;
  }
  const v = Number(s);
  if (s === '' || Number.isNaN(v)) throw new ParseError(line, `bad value "${s}"`);
  return v;
}

/** Parses `{a="x",b="y"}` starting at s[i] === '{'; returns labels and the index after '}'. */
function parseLabels(s: string, i: number, line: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++;
  for (;;) {
    while (s[i] === ' ' || s[i] === ',') i++;
    if (s[i] === '}') return [labels, i + 1];
    const m = LABEL_NAME.exec(s.slice(i));
    if (!m) throw new ParseError(line, `bad label name at column ${i + 1}`);
    i += m[0].length;
    if (s[i] !== '=' || s[i + 1] !== '"') throw new ParseError(line, `expected ="… after label ${m[0]}`);
    i += 2;
    let v = '';
    for (;;) {
      const c = s[i++];
      if (c === undefined) throw new ParseError(line, 'unterminated label value');
      if (c === '"') break;
      if (c === '\\') {
        const e = s[i++];
        v += e === 'n' ? '\n' : e;
      } else {
        v += c;
      }
    }
    labels[m[0]] = v;
  }
}

export function parsePrometheusText(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, MetricType>();
  const help = new Map<string, string>();
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n].trim();
    if (!raw) continue;
    if (raw.startsWith('#')) {
      const m = /^#\s*(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(raw);
      if (m?.[1] === 'TYPE') types.set(m[2], (m[3].trim() || 'untyped') as MetricType);
      else if (m?.[1] === 'HELP') help.set(m[2], m[3].replace(/\\n/g, '\n').replace(/\\\\/g, '\\'));
      continue;
    }
    const m = NAME.exec(raw);
    if (!m) throw new ParseError(n + 1, 'expected a metric name');
    let i = m[0].length;
    let labels: Record<string, string> = {};
    if (raw[i] === '{') [labels, i] = parseLabels(raw, i, n + 1);
    const rest = raw.slice(i).trim().split(/\s+/);
    samples.push({ name: m[0], labels, value: parseValue(rest[0] ?? '', n + 1) });
  }
  return { samples, types, help };
}

/** The family a series belongs to (strips _bucket/_sum/_count of histograms and summaries). */
export function familyOf(name: string, types: ReadonlyMap<string, MetricType>): string {
  if (types.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count|total|created)$/.exec(name);
  return m && types.has(m[1]) ? m[1] : name;
}
