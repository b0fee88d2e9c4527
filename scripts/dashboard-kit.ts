// A small builder for Grafana dashboard JSON (schemaVersion 39): the datasource is a template
// variable (DS_PROMETHEUS) so the files import anywhere; panels flow left to right on a 24-column grid.

export const SCHEMA_VERSION = 39;
const DS = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

export interface Query {
  readonly expr: string;
  readonly legend?: string;
  readonly format?: 'time_series' | 'heatmap';
}

export interface PanelOpts {
  readonly w?: number;
  readonly h?: number;
  readonly description?: string;
  readonly stack?: boolean;
  readonly min?: number;
  readonly max?: number;
  /** Repeat the panel for each value of this template variable. */
  readonly repeat?: string;
}

export type Panel = Record<string, unknown> & { type: string; title: string };

/** `name{instance=~"$instance",extra}`: every query is scoped to the selected instances. */
export function sel(name: string, extra = ''): string {
  return `${name}{instance=~"$instance"${extra ? `,${extra}` : ''}}`;
}

export const rate = (name: string, extra = ''): string => `rate(${sel(name, extra)}[$__rate_interval])`;

/** p-quantile of a histogram family, by the given labels (le is added). */
export function quantile(q: number, family: string, by: string[], extra = ''): string {
  return `histogram_quantile(${q}, sum by (${[...by, 'le'].join(', ')}) (${rate(`${family}_bucket`, extra)}))`;
}

function targets(queries: readonly Query[]): unknown[] {
  return queries.map((q, i) => ({
    datasource: DS,
    refId: String.fromCharCode(65 + i),
    expr: q.expr,
    legendFormat: q.legend ?? '__auto',
    range: true,
    ...(q.format ? { format: q.format } : {}),
  }));
}

export function timeseries(title: string, unit: string, queries: readonly Query[], o: PanelOpts = {}): Panel {
  return {
    type: 'timeseries',
    title,
    description: o.description ?? '',
    datasource: DS,
    targets: targets(queries),
    fieldConfig: {
      defaults: {
        unit,
        ...(o.min !== undefined ? { min: o.min } : {}),
        ...(o.max !== undefined ? { max: o.max } : {}),
        custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: o.stack ? 30 : 10, showPoints: 'never', stacking: { mode: o.stack ? 'normal' : 'none', group: 'A' } },
      },
      overrides: [],
    },
    options: { legend: { displayMode: 'table', placement: 'bottom', calcs: ['mean', 'max', 'lastNotNull'], showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
    ...size(o, 12, 8),
  };
}

export function stat(title: string, unit: string, queries: readonly Query[], o: PanelOpts = {}): Panel {
  return {
    type: 'stat',
    title,
    description: o.description ?? '',
    datasource: DS,
    targets: targets(queries),
    fieldConfig: { defaults: { unit, ...(o.min !== undefined ? { min: o.min } : {}), ...(o.max !== undefined ? { max: o.max } : {}) }, overrides: [] },
    options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area', textMode: 'auto' },
    ...size(o, 6, 5),
  };
}

/** A latency heatmap from histogram bucket increases (Grafana's "heatmap" format de-accumulates). */
export function heatmap(title: string, query: Query, o: PanelOpts = {}): Panel {
  return {
    type: 'heatmap',
    title,
    description: o.description ?? '',
    datasource: DS,
    targets: targets([{ ...query, format: 'heatmap', legend: query.legend ?? '{{le}}' }]),
    options: {
      calculate: false,
      yAxis: { unit: 's', axisPlacement: 'left' },
      cellGap: 1,
      color: { mode: 'scheme', scheme: 'Oranges', steps: 64, exponent: 0.5, fill: 'dark-orange', scale: 'exponential', reverse: false },
      rowsFrame: { layout: 'auto' },
      tooltip: { mode: 'single', yHistogram: true },
      legend: { show: true },
    },
    fieldConfig: { defaults: { custom: { scaleDistribution: { type: 'linear' } } }, overrides: [] },
    ...(o.repeat ? { repeat: o.repeat, repeatDirection: 'h', maxPerRow: 3 } : {}),
    ...size(o, 8, 8),
  };
}

export function row(title: string): Panel {
  return { type: 'row', title, collapsed: false, panels: [], w: 24, h: 1 };
}

function size(o: PanelOpts, w: number, h: number): { w: number; h: number } {
  return { w: o.w ?? w, h: o.h ?? h };
}

export interface Variable {
  readonly name: string;
  readonly label: string;
  /** label_values(...) query. */
  readonly query: string;
  readonly regex?: string;
}

/** Assigns gridPos (rows start a new line; panels wrap at 24 columns) and ids. */
function layout(panels: Panel[]): Panel[] {
  let x = 0;
  let y = 0;
  let rowH = 0;
  return panels.map((p, i) => {
    const { w, h, ...rest } = p as Panel & { w: number; h: number };
    if (p.type === 'row' || x + w > 24) {
      y += rowH;
      x = 0;
      rowH = 0;
    }
    const gridPos = { h, w, x, y };
    x += w;
    rowH = Math.max(rowH, h);
    if (p.type === 'row') {
      y += h;
      x = 0;
      rowH = 0;
    }
    return { id: i + 1, gridPos, ...rest } as Panel;
  });
}

export function dashboard(uid: string, title: string, description: string, variables: Variable[], panels: Panel[]): Record<string, unknown> {
  return {
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.4.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      ...[...new Set(panels.map((p) => p.type).filter((t) => t !== 'row'))].sort().map((t) => ({ type: 'panel', id: t, name: t, version: '' })),
    ],
    uid,
    title,
    description,
    tags: ['kurve'],
    schemaVersion: SCHEMA_VERSION,
    version: 1,
    editable: true,
    graphTooltip: 1,
    refresh: '10s',
    time: { from: 'now-1h', to: 'now' },
    timepicker: {},
    timezone: 'browser',
    links: [{ type: 'dashboards', tags: ['kurve'], asDropdown: true, title: 'Kurve dashboards', includeVars: true, keepTime: true }],
    annotations: { list: [{ builtIn: 1, datasource: { type: 'grafana', uid: '-- Grafana --' }, enable: true, hide: true, iconColor: 'rgba(0, 211, 255, 1)', name: 'Annotations & Alerts', type: 'dashboard' }] },
    templating: {
      list: [
        { name: 'DS_PROMETHEUS', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1, regex: '', options: [] },
        ...variables.map((v) => ({
          name: v.name,
          label: v.label,
          type: 'query',
          datasource: DS,
          definition: v.query,
          query: { query: v.query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
          regex: v.regex ?? '',
          refresh: 2,
          sort: 1,
          multi: true,
          includeAll: true,
          allValue: '.*',
          current: { selected: true, text: ['All'], value: ['$__all'] },
          hide: 0,
          options: [],
        })),
      ],
    },
    panels: layout(panels),
  };
}

/** Every PromQL expression in a dashboard, with the panel it belongs to (for tests and docs). */
export function expressions(d: Record<string, unknown>): Array<{ panel: string; expr: string }> {
  const out: Array<{ panel: string; expr: string }> = [];
  const walk = (panels: unknown[]): void => {
    for (const p of panels as Array<{ title: string; targets?: Array<{ expr: string }>; panels?: unknown[] }>) {
      for (const t of p.targets ?? []) out.push({ panel: p.title, expr: t.expr });
      if (p.panels) walk(p.panels);
    }
  };
  walk(d.panels as unknown[]);
  return out;
}
