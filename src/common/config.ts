// Configuration resolved in one place: flags > environment > config file > defaults.
// Each component declares its options with their defaults; the CLI, the env and the config file
// all feed resolveOptions(), so precedence and parsing live here and nowhere else.
import * as fs from 'node:fs';

export type OptionValue = string | number | boolean | undefined;

/** KURVE_<SNAKE_CASE> for an option key: entryTimeout -> KURVE_ENTRY_TIMEOUT. */
export function envName(key: string): string {
  return `KURVE_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/-/g, '_').toUpperCase()}`;
}

/** Config file: JSON with optional per-component sections, e.g. {"token": "x", "client": {"entryTimeout": 60}}. */
export function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new Error(`invalid config file ${path}: ${(err as Error).message}`);
  }
}

function coerce(key: string, raw: unknown, like: OptionValue, source: string): OptionValue {
  if (raw === undefined || raw === null) return undefined;
  if (typeof like === 'number') {
    const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
    if (!Number.isFinite(n)) throw new Error(`invalid ${key} from ${source}: "${String(raw)}" is not a number`);
    return n;
  }
  if (typeof like === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    const s = String(raw).trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
    throw new Error(`invalid ${key} from ${source}: "${String(raw)}" is not a boolean`);
  }
  return String(raw);
}

export interface ResolveSources {
  readonly flags?: Record<string, unknown>;
  readonly env?: NodeJS.ProcessEnv;
  /** Path to a JSON config file; defaults to $KURVE_CONFIG. */
  readonly configFile?: string;
  /** The section of the config file for this component ("client", "mds", ...). */
  readonly section?: string;
}

/**
 * Resolves every key of `defaults` from flags, then env (KURVE_*), then the config file's section,
 * then its top level, then the default. Values are coerced to the default's type, with clear errors.
 */
export function resolveOptions<T extends Record<string, OptionValue>>(defaults: T, sources: ResolveSources = {}): T {
  const env = sources.env ?? process.env;
  const file = readConfigFile(sources.configFile ?? env.KURVE_CONFIG);
  const section = (sources.section && typeof file[sources.section] === 'object' ? file[sources.section] : {}) as Record<string, unknown>;
  const out: Record<string, OptionValue> = {};
  for (const [key, def] of Object.entries(defaults)) {
    const flag = sources.flags?.[key];
    if (flag !== undefined) out[key] = coerce(key, flag, def, `--${key}`);
    else if (env[envName(key)] !== undefined) out[key] = coerce(key, env[envName(key)], def, envName(key));
    else if (section[key] !== undefined) out[key] = coerce(key, section[key], def, 'config file');
    else if (file[key] !== undefined && typeof file[key] !== 'object') out[key] = coerce(key, file[key], def, 'config file');
    else out[key] = def;
  }
  return out as T;
}

/** Parses durations like 200ms, 1.5s, 2m, 1h (a bare number is `defaultUnit`). Returns milliseconds. */
export function parseDuration(s: string, defaultUnit: 'ms' | 's' = 'ms'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$/.exec(s);
  if (!m) throw new Error(`invalid duration "${s}": use e.g. 200ms, 1.5s, 2m, 1h`);
  const n = Number(m[1]);
  const unit = m[2] ?? defaultUnit;
  const factor = { us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit] ?? 1;
  return n * factor;
}

/** Parses sizes like 4MiB, 100G, 512k (binary units). Returns bytes. */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(s);
  if (!m) throw new Error(`invalid size "${s}": use e.g. 4MiB, 100G, 512k`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase()] ?? 1;
  return Math.round(Number(m[1]) * mult);
}
