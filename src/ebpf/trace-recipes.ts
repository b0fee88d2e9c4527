// `kurve trace` recipes: bpftrace programs for the FUSE path and TCP, and the typed results parsed
// from their JSON output. Every recipe keeps its scratch maps out of the output (cleared in END).
import { BpftraceEvent, HistBucket } from './bpftrace';
import { opName as fuseOpName } from '../fuse/protocol/opcodes';

export interface RecipeOptions {
  /** Kernel dev_t of the Kurve mount (connectionIdOf); undefined = every FUSE connection. */
  readonly connection?: number;
  /** Mount point, for syscalls that take a path. */
  readonly mount?: string;
  /** slow-fuse-requests: report requests slower than this. */
  readonly thresholdMs?: number;
}

export interface HistRow {
  readonly key: string[];
  readonly count: number;
  readonly buckets: HistBucket[];
}

export type RecipeResult =
  | { kind: 'histograms'; unit: 'us'; keyNames: string[]; rows: HistRow[] }
  | { kind: 'table'; columns: string[]; rows: Array<Array<string | number>> };

export interface Recipe {
  readonly name: string;
  readonly description: string;
  program(o: RecipeOptions): string;
  result(events: BpftraceEvent[]): RecipeResult;
}

const FUSE_MAGIC = '0x65735546';

function connFilter(o: RecipeOptions): string {
  return o.connection === undefined ? '' : `/args->connection == ${o.connection}/`;
}

function hists(events: BpftraceEvent[], map: string, keyNames: string[], relabel: (k: string[]) => string[] = (k) => k): RecipeResult {
  const rows: HistRow[] = [];
  for (const e of events) {
    if (e.type !== 'hist' || e.name !== map) continue;
    for (const s of e.series) rows.push({ key: relabel(s.key), count: s.buckets.reduce((a, b) => a + b.count, 0), buckets: s.buckets });
  }
  rows.sort((a, b) => b.count - a.count);
  return { kind: 'histograms', unit: 'us', keyNames, rows };
}

function counts(events: BpftraceEvent[], map: string, columns: string[], relabel: (k: string[]) => Array<string | number>): RecipeResult {
  const rows: Array<Array<string | number>> = [];
  for (const e of events) {
    if (e.type !== 'map' || e.name !== map) continue;
    for (const x of e.entries) rows.push([...relabel(x.key), x.value]);
  }
  rows.sort((a, b) => Number(b[b.length - 1]) - Number(a[a.length - 1]));
  return { kind: 'table', columns, rows };
}

