// `kurve dev cluster`: a whole distributed Kurve on loopback, as real processes — a 3-member etcd,
// 3 MDS replicas (etcd election), 2 metaservers on the etcd engine, 2 datastores and a file system
// named "default". Used for demos and by the HA tests; stop() kills every child, always.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { EtcdCluster, killAndWait, startEtcdCluster, trackChild } from './etcd-process';

export interface DevClusterOptions {
  /** Where data and logs go; default a temp dir removed by stop(). A given dir is kept (and reused). */
  readonly dir?: string;
  /** Port layout base (default 6700): MDS base+1.., metaservers base+11.., datastores base+21.., etcd base+31.., metrics base+41... */
  readonly basePort?: number;
  readonly mds?: number;
  readonly metaservers?: number;
  readonly datastores?: number;
  readonly etcdMembers?: number;
  /** MDS election lease, whole seconds (default 5). */
  readonly electionTtlSec?: number;
  /** Client session lease (default: the MDS default, 20 s). */
  readonly sessionLeaseMs?: number;
  /** Server heartbeat period (default: the MDS default, 2 s). */
  readonly heartbeatMs?: number;
  readonly fsName?: string;
  /** The kurve CLI (main.js) to run children with; default: the built one next to this file or in dist/. */
  readonly cli?: string;
  /** Bound on the whole start (default 60 s). */
  readonly startTimeoutMs?: number;
  /** Progress lines (e.g. process.stderr.write). */
  readonly log?: (line: string) => void;
  /** More command-line flags for every process of a kind (e.g. metaserver ['--unlink-grace', '1s']). */
  readonly extraArgs?: Partial<Record<ServiceKind, readonly string[]>>;
  /** Aborting (Ctrl-C during startup) stops what was started and rejects. */
  readonly signal?: AbortSignal;
}

export type ServiceKind = 'mds' | 'metaserver' | 'datastore';

export interface DevService {
  readonly kind: ServiceKind;
  readonly index: number;
  readonly address: string;
  readonly metrics: string;
  readonly logFile: string;
  readonly args: string[];
  proc: ChildProcess | undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function findCli(explicit?: string): string {
  const candidates = explicit ? [explicit] : [path.join(__dirname, '..', 'cli', 'main.js')];
  let d = __dirname;
  for (let i = 0; i < 6 && !explicit; i++, d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) {
      candidates.push(path.join(d, 'dist', 'src', 'cli', 'main.js'));
      break;
    }
  }
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw new Error(`kurve CLI not found (tried ${candidates.join(', ')}): build first (npm run build)`);
  return found;
}

function canConnect(address: string, timeoutMs = 300): Promise<boolean> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = net.connect({ host: address.slice(0, i), port: Number(address.slice(i + 1)), timeout: timeoutMs });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.once('timeout', () => done(false));
  });
}

function tail(file: string, lines = 12): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export class DevCluster {
  private stopped = false;

  constructor(
    readonly dir: string,
    private readonly ownsDir: boolean,
    readonly etcd: EtcdCluster,
    readonly services: DevService[],
    readonly fsName: string,
    private readonly cli: string,
  ) {}

  list(kind: ServiceKind): DevService[] {
    return this.services.filter((s) => s.kind === kind);
  }
  addresses(kind: ServiceKind): string[] {
    return this.list(kind).map((s) => s.address);
  }
  get mdsList(): string {
    return this.addresses('mds').join(',');
  }

  spawn(svc: DevService): void {
    const out = fs.openSync(svc.logFile, 'a');
    try {
      const p = spawn(process.execPath, [this.cli, ...svc.args], {
        stdio: ['ignore', out, out],
        env: { ...process.env, KURVE_LOG_JSON: '1' },
      });
      svc.proc = p;
      trackChild(p);
      p.once('exit', () => {
        if (svc.proc === p) svc.proc = undefined;
      });
      p.once('error', () => {
        if (svc.proc === p) svc.proc = undefined;
      });
    } finally {
      fs.closeSync(out);
    }
  }

  /** Waits (bounded) until the service accepts connections; fails with its log tail if it exited. */
  async waitUp(svc: DevService, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!svc.proc) throw new Error(`${svc.kind} ${svc.index} exited during startup; log ${svc.logFile}:\n${tail(svc.logFile)}`);
      if (await canConnect(svc.address)) return;
      if (Date.now() > deadline) throw new Error(`${svc.kind} ${svc.index} not listening on ${svc.address} after ${timeoutMs} ms:\n${tail(svc.logFile)}`);
      await sleep(50);
    }
  }

  /** Kills one service process (SIGKILL = crash; SIGTERM = graceful) and waits for it to exit. */
  async kill(kind: ServiceKind, index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const svc = this.list(kind)[index];
    if (svc?.proc) await killAndWait(svc.proc, signal, 10_000);
  }

  /** Starts a killed service again with the same arguments. */
  async restart(kind: ServiceKind, index: number): Promise<void> {
    const svc = this.list(kind)[index];
    if (svc.proc) throw new Error(`${kind} ${index} is running`);
    this.spawn(svc);
    await this.waitUp(svc);
  }

  /** Stops everything: services (SIGTERM, then SIGKILL after 5 s), then etcd; removes a temp dir. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Clients of the MDS first, then the MDS (which revoke their election leases), then etcd.
    const order: ServiceKind[] = ['metaserver', 'datastore', 'mds'];
    for (const kind of order) {
      await Promise.all(this.list(kind).map((s) => (s.proc ? killAndWait(s.proc, 'SIGTERM', 5000) : undefined)));
    }
    await this.etcd.stop();
    if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Starts the whole cluster and creates the file system; on any failure everything started is stopped. */
