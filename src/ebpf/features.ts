// Feature probes (privileges, bpffs, tracefs, cgroup2 mount, BTF, tracepoints, lockdown) and the
// kernel file systems BPF needs, mounted when missing (some minimal systems boot without them).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UnsupportedFeatureError } from './errors';
import { libC, lastErrno } from './ffi';

export interface Mount {
  readonly source: string;
  readonly target: string;
  readonly fstype: string;
}

export function mounts(): Mount[] {
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [source, target, fstype] = l.split(' ');
      return { source, target: target.replace(/\\040/g, ' '), fstype };
    });
}

/** The cgroup v2 mount point from /proc/mounts (e.g. /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid setups). */
export function cgroup2Path(): string | undefined {
  return mounts().find((m) => m.fstype === 'cgroup2')?.target;
}

export function tracefsPath(): string | undefined {
  const m = mounts().find((x) => x.fstype === 'tracefs');
  if (m) return m.target;
  const dbg = mounts().find((x) => x.fstype === 'debugfs');
  return dbg && fs.existsSync(path.join(dbg.target, 'tracing/events')) ? path.join(dbg.target, 'tracing') : undefined;
}

function capEff(): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}
const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

export interface Features {
  readonly kernel: string;
  readonly root: boolean;
  readonly capBpf: boolean;
  readonly capSysAdmin: boolean;
  readonly capNetAdmin: boolean;
  readonly capPerfmon: boolean;
  readonly btf: boolean;
  readonly bpffs: string | undefined;
  readonly tracefs: string | undefined;
  readonly cgroup2: string | undefined;
  readonly lockdown: string | undefined;
  readonly tracepoints: Readonly<Record<string, boolean>>;
  readonly bpftrace: string | undefined;
}

export const TRACEPOINTS = ['fuse/fuse_request_send', 'fuse/fuse_request_end', 'tcp/tcp_retransmit_skb'] as const;

export function probeFeatures(): Features {
  const caps = capEff();
  const has = (c: bigint) => (caps & (1n << c)) !== 0n;
  const tracefs = tracefsPath();
  const tracepoints: Record<string, boolean> = {};
  for (const tp of TRACEPOINTS) tracepoints[tp] = tracefs !== undefined && fs.existsSync(path.join(tracefs, 'events', tp));
  let lockdown: string | undefined;
  try {
    lockdown = /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/security/lockdown', 'utf8'))?.[1];
  } catch {
    lockdown = undefined;
  }
  return {
    kernel: os.release(),
    root: process.getuid?.() === 0,
    capBpf: has(CAP_BPF) || has(CAP_SYS_ADMIN),
    capSysAdmin: has(CAP_SYS_ADMIN),
    capNetAdmin: has(CAP_NET_ADMIN),
    capPerfmon: has(CAP_PERFMON) || has(CAP_SYS_ADMIN),
    btf: fs.existsSync('/sys/kernel/btf/vmlinux'),
    bpffs: mounts().find((m) => m.fstype === 'bpf')?.target,
    tracefs,
    cgroup2: cgroup2Path(),
    lockdown,
    tracepoints,
    bpftrace: findInPath('bpftrace'),
  };
}

export function findInPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir || '.', cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* keep looking */
    }
  }
  return undefined;
}

/** Why BPF cannot be used here, or undefined when it can (root/CAP_BPF and kernel BTF). */
export function whyNoBpf(): string | undefined {
  const f = probeFeatures();
  if (!f.capBpf) return 'BPF needs root or CAP_BPF';
  if (!f.btf) return 'the kernel has no BTF (/sys/kernel/btf/vmlinux)';
  return undefined;
}

function mountFs(fstype: string, target: string): void {
  if (libC().mount(fstype === 'bpf' ? 'bpf' : 'nodev', target, fstype, 0, null) !== 0) {
    const e = lastErrno();
    throw new UnsupportedFeatureError(`${fstype} file system`, undefined, `mount at ${target} failed: errno ${e}`);
  }
}

/** The bpffs mount that holds `pinDir`; mounts bpffs on /sys/fs/bpf when nothing is mounted there. */
export function ensureBpffs(pinDir: string): void {
  const bpfMounts = mounts().filter((m) => m.fstype === 'bpf');
  if (bpfMounts.some((m) => pinDir === m.target || pinDir.startsWith(m.target.endsWith('/') ? m.target : `${m.target}/`))) return;
  const root = '/sys/fs/bpf';
  if (!pinDir.startsWith(`${root}/`) && pinDir !== root) {
    throw new UnsupportedFeatureError('BPF pinning', undefined, `${pinDir} is not on a bpf file system (mount -t bpf bpf DIR)`);
  }
  mountFs('bpf', root);
}

/** tracefs is where libbpf finds tracepoint ids; mount it on /sys/kernel/tracing if missing. */
export function ensureTracefs(): string {
  const p = tracefsPath();
  if (p) return p;
  mountFs('tracefs', '/sys/kernel/tracing');
  return '/sys/kernel/tracing';
}

/** Throws UnsupportedFeatureError unless every tracepoint exists. */
export function requireTracepoints(tps: readonly string[]): void {
  const base = ensureTracefs();
  for (const tp of tps) {
    if (!fs.existsSync(path.join(base, 'events', tp))) {
      const [group] = tp.split('/');
      throw new UnsupportedFeatureError(`tracepoint ${tp}`, group === 'fuse' ? '4.19 with CONFIG_FUSE_FS (fuse module loaded)' : undefined);
    }
  }
}