/** Scalar/string escaping for values interpolated into a bpftrace program. */
function bpfString(s: string): string {
  if (!/^[\x20-\x7e]*$/.test(s) || /["\\]/.test(s)) throw new Error(`unsupported characters in "${s}"`);
  return `"${s}"`;
}

export const RECIPES: readonly Recipe[] = [
  {
    name: 'fuse-latency',
    description: 'FUSE request latency per opcode, kernel send to reply (µs histograms)',
    program: (o) => `
tracepoint:fuse:fuse_request_send ${connFilter(o)} { @start[args->connection, args->unique] = nsecs; @op[args->connection, args->unique] = args->opcode; }
tracepoint:fuse:fuse_request_end /@start[args->connection, args->unique]/ {
  @lat_us[@op[args->connection, args->unique]] = hist((nsecs - @start[args->connection, args->unique]) / 1000);
  delete(@start[args->connection, args->unique]); delete(@op[args->connection, args->unique]);
}
END { clear(@start); clear(@op); }`,
    result: (ev) => hists(ev, '@lat_us', ['op'], (k) => [fuseOpName(Number(k[0]))]),
  },
  {
    name: 'fuse-ops-by-process',
    description: 'FUSE requests per process and opcode (who drives the daemon)',
    program: (o) => `tracepoint:fuse:fuse_request_send ${connFilter(o)} { @ops[pid, args->opcode, comm] = count(); }`,
    // comm is the last key part: a comma inside it cannot shift pid or opcode.
    result: (ev) => counts(ev, '@ops', ['pid', 'comm', 'op', 'count'], (k) => [Number(k[0]), k.slice(2).join(','), fuseOpName(Number(k[1]))]),
  },
  {
    name: 'slow-fuse-requests',
    description: 'each FUSE request slower than --threshold (default 10ms): opcode, pid, comm, latency',
    program: (o) => `
tracepoint:fuse:fuse_request_send ${connFilter(o)} {
  @start[args->connection, args->unique] = nsecs; @op[args->connection, args->unique] = args->opcode;
  @pid[args->connection, args->unique] = pid; @comm[args->connection, args->unique] = comm;
}
tracepoint:fuse:fuse_request_end /@start[args->connection, args->unique]/ {
  $k1 = args->connection; $k2 = args->unique;
  $us = (nsecs - @start[$k1, $k2]) / 1000;
  if ($us >= ${Math.round((o.thresholdMs ?? 10) * 1000)}) { printf("%d %d %d %d %s\\n", @op[$k1, $k2], @pid[$k1, $k2], $us, args->error, @comm[$k1, $k2]); }
  delete(@start[$k1, $k2]); delete(@op[$k1, $k2]); delete(@pid[$k1, $k2]); delete(@comm[$k1, $k2]);
}
END { clear(@start); clear(@op); clear(@pid); clear(@comm); }`,
    result: (ev) => {
      const rows: Array<Array<string | number>> = [];
      for (const e of ev) {
        if (e.type !== 'printf') continue;
        const m = /^(\d+) (\d+) (\d+) (-?\d+) (.*)$/.exec(e.text.replace(/\n$/, ''));
        if (m) rows.push([fuseOpName(Number(m[1])), Number(m[2]), m[5], Number(m[3]), Number(m[4])]);
      }
      return { kind: 'table', columns: ['op', 'pid', 'comm', 'latency_us', 'error'], rows };
    },
  },
  {
    name: 'tcp-retransmits',
    description: 'TCP retransmits per destination address and port, SYN and data apart',
    program: () => `
tracepoint:tcp:tcp_retransmit_skb /args->family == 2/ { @retrans[ntop(2, args->daddr), args->dport, args->state == 2 ? "syn" : "data"] = count(); }
tracepoint:tcp:tcp_retransmit_skb /args->family == 10/ { @retrans[ntop(10, args->daddr_v6), args->dport, args->state == 2 ? "syn" : "data"] = count(); }`,
    result: (ev) => counts(ev, '@retrans', ['destination', 'port', 'kind', 'count'], (k) => [k[0], Number(k[1]), k[2]]),
  },
  {
    name: 'syscall-latency',
    description: 'syscall latency by process for files on FUSE mounts (--mount: only that mount), µs histograms',
    program: (o) => {
      // fd syscalls: the file's super block, read through curtask (no kprobes needed). With a
      // mount, compare the device (kernel dev_t == the FUSE connection id); else any FUSE file.
      const sbTest = o.connection === undefined ? `$sb->s_magic == ${FUSE_MAGIC}` : `$sb->s_dev == ${o.connection}`;
      const fdSyscalls = ['read', 'write', 'pread64', 'pwrite64', 'fsync', 'getdents64', 'newfstat', 'lseek'];
      const enterFd = fdSyscalls.map((s) => `tracepoint:syscalls:sys_enter_${s}`).join(',\n');
      const exitAll = [...fdSyscalls, 'openat', 'newfstatat', 'statx'].map((s) => `tracepoint:syscalls:sys_exit_${s}`).join(',\n');
      const pathProbe = o.mount
        ? `tracepoint:syscalls:sys_enter_openat, tracepoint:syscalls:sys_enter_newfstatat, tracepoint:syscalls:sys_enter_statx
/strncmp(str(args->filename), ${bpfString(o.mount.replace(/\/+$/, '') + '/')}, ${o.mount.replace(/\/+$/, '').length + 1}) == 0/ { @s[tid] = nsecs; }`
        : '';
      return `
${enterFd} {
  $f = *(curtask->files->fdt->fd + args->fd);
  if ($f != 0) { $sb = ((struct file *)$f)->f_inode->i_sb; if (${sbTest}) { @s[tid] = nsecs; } }
}
${pathProbe}
${exitAll} /@s[tid]/ { @lat_us[comm, probe] = hist((nsecs - @s[tid]) / 1000); delete(@s[tid]); }
END { clear(@s); }`;
    },
    result: (ev) => hists(ev, '@lat_us', ['comm', 'syscall'], (k) => [k.slice(0, -1).join(','), (k[k.length - 1] ?? '').replace(/^tracepoint:syscalls:sys_exit_/, '')]),
  },
];

export function recipe(name: string): Recipe {
  const r = RECIPES.find((x) => x.name === name);
  if (!r) throw new Error(`unknown recipe "${name}"; known: ${RECIPES.map((x) => x.name).join(', ')}`);
  return r;
}