export async function startDevCluster(opts: DevClusterOptions = {}): Promise<DevCluster> {
  const base = opts.basePort ?? 6700;
  const ownsDir = opts.dir === undefined;
  const dir = path.resolve(opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-dev-')));
  fs.mkdirSync(dir, { recursive: true });
  const log = opts.log ?? (() => undefined);
  const cli = findCli(opts.cli);
  const started = Date.now();
  const budget = opts.startTimeoutMs ?? 60_000;
  const left = () => Math.max(1000, budget - (Date.now() - started));
  const checkAbort = () => {
    if (opts.signal?.aborted) throw new Error('interrupted while starting');
  };

  log(`etcd: starting ${opts.etcdMembers ?? 3} members`);
  const etcd = await startEtcdCluster({ members: opts.etcdMembers ?? 3, basePort: base + 31, dir: path.join(dir, 'etcd'), startTimeoutMs: 20_000 });
  const services: DevService[] = [];
  const cluster = new DevCluster(dir, ownsDir, etcd, services, opts.fsName ?? 'default', cli);
  try {
    const host = '127.0.0.1';
    let metricsPort = base + 41;
    const add = (kind: ServiceKind, index: number, port: number, args: (addr: string, metrics: string, d: string) => string[]) => {
      const address = `${host}:${port}`;
      const metrics = `${host}:${metricsPort++}`;
      const d = path.join(dir, `${kind}${index}`);
      fs.mkdirSync(d, { recursive: true });
      services.push({ kind, index, address, metrics, logFile: path.join(dir, `${kind}${index}.log`), args: args(address, metrics, d), proc: undefined });
    };
    const nMds = opts.mds ?? 3;
    for (let i = 0; i < nMds; i++) {
      add('mds', i, base + 1 + i, (a, m, d) => [
        'mds', '--listen', a, '--data', d, '--metrics', m, '--etcd', etcd.endpointList,
        '--election-ttl', `${opts.electionTtlSec ?? 5}s`,
        ...(opts.sessionLeaseMs ? ['--lease', `${opts.sessionLeaseMs}ms`] : []),
        ...(opts.heartbeatMs ? ['--heartbeat', `${opts.heartbeatMs}ms`] : []),
        ...(opts.extraArgs?.mds ?? []),
      ]);
    }
    const mdsList = services.map((s) => s.address).join(',');
    for (let i = 0; i < (opts.datastores ?? 2); i++) {
      add('datastore', i, base + 21 + i, (a, m, d) => {
        // Stable, readable ids (placement hashes by id, so a restart keeps every chunk's owner).
        if (!fs.existsSync(path.join(d, 'server-id'))) fs.writeFileSync(path.join(d, 'server-id'), `ds-${i}\n`);
        return ['datastore', '--listen', a, '--dir', d, '--metrics', m, '--mds', mdsList, ...(opts.extraArgs?.datastore ?? [])];
      });
    }
    for (let i = 0; i < (opts.metaservers ?? 2); i++) {
      // No --datastore: the metaservers collect garbage on every datastore the MDS lists.
      add('metaserver', i, base + 11 + i, (a, m) => [
        'metaserver', '--listen', a, '--etcd', etcd.endpointList, '--metrics', m, '--mds', mdsList,
        ...(opts.extraArgs?.metaserver ?? []),
      ]);
    }
    for (const kind of ['mds', 'datastore', 'metaserver'] as const) {
      checkAbort();
      log(`${kind}: starting ${cluster.list(kind).length}`);
      for (const s of cluster.list(kind)) cluster.spawn(s);
      await Promise.all(cluster.list(kind).map((s) => cluster.waitUp(s, left())));
    }
    checkAbort();
    await createFs(cluster, left(), log);
    checkAbort();
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** Waits for every metaserver and datastore to be healthy at the MDS leader, then creates the fs (idempotent). */
async function createFs(cluster: DevCluster, timeoutMs: number, log: (l: string) => void): Promise<void> {
  const { MdsClient } = await import('../mds/client');
  const client = new MdsClient(cluster.addresses('mds'), { budgetMs: 5000 });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const servers = await client.listServers().catch(() => []);
      const healthy = (k: string) => servers.filter((s) => s.kind === k && s.healthy).length;
      if (healthy('metaserver') === cluster.list('metaserver').length && healthy('datastore') === cluster.list('datastore').length) break;
      if (Date.now() > deadline) throw new Error(`services did not all register with the MDS within ${timeoutMs} ms`);
      await sleep(100);
    }
    const existing = await client.listFs();
    if (!existing.some((f) => f.name === cluster.fsName)) {
      await client.createFs(cluster.fsName, 0);
      log(`file system "${cluster.fsName}" created`);
    }
  } finally {
    client.close();
  }
}
