// Real Kurve mounts for tests: `kurve up` and `kurve mount` as child processes (so the test's own
// file system calls never wait on the event loop that serves them), in temp dirs, on free ports,
// always unmounted. The CLI runs from the TypeScript sources (compiled on the fly by swc, like
// jest), so tests never depend on a stale dist/; KURVE_CLI=path/to/main.js uses a built one instead.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

/** node arguments that run `kurve <args…>`. */
function cliArgs(args: string[]): string[] {
  if (process.env.KURVE_CLI) return [process.env.KURVE_CLI, ...args];
  const script = `
    const swc = require('@swc/core');
    const fs = require('fs');
    require.extensions['.ts'] = (module, filename) => {
      const out = swc.transformSync(fs.readFileSync(filename, 'utf8'), { filename, jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } });
      module._compile(out.code, filename);
    };
    const { Command } = require('commander');
    const program = new Command('kurve');
    for (const c of ['up', 'mount', 'umount', 'warmup']) {
      if (fs.existsSync('./src/cli/commands/' + c + '.ts')) require('./src/cli/commands/' + c + '.ts').register(program);
    }
    program.parseAsync(['node', 'kurve', ...process.argv.slice(1)]).catch((err) => {
      process.stderr.write('kurve: ' + (err && err.message || err) + '\\n');
      process.exit(1);
    });
  `;
  return ['-e', script, ...args];
}

/** Runs a short kurve command (e.g. umount, warmup) to completion. */
export function kurveRun(args: string[], timeoutMs = 30_000): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, cliArgs(args), { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

export interface Daemon {
  readonly proc: ChildProcess;
  readonly mountpoint: string;
  readonly metricsAddress?: string;
  readonly rpcAddress?: string;
  /** Everything the daemon printed (JSON log lines and messages). */
  output(): string;
  /** Prometheus text from the daemon's /metrics. */
  metrics(): Promise<string>;
  /** A counter/gauge value summed over label sets matching `labels` (e.g. 'op="READ"'). */
  metric(name: string, labels?: string): Promise<number>;
  /** SIGTERM, wait for exit (bounded); SIGKILL and detach-unmount if it does not go. */
  stop(): Promise<number | null>;
  /** SIGKILL, then wait for the process to be gone. */
  kill9(): Promise<void>;
  readonly exited: Promise<number | null>;
}

const live = new Set<Daemon>();
const START_TIMEOUT_MS = 20_000;

function startDaemon(args: string[], mountpoint: string, env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const proc = spawn(process.execPath, cliArgs(args), {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KURVE_LOG_JSON: '1', ...env },
  });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return new Promise<Daemon>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      lazyUnmount(mountpoint);
      reject(new Error(`kurve ${args[0]} did not mount within ${START_TIMEOUT_MS} ms:\n${out.slice(-3000)}`));
    }, START_TIMEOUT_MS);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`kurve ${args[0]} exited (${code}) before mounting:\n${out.slice(-3000)}`));
    });
    const check = (): void => {
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        let rec: Record<string, unknown>;
        try {
          rec = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (rec.msg !== 'kurve up' && rec.msg !== 'kurve mount') continue;
        clearTimeout(timer);
        proc.stdout!.off('data', check);
        const metricsAddress = (rec.metrics as string | undefined) ?? metricsFromOutput(out);
        const d: Daemon = {
          proc, mountpoint, metricsAddress, rpcAddress: rec.rpc as string | undefined,
          output: () => out,
          metrics: async () => {
            if (!metricsAddress) throw new Error('daemon has no /metrics');
            const res = await fetch(`http://${metricsAddress}/metrics`);
            return res.text();
          },
          metric: async (name, labels) => sumMetric(await d.metrics(), name, labels),
          stop: async () => {
            live.delete(d);
            if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
            // A cleared timer, not sleep(): a pending 15 s timer kept jest from exiting after the suite.
            let timer: NodeJS.Timeout | undefined;
            const timeout = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), 15_000); });
            const code = await Promise.race([exited, timeout]);
            clearTimeout(timer);
            if (code === 'timeout') {
              proc.kill('SIGKILL');
              await exited;
            }
            lazyUnmount(mountpoint);
            return code === 'timeout' ? null : code;
          },
          kill9: async () => {
            live.delete(d);
            proc.kill('SIGKILL');
            await exited;
          },
          exited,
        };
        live.add(d);
        resolve(d);
        return;
      }
    };
    proc.stdout!.on('data', check);
  });
}

function metricsFromOutput(out: string): string | undefined {
  return /metrics listening[^\n]*/.test(out) ? /"address":"([^"]+)","msg":"metrics listening"/.exec(out)?.[1] : undefined;
}

