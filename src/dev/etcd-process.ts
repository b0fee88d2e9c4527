// Runs real etcd members (Debian's etcd-server 3.4) on loopback for tests and `kurve dev cluster`:
// explicit client/peer URLs, a data dir per member, a bounded wait for health, kill one member,
// and a stop() that always kills every child and removes the dirs it created.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { ChildProcess, spawn } from 'node:child_process';

export interface EtcdClusterOptions {
  /** Number of members (1 or 3 usually). Default 1. */
  readonly members?: number;
  /** Parent directory for the members' data dirs; default a fresh temp dir (removed by stop()). */
  readonly dir?: string;
  /** First port to use: member i gets client basePort+2i and peer basePort+2i+1. Default: free ports. */
  readonly basePort?: number;
  readonly host?: string;
  /** Raft heartbeat / election timeout in ms; the fast defaults suit tests on one host. */
  readonly heartbeatMs?: number;
  readonly electionMs?: number;
  /** Bound on the wait for every member to report healthy. Default 15 s. */
  readonly startTimeoutMs?: number;
  /** etcd binary; default `etcd` from PATH. */
  readonly bin?: string;
  /** Cluster token; distinct per cluster so stray members never join the wrong one. */
  readonly token?: string;
}

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  proc: ChildProcess | undefined;
}

