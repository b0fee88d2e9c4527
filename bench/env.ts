// The benchmark environment: a temp dir, a loop-mounted ext4 image (real ext4 whatever the host's
// root is), the fuse-native baseline and `kurve up` as child processes, the workload driver; all
// torn down by close(), which also runs on SIGINT/SIGTERM.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile, execFileSync, spawn, ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import type { DriverJob, DriverResult } from './driver';
import { Unavailable } from './harness';
import { fuseNativeEnv } from './baselines/fuse-native-fs';
import { freePort, isMounted, mountsUnder, waitFor } from './util';

const execFileP = promisify(execFile);

export interface KurveMountOptions {
  /** Kernel attr/entry timeouts 0: every stat is a GETATTR round trip. */
  readonly timeoutsZero?: boolean;
  /** Load fuse_trace (true), skip it (false) or leave the default (undefined). */
  readonly bpf?: boolean;
}

export interface KurveMount {
  readonly mountpoint: string;
  readonly metrics: string;
  readonly listen: string;
  readonly pid: number;
}

interface Daemon {
  readonly child: ChildProcess;
  readonly mountpoint: string;
}

export class BenchEnv {
  readonly tmp: string;
  /** dist/ (holds bench/ and src/), whether we run from dist/bench or another out dir. */
  readonly distDir = path.resolve(__dirname, '..');
  private ext4Mount?: string;
  private readonly daemons = new Map<string, Daemon>();
  private readonly kurveMounts = new Map<string, KurveMount>();
  private readonly helpers = new Map<string, ChildProcess>();
  private readonly cleanups = new Set<() => void>();
  private closed = false;

  constructor(readonly quick: boolean, readonly log: (msg: string) => void) {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-bench-'));
  }

  /** Scales a size or count down for --quick. */
  pick<T>(full: T, quick: T): T {
    return this.quick ? quick : full;
  }

