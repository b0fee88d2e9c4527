// The built CLI as users run it: `kurve mds` and `kurve datastore` as real processes (port 0, temp
// dirs), `kurve fs create|list` against them, clear errors, and graceful SIGTERM (exit 0).
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MdsClient } from '../../src/mds/client';

const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

interface Proc {
  child: ChildProcess;
  address: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `kurve ARGS` and waits (bounded) for its "listening on ADDR" line. */
async function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, KURVE_LOG_JSON: '1', KURVE_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line within 15 s; stderr: ${err}`)), 15_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (\S+?)[,\s]/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening; stderr: ${err}`));
    });
  });
  return { child, address, stdout: () => out, stderr: () => err, exited };
}

async function stop(p: Proc | undefined, ms = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return undefined;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), ms);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

function kurve(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('kurve mds / datastore / fs (CLI)', () => {
  const dirs: string[] = [];
  const procs: Proc[] = [];
  const tmp = (p: string) => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), p));
    dirs.push(d);
    return d;
  };

  beforeAll(() => {
    try {
      execFileSync('bash', ['scripts/build.sh'], { cwd: ROOT, stdio: 'pipe', timeout: 240_000 });
    } catch (err) {
      // A type error elsewhere in the tree still emits JavaScript; what this suite needs is the CLI.
      if (!fs.existsSync(MAIN)) throw err;
    }
  }, 250_000);
  afterAll(async () => {
    for (const p of procs) await stop(p);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('has helpful --help for each command', () => {
    for (const [args, want] of [
      [['mds', '--help'], /--data <dir>[\s\S]*Examples:/],
      [['datastore', '--help'], /--dir <dir>[\s\S]*--mds <addrs>[\s\S]*Examples:/],
      [['fs', 'create', '--help'], /--chunk-size <size>[\s\S]*Examples:/],
      [['fs', 'list', '--help'], /--json[\s\S]*Examples:/],
    ] as const) {
      const r = kurve([...args]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(want);
    }
  });

  it('creates and lists file systems against a spawned MDS, with clear errors', async () => {
    const mds = await startCli(['mds', '--listen', '127.0.0.1:0', '--data', tmp('kurve-cli-mds-'), '--metrics', '127.0.0.1:0'], { KURVE_TOKEN: 'tok' });
    procs.push(mds);
    const env = { KURVE_TOKEN: 'tok' };
    let r = kurve(['fs', 'create', 'photos', '--mds', mds.address], env);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/created file system "photos" \(id \d+, chunk size 4 MiB, replicas 1\)/);
    r = kurve(['fs', 'create', 'small', '--chunk-size', '64KiB', '--mds', mds.address, '--json'], env);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'small', chunkSize: 65536 });
    r = kurve(['fs', 'list', '--mds', mds.address], env);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+CHUNK SIZE\s+REPLICAS\s+CREATED$/);
    expect(r.stdout).toMatch(/photos\s+4 MiB\s+1\s/);
    r = kurve(['fs', 'list', '--mds', mds.address, '--json'], env);
    expect((JSON.parse(r.stdout) as Array<{ name: string }>).map((f) => f.name)).toEqual(['photos', 'small']);

    for (const [args, msg] of [
      [['fs', 'create', 'photos'], /^kurve: file system "photos" already exists\n$/],
      [['fs', 'create', 'bad name'], /^kurve: invalid file system name "bad name"/],
      [['fs', 'create', 'odd', '--chunk-size', '3MiB'], /^kurve: invalid chunk size 3145728: must be a power of two/],
      [['fs', 'create', 'odd', '--chunk-size', 'huge'], /^kurve: invalid size "huge"/],
      [['fs', 'create', 'odd', '--replicas', '6'], /^kurve: invalid --replicas "6": must be an integer from 1 to 5\n$/],
    ] as const) {
      r = kurve([...args, '--mds', mds.address], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    r = kurve(['fs', 'list', '--mds', mds.address]); // no token
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/missing or wrong token/);
  });

  it('says it cannot reach the MDS, quickly, when none answers', () => {
    const start = Date.now();
    const r = kurve(['fs', 'list', '--mds', '127.0.0.1:1', '--timeout', '1s']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^kurve: cannot reach MDS at 127\.0\.0\.1:1: .*ECONNREFUSED/);
    expect(Date.now() - start).toBeLessThan(10_000);
  });

  it('refuses to start without --data / --dir, and on a busy port, with a one-line error', async () => {
    let r = kurve(['mds', '--listen', '127.0.0.1:0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('kurve: kurve mds needs --data DIR (or $KURVE_DATA)\n');
    r = kurve(['datastore', '--listen', '127.0.0.1:0']);
    expect(r.stderr).toBe('kurve: kurve datastore needs --dir DIR (or $KURVE_DIR)\n');
    const mds = await startCli(['mds', '--listen', '127.0.0.1:0', '--data', tmp('kurve-cli-busy-'), '--metrics', '']);
    procs.push(mds);
    r = kurve(['mds', '--listen', mds.address, '--data', tmp('kurve-cli-busy2-'), '--metrics', '']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^kurve: cannot listen on ${mds.address.replace(/\./g, '\\.')}: `));
  });

  it('a datastore registers with the MDS; SIGTERM stops both gracefully with exit 0', async () => {
    const mds = await startCli(['mds', '--listen', '127.0.0.1:0', '--data', tmp('kurve-cli-mds2-'), '--metrics', '', '--heartbeat', '200ms']);
    procs.push(mds);
    const ds = await startCli(['datastore', '--listen', '127.0.0.1:0', '--dir', tmp('kurve-cli-ds-'), '--mds', mds.address, '--metrics', '127.0.0.1:0']);
    procs.push(ds);
    const client = new MdsClient(mds.address, { budgetMs: 2000 });
    try {
      const end = Date.now() + 5000;
      let healthy: string[] = [];
      while (Date.now() < end) {
        healthy = (await client.listServers('datastore')).filter((s) => s.healthy).map((s) => s.address);
        if (healthy.length > 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(healthy).toEqual([ds.address]);
    } finally {
      client.close();
    }
    const dsExit = await stop(ds);
    expect(dsExit).toEqual({ code: 0, signal: null });
    expect(ds.stdout()).toMatch(/"msg":"datastore stopped"/);
    const mdsExit = await stop(mds);
    expect(mdsExit).toEqual({ code: 0, signal: null });
    expect(mds.stdout()).toMatch(/"msg":"mds: received SIGTERM, shutting down"/);
    expect(mds.stdout()).toMatch(/"msg":"mds stopped"/);
  });
});