/** Children of this process that must never outlive it (even if a test forgets to stop). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
/** Registers a child to be SIGKILLed if this process exits without stopping it. */
export function trackChild(p: ChildProcess): void {
  live.add(p);
  p.once('exit', () => live.delete(p));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** `count` distinct ports that were free a moment ago (held open together so none repeats). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, host, () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

function httpGetJson(url: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** etcd's /health says {"health":"true"} once the member has a leader and can serve. */
export async function memberHealthy(clientUrl: string, timeoutMs = 500): Promise<boolean> {
  try {
    const h = (await httpGetJson(`${clientUrl}/health`, timeoutMs)) as { health?: string };
    return h.health === 'true';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export class EtcdCluster {
  private stopped = false;

  constructor(
    readonly members: EtcdMember[],
    readonly dir: string,
    private readonly ownsDir: boolean,
    private readonly spawnArgs: (m: EtcdMember, state: 'new' | 'existing') => string[],
    private readonly bin: string,
  ) {}

  /** Client URLs of every member (what an etcd3 client takes as `hosts`). */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** host:port of every member, comma separated: the form `--etcd` flags take. */
  get endpointList(): string {
    return this.members.map((m) => m.clientUrl.replace(/^http:\/\//, '')).join(',');
  }

  spawnMember(i: number, state: 'new' | 'existing' = 'new'): void {
    const m = this.members[i];
    const out = fs.openSync(m.logFile, 'a');
    try {
      const p = spawn(this.bin, this.spawnArgs(m, state), { stdio: ['ignore', out, out], detached: false });
      trackChild(p);
      m.proc = p;
      // ENOENT (no etcd binary) arrives as 'error' then 'exit'; waitHealthy reports it.
      p.once('error', (err) => {
        fs.appendFileSync(m.logFile, `spawn ${this.bin}: ${err.message}\n`);
        if (m.proc === p) m.proc = undefined;
        live.delete(p);
      });
      p.once('exit', () => {
        if (m.proc === p) m.proc = undefined;
      });
    } finally {
      fs.closeSync(out);
    }
  }

  /** Waits (bounded) until the given members (default all running ones) report healthy. */
  async waitHealthy(timeoutMs = 15_000, which?: number[]): Promise<void> {
    const idx = which ?? this.members.map((_, i) => i).filter((i) => this.members[i].proc);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const dead = idx.find((i) => !this.members[i].proc);
      if (dead !== undefined) {
        const m = this.members[dead];
        throw new Error(`etcd member ${m.name} exited during startup; log tail:\n${tail(m.logFile)}`);
      }
      const ok = await Promise.all(idx.map((i) => memberHealthy(this.members[i].clientUrl)));
      if (ok.every(Boolean)) return;
      if (Date.now() > deadline) {
        const bad = idx.filter((_, k) => !ok[k]).map((i) => this.members[i].name);
        throw new Error(`etcd not healthy after ${timeoutMs} ms (members ${bad.join(', ')}); log tail:\n${tail(this.members[idx[0]].logFile)}`);
      }
      await sleep(25);
    }
  }

  /** Kills one member (default SIGKILL) and waits (bounded) for it to exit. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.members[i].proc;
    if (!p) return;
    await killAndWait(p, signal, 5000);
  }

  /** Restarts a member that was killed, on its existing data dir. */
  async restart(i: number, timeoutMs = 15_000): Promise<void> {
    if (this.members[i].proc) throw new Error(`etcd member ${this.members[i].name} is running`);
    this.spawnMember(i, 'existing');
    await this.waitHealthy(timeoutMs, [i]);
  }

  /** Stops every member (SIGTERM, then SIGKILL after a bound) and removes dirs it created. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.members.map((m) => (m.proc ? killAndWait(m.proc, 'SIGTERM', 3000) : undefined)));
    if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Sends `signal`, then SIGKILL if the process is still there after `graceMs`; resolves on exit. */
export function killAndWait(p: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
    // A process that ignores even SIGKILL (zombie in D state) must not hang the caller.
    const hard = setTimeout(() => resolve(), graceMs + 5000);
    p.once('exit', () => {
      clearTimeout(t);
      clearTimeout(hard);
      resolve();
    });
    p.kill(signal);
  });
}

/** Starts an etcd cluster and waits for it to be healthy; on any failure everything is cleaned up. */
export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const n = opts.members ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new Error(`etcd members must be 1..9, got ${n}`);
  const host = opts.host ?? '127.0.0.1';
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-etcd-'));
  fs.mkdirSync(dir, { recursive: true });
  const token = opts.token ?? `kurve-${process.pid}-${Date.now().toString(36)}`;
  const ports = opts.basePort !== undefined ? Array.from({ length: 2 * n }, (_, k) => opts.basePort! + k) : await freePorts(2 * n, host);
  const members: EtcdMember[] = [];
  for (let i = 0; i < n; i++) {
    const clientPort = ports[2 * i];
    const peerPort = ports[2 * i + 1];
    const name = `etcd${i}`;
    members.push({
      name,
      clientUrl: `http://${host}:${clientPort}`,
      peerUrl: `http://${host}:${peerPort}`,
      dataDir: path.join(dir, `${name}.data`),
      logFile: path.join(dir, `${name}.log`),
      proc: undefined,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const args = (m: EtcdMember, state: 'new' | 'existing'): string[] => [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', m.clientUrl,
    '--advertise-client-urls', m.clientUrl,
    '--listen-peer-urls', m.peerUrl,
    '--initial-advertise-peer-urls', m.peerUrl,
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', state,
    '--initial-cluster-token', token,
    '--heartbeat-interval', String(opts.heartbeatMs ?? 20),
    '--election-timeout', String(opts.electionMs ?? 200),
    // Tests and demos: no need for etcd's 4 GiB default quota or its snapshots.
    '--snapshot-count', '10000',
    // One namespace txn can touch many keys (a big file's chunk map goes to the GC queue at once):
    // etcd's default of 128 ops per txn is too small for that.
    '--max-txn-ops', '8192',
    '--max-request-bytes', String(8 * 1024 * 1024),
    // Every namespace txn rewrites its fs's events key: keep an hour of history, not all of it.
    '--auto-compaction-mode', 'periodic',
    '--auto-compaction-retention', '1h',
    '--log-level', 'warn',
  ];
  const cluster = new EtcdCluster(members, dir, ownsDir, args, opts.bin ?? 'etcd');
  try {
    for (let i = 0; i < n; i++) cluster.spawnMember(i);
    await cluster.waitHealthy(opts.startTimeoutMs ?? 15_000);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}
