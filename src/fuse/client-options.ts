// Client (mount) options and the one resolveMountOptions() that CLI flags, KURVE_* env vars and
// the config file's "client" section all feed (src/common/config.ts does the precedence).
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDuration, parseSize, resolveOptions } from '../common/config';

export type BpfMode = 'auto' | 'off' | 'require';

export interface ClientOptions {
  /** Kernel dentry timeout (seconds) while subscribed to the change feed. */
  readonly entryTimeout: number;
  /** Kernel attribute timeout (seconds) while subscribed to the change feed. */
  readonly attrTimeout: number;
  /** Timeouts (seconds) while the change feed is down: caches may be stale for at most this long. */
  readonly degradedTimeout: number;
  /** Parent directory of the local chunk cache. */
  readonly cacheDir: string;
  /** Byte limit of the local chunk cache. */
  readonly cacheSize: number;
  /** Chunks fetched ahead of a sequential reader. */
  readonly readaheadChunks: number;
  /**
   * Chunks a sequential writer uploads ahead of close, per file (0 = upload everything at
   * flush). Overlaps a remote datastore's network transfer with the writes; with the datastore on
   * the same disk (kurve up) it measured no gain (disk-bound), so `kurve up` defaults to 0.
   */
  readonly earlyUploads: number;
  /** Kernel readahead of the mount (KiB, bdi read_ahead_kb; the INIT reply caps it at 1 MiB). */
  readonly readaheadKb: number;
  /** Use FUSE passthrough for fully cached files (needs root and kernel 6.9+). */
  readonly passthrough: boolean;
  /** Also open writable handles of fully cached files in passthrough (whole-file upload at close). */
  readonly passthroughWrites: boolean;
  /**
   * Writable opens with O_TRUNC of files that are then empty (new or truncated) use passthrough:
   * the kernel writes straight into the backing file and close uploads what was written — all new
   * data anyway. Not for O_SYNC/O_DSYNC or O_DIRECT opens (their writes must reach the daemon).
   */
  readonly passthroughNewFiles: boolean;
  /**
   * Inodes whose data state the daemon keeps in memory (with an open backing file each). Beyond
   * it, idle ones are parked: their cached chunks stay on disk and are adopted again at the next
   * open (the cache's byte limit bounds them).
   */
  readonly trackedInodes: number;
  /**
   * µs the daemon keeps polling /dev/fuse after answering before it sleeps (MountOptions.
   * pollMicros): on VMs whose idle vCPUs halt, a sleeping daemon costs a slow wakeup per request.
   */
  readonly pollUs: number;
  readonly allowOther: boolean;
  /** Operations slower than this (ms) are logged (op, inode, duration) and counted. */
  readonly slowOpMs: number;
  readonly bpf: BpfMode;
}

export function defaultCacheDir(): string {
  return process.getuid?.() === 0 ? '/var/cache/kurve' : path.join(os.homedir(), '.cache', 'kurve');
}

const DEFAULTS = {
  entryTimeout: '1h',
  attrTimeout: '1h',
  degradedTimeout: '1s',
  cacheDir: '',
  cacheSize: '10GiB',
  readaheadChunks: 4,
  readaheadKb: 1024,
  earlyUploads: 4,
  passthrough: true,
  passthroughWrites: false,
  passthroughNewFiles: true,
  trackedInodes: 8192,
  pollUs: 200,
  allowOther: false,
  slowOpMs: 1000,
  bpf: 'auto',
};

export interface MountOptionSources {
  /** Commander's parsed flags (camelCase keys); undefined values fall through. */
  readonly flags?: Record<string, unknown>;
  readonly env?: NodeJS.ProcessEnv;
  readonly configFile?: string;
}

/** Defaults < config file < KURVE_* env < flags; durations like 1h/500ms, sizes like 10GiB. */
export function resolveMountOptions(src: MountOptionSources = {}, overrides: Partial<ClientOptions> = {}): ClientOptions {
  const flags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src.flags ?? {})) if (v !== undefined) flags[k] = v;
  // commander's --no-bpf / --require-bpf become bpf=false / requireBpf=true.
  if (flags.bpf === false) flags.bpf = 'off';
  else if (flags.bpf === true) delete flags.bpf;
  if (flags.requireBpf === true) flags.bpf = 'require';
  const r = resolveOptions(DEFAULTS, { flags, env: src.env, configFile: src.configFile, section: 'client' });
  const bpf = String(r.bpf);
  if (bpf !== 'auto' && bpf !== 'off' && bpf !== 'require') throw new Error(`invalid bpf mode "${bpf}": use auto, off or require`);
  const seconds = (key: string, v: string | number): number => {
    const ms = typeof v === 'number' ? v * 1000 : parseDuration(v, 's');
    if (!(ms >= 0)) throw new Error(`invalid ${key}: ${v}`);
    return ms / 1000;
  };
  const opts: ClientOptions = {
    entryTimeout: seconds('entryTimeout', r.entryTimeout),
    attrTimeout: seconds('attrTimeout', r.attrTimeout),
    degradedTimeout: seconds('degradedTimeout', r.degradedTimeout),
    cacheDir: r.cacheDir || defaultCacheDir(),
    cacheSize: typeof r.cacheSize === 'number' ? r.cacheSize : parseSize(r.cacheSize),
    readaheadChunks: r.readaheadChunks,
    readaheadKb: r.readaheadKb,
    earlyUploads: r.earlyUploads,
    passthrough: r.passthrough,
    passthroughWrites: r.passthroughWrites,
    passthroughNewFiles: r.passthroughNewFiles,
    trackedInodes: r.trackedInodes,
    pollUs: r.pollUs,
    allowOther: r.allowOther,
    slowOpMs: r.slowOpMs,
    bpf,
    ...overrides,
  };
  if (opts.cacheSize < 16 * 1024 * 1024) throw new Error(`invalid cacheSize ${opts.cacheSize}: at least 16MiB`);
  if (!Number.isInteger(opts.readaheadChunks) || opts.readaheadChunks < 0) throw new Error(`invalid readaheadChunks ${opts.readaheadChunks}`);
  return opts;
}