export function sumMetric(text: string, name: string, labels?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labels && !rest.includes(labels)) continue;
    sum += Number(rest.slice(rest.lastIndexOf(' ') + 1));
  }
  return sum;
}

export interface UpOptions {
  readonly dataDir?: string;
  readonly mountpoint?: string;
  readonly args?: string[];
  readonly env?: NodeJS.ProcessEnv;
}

/** A temp directory for a test file; removed by cleanupKurve(). */
export function tempDir(prefix = 'kurve-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  // Tests run commands as other users inside the mount: they must be able to reach it.
  fs.chmodSync(d, 0o755);
  temps.add(d);
  return d;
}
const temps = new Set<string>();

/** `kurve up` on a temp mount point, free ports, no BPF unless args say otherwise. */
export async function kurveUp(o: UpOptions = {}): Promise<Daemon> {
  const base = o.dataDir && o.mountpoint ? undefined : tempDir();
  const dataDir = o.dataDir ?? path.join(base!, 'data');
  const mountpoint = o.mountpoint ?? path.join(base!, 'mnt');
  fs.mkdirSync(mountpoint, { recursive: true });
  const args = ['up', mountpoint, '--data', dataDir, '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0', ...(o.args ?? ['--no-bpf'])];
  return startDaemon(args, mountpoint, o.env);
}

/** `kurve mount` of the file system served by `up` (a second client). */
export async function kurveMount(up: Daemon, o: { mountpoint?: string; args?: string[] } = {}): Promise<Daemon> {
  if (!up.rpcAddress) throw new Error('the kurve up daemon does not listen on gRPC');
  const base = tempDir();
  const mountpoint = o.mountpoint ?? path.join(base, 'mnt');
  fs.mkdirSync(mountpoint, { recursive: true });
  const args = ['mount', mountpoint, '--mds', up.rpcAddress, '--cache-dir', path.join(base, 'cache'), '--metrics', '127.0.0.1:0', ...(o.args ?? ['--no-bpf'])];
  return startDaemon(args, mountpoint);
}

export function lazyUnmount(mountpoint: string): void {
  spawnSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
}

/** For afterAll: stops every daemon still running and removes temp dirs. */
export async function cleanupKurve(): Promise<void> {
  for (const d of [...live]) await d.stop().catch(() => undefined);
  for (const t of temps) {
    for (const sub of ['mnt']) lazyUnmount(path.join(t, sub));
    fs.rmSync(t, { recursive: true, force: true });
  }
  temps.clear();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Python prelude for syscall-level checks: E(f, *args) returns the result or the errno name;
 * C(rc) raises OSError for a failed ctypes call; libc has renameat2, fallocate, *xattr, utimensat.
 */
const PY_PRELUDE = `
import os, sys, json, errno, ctypes, mmap, stat, fcntl
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.getxattr.restype = ctypes.c_ssize_t
libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.listxattr.restype = ctypes.c_ssize_t
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
class TS(ctypes.Structure):
    _fields_ = [('sec', ctypes.c_long), ('nsec', ctypes.c_long)]
def C(rc):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc
def E(f, *a):
    try:
        r = f(*a)
        return 'OK' if r is None else r
    except OSError as e:
        return errno.errorcode[e.errno]
def out(x):
    print(json.dumps(x))
`;

/** Runs a python3 snippet (optionally as another user) and parses the last line it printed as JSON. */
export function py(code: string, opts: { uid?: number; gid?: number; timeoutMs?: number } = {}): unknown {
  const r = spawnSync('python3', ['-c', PY_PRELUDE + code], {
    uid: opts.uid, gid: opts.gid, timeout: opts.timeoutMs ?? 20_000, encoding: 'utf8', cwd: '/',
  });
  if (r.status !== 0) throw new Error(`python3 failed (${r.status ?? r.signal}): ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** Polls `check` in a python child right after `act` ran; prints the ms until it held (or -1). */
export function timeVisible(act: string, check: string, limitMs = 3000): number {
  return py(`
import time
${act}
t0 = time.monotonic()
seen = -1
while time.monotonic() - t0 < ${limitMs / 1000}:
    try:
        if ${check}:
            seen = (time.monotonic() - t0) * 1000
            break
    except OSError:
        pass
    time.sleep(0.002)
out(seen)`) as number;
}

/** Waits until `d` has received no change event for `ms` (so no invalidation is still coming). */
export async function feedQuiet(d: Daemon, ms: number): Promise<void> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const n = await d.metric('kurve_client_change_events_total');
    if (n === last) return;
    last = n;
    await sleep(ms);
  }
}

/** Polls until fn() is true or the time is up; returns the elapsed ms, or throws. */
export async function waitFor(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 5000, stepMs = 5): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}