  /** A fresh ext4 file system on a loop device; the image is sparse, so it costs what is written. */
  async ext4(): Promise<string> {
    if (this.ext4Mount) return this.ext4Mount;
    if (process.getuid?.() !== 0) throw new Unavailable('not root (mount -o loop needs CAP_SYS_ADMIN)');
    const image = path.join(this.tmp, 'ext4.img');
    const mnt = path.join(this.tmp, 'ext4');
    fs.mkdirSync(mnt);
    fs.closeSync(fs.openSync(image, 'w'));
    fs.truncateSync(image, 16 * 1024 ** 3);
    // Initialise inode tables and journal now, so no background ext4lazyinit competes with the run.
    await execFileP('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]);
    await execFileP('mount', ['-o', 'loop', image, mnt]);
    this.ext4Mount = mnt;
    return mnt;
  }

  /** A scratch dir on ext4 for one benchmark (also used as backing store by the FUSE systems). */
  async ext4Dir(name: string): Promise<string> {
    const dir = path.join(await this.ext4(), name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** The fuse-native passthrough baseline, backed by a dir on the same ext4. */
  async fuseNative(opts: { timeoutsZero?: boolean } = {}): Promise<string> {
    const key = `fuse-native${opts.timeoutsZero ? '-t0' : ''}`;
    const have = this.daemons.get(key);
    if (have && have.child.exitCode === null && have.child.signalCode === null) return have.mountpoint;
    if (have) await this.stopDaemon(key);
    const backing = await this.ext4Dir(`${key}-backing`);
    const mnt = path.join(this.tmp, key);
    fs.mkdirSync(mnt, { recursive: true });
    const script = path.join(this.distDir, 'bench', 'baselines', 'fuse-native-fs.js');
    const args = [script, '--backing', backing, '--mount', mnt, ...(opts.timeoutsZero ? ['--attr-timeout', '0'] : [])];
    const child = this.spawnDaemon(key, args, fuseNativeEnv(this.tmp));
    this.daemons.set(key, { child, mountpoint: mnt });
    await this.waitMounted(key, child, mnt);
    return mnt;
  }

  /** `kurve up` in a child process, with its data dir on the ext4 image. */
  async kurve(opts: KurveMountOptions = {}): Promise<KurveMount> {
    const key = `kurve${opts.timeoutsZero ? '-t0' : ''}${opts.bpf === undefined ? '' : opts.bpf ? '-bpf' : '-nobpf'}`;
    const have = this.kurveMounts.get(key);
    const alive = (k: string): boolean => { const c = this.daemons.get(k)?.child; return !!c && c.exitCode === null && c.signalCode === null; };
    if (have && alive(key)) return have;
    // A daemon that died in an earlier benchmark is replaced, so one crash costs one row.
    if (have) await this.stopDaemon(key);
    const cli = path.join(this.distDir, 'src', 'cli', 'main.js');
    if (!fs.existsSync(path.join(this.distDir, 'src', 'cli', 'commands', 'up.js'))) {
      throw new Unavailable('`kurve up` is not built yet (no src/cli/commands/up.ts)');
    }
    const help = (await execFileP(process.execPath, [cli, 'up', '--help'])).stdout;
    const flag = (f: string): boolean => new RegExp(`${f}\\b`).test(help);
    const data = await this.ext4Dir(`${key}-data`);
    const mnt = path.join(this.tmp, key);
    fs.mkdirSync(mnt, { recursive: true });
    const listen = `127.0.0.1:${await freePort()}`;
    const metrics = `127.0.0.1:${await freePort()}`;
    const args = [cli, 'up', mnt, '--data', data, '--listen', listen, '--metrics', metrics];
    if (opts.timeoutsZero) {
      for (const f of ['--attr-timeout', '--entry-timeout']) {
        if (!flag(f)) throw new Unavailable(`\`kurve up\` has no ${f} option (needed for timeouts 0)`);
        args.push(f, '0');
      }
    }
    if (opts.bpf === false) {
      if (!flag('--no-bpf')) throw new Unavailable('`kurve up` has no --no-bpf option');
      args.push('--no-bpf');
    } else if (opts.bpf === true) {
      if (!flag('--require-bpf')) throw new Unavailable('`kurve up` has no --require-bpf option');
      args.push('--require-bpf');
    }
    const child = this.spawnDaemon(key, args, {});
    this.daemons.set(key, { child, mountpoint: mnt });
    await this.waitMounted(key, child, mnt);
    const m: KurveMount = { mountpoint: mnt, metrics, listen, pid: child.pid ?? 0 };
    this.kurveMounts.set(key, m);
    return m;
  }

  /** Runs one driver job in a child process and returns its figures. */
  async drive(job: DriverJob, timeoutMs = 300_000): Promise<DriverResult> {
    const driver = path.join(this.distDir, 'bench', 'driver.js');
    try {
      const { stdout } = await execFileP(process.execPath, [driver, JSON.stringify(job)], { timeout: timeoutMs, maxBuffer: 1 << 20 });
      return JSON.parse(stdout) as DriverResult;
    } catch (err) {
      const e = err as { stderr?: string; killed?: boolean; message: string };
      if (e.killed) throw new Error(`driver ${job.op} timed out after ${timeoutMs / 1000} s`);
      throw new Error((e.stderr || e.message).trim().split('\n').pop() ?? e.message);
    }
  }

  /** Runs a JavaScript snippet in a child node process and parses its last stdout line as JSON. */
  async runNode<T>(script: string, timeoutMs: number, args: string[] = []): Promise<T> {
    try {
      const { stdout } = await execFileP(process.execPath, ['-e', script, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20, cwd: this.tmp, env: { ...process.env, KURVE_LOG_LEVEL: 'warn' } });
      // Log lines may precede the result: the result is the last line.
      return JSON.parse(stdout.trim().split('\n').pop() ?? '') as T;
    } catch (err) {
      const e = err as { stderr?: string; killed?: boolean; message: string };
      if (e.killed) throw new Error(`child timed out after ${timeoutMs / 1000} s`);
      throw new Error((e.stderr || e.message).trim().split('\n').pop() ?? e.message);
    }
  }

  /**
   * Registers a synchronous cleanup (netns, cgroup, pins) that closeSync() runs if the benchmark
   * is interrupted; call the returned function to run it now and unregister it.
   */
  addCleanup(fn: () => void): () => void {
    this.cleanups.add(fn);
    return () => {
      if (!this.cleanups.delete(fn)) return;
      fn();
    };
  }

  /** Registers a long-running helper process (a server) so close() always stops it. */
  track(name: string, child: ChildProcess): void {
    this.helpers.set(name, child);
  }

  signalTracked(name: string, signal: NodeJS.Signals): void {
    this.helpers.get(name)?.kill(signal);
  }

  /** SIGTERM (SIGKILL after 10 s) and wait for the exit. */
  async stopTracked(name: string): Promise<void> {
    const child = this.helpers.get(name);
    this.helpers.delete(name);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  }

  private spawnDaemon(key: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
    // Output goes to a file: a pipe nobody drains while a driver runs could block the daemon.
    const logFd = fs.openSync(path.join(this.tmp, `${key}.log`), 'a');
    const child = spawn(process.execPath, args, { stdio: ['ignore', logFd, logFd], env: { ...process.env, ...env } });
    fs.closeSync(logFd);
    return child;
  }

  private async waitMounted(key: string, child: ChildProcess, mnt: string): Promise<void> {
    let exited: number | null | undefined;
    child.once('exit', (code) => { exited = code; });
    const ok = await waitFor(() => exited !== undefined || isMounted(mnt), 20_000);
    if (!ok || exited !== undefined) {
      const tail = this.logTail(key);
      throw new Error(`${key} did not mount${exited !== undefined ? ` (exited ${exited})` : ' within 20 s'}: ${tail}`);
    }
  }

  logTail(key: string): string {
    try {
      return fs.readFileSync(path.join(this.tmp, `${key}.log`), 'utf8').trim().split('\n').slice(-3).join(' / ');
    } catch {
      return '(no log)';
    }
  }

  /** Stops one daemon (SIGTERM, then SIGKILL) and detaches its mount. */
  async stopDaemon(key: string): Promise<void> {
    const d = this.daemons.get(key);
    if (!d) return;
    this.daemons.delete(key);
    this.kurveMounts.delete(key);
    if (d.child.exitCode === null && d.child.signalCode === null) {
      const gone = new Promise<void>((resolve) => d.child.once('exit', () => resolve()));
      d.child.kill('SIGTERM');
      const t = setTimeout(() => d.child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
    if (isMounted(d.mountpoint)) {
      try { execFileSync('umount', ['-l', d.mountpoint], { stdio: 'ignore' }); } catch { /* gone meanwhile */ }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const name of [...this.helpers.keys()]) await this.stopTracked(name).catch(() => undefined);
    for (const key of [...this.daemons.keys()]) await this.stopDaemon(key).catch(() => undefined);
    this.closeSync();
  }

  /** Synchronous last-resort cleanup (signal handlers): kill, detach, unmount ext4, remove tmp. */
  closeSync(): void {
    for (const fn of [...this.cleanups]) {
      this.cleanups.delete(fn);
      try { fn(); } catch (err) { this.log(`warning: cleanup failed: ${(err as Error).message}`); }
    }
    for (const child of this.helpers.values()) {
      try { child.kill('SIGKILL'); } catch { /* already dead */ }
    }
    this.helpers.clear();
    for (const d of this.daemons.values()) {
      try { d.child.kill('SIGKILL'); } catch { /* already dead */ }
      try { execFileSync('umount', ['-l', d.mountpoint], { stdio: 'ignore' }); } catch { /* not mounted */ }
    }
    this.daemons.clear();
    if (this.ext4Mount) {
      // A loop mount made by mount(8) detaches its loop device on umount (autoclear).
      try { execFileSync('umount', [this.ext4Mount], { stdio: 'ignore' }); } catch {
        try { execFileSync('umount', ['-l', this.ext4Mount], { stdio: 'ignore' }); } catch { /* gone */ }
      }
      this.ext4Mount = undefined;
    }
    // Never recurse into a mount that refused to go away: report it instead.
    const left = mountsUnder(this.tmp);
    if (left.length) this.log(`warning: still mounted, leaving ${this.tmp} in place: ${left.join(', ')}`);
    else fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
