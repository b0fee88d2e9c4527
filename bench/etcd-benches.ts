// Distributed-mode benchmarks (issue 5): metaserver creates/s and stats/s on the etcd engine with 1
// and 4 client processes next to lmdb, and MDS failover time (kill -9, SIGTERM) on etcd election.
// Servers and clients are separate processes; etcd is the Debian binary on loopback.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { ChildProcess, spawn } from 'node:child_process';
import type { BenchEnv } from './env';
import { Benchmark, Cell, cell, Row, Unavailable } from './harness';
import type { EtcdCluster } from '../src/dev/etcd-process';
import { freePort, waitFor } from './util';

/** A metaserver (lmdb or etcd) in a child process; prints "READY <address>". */
const METASERVER = `
const [dist, kind, etcd, dataDir] = process.argv.slice(1);
const start = kind === 'etcd'
  ? require(dist + '/src/metaserver/engines/etcd-metaserver.js').startEtcdMetaserver({ listen: '127.0.0.1:0', etcd, createFs: [1], graceMs: 500 })
  : require(dist + '/src/metaserver/server.js').startMetaserver({ listen: '127.0.0.1:0', dataDir, createFs: [1], graceMs: 500 });
start.then((s) => {
  process.stdout.write('READY ' + s.address + '\\n');
  process.on('SIGTERM', () => s.close().then(() => process.exit(0), () => process.exit(1)));
}, (err) => { console.error(String(err)); process.exit(1); });
`;

/** An HA MDS replica (etcd store + election) in a child process; prints "READY <address>". */
const MDS = `
const [dist, etcd, dataDir, metricsListen, ttl] = process.argv.slice(1);
require(dist + '/src/mds/etcd-mds.js').startEtcdMds({ etcd, listen: '127.0.0.1:0', dataDir, metricsListen, electionTtlSec: Number(ttl), graceMs: 500 }).then((s) => {
  process.stdout.write('READY ' + s.address + '\\n');
  process.on('SIGTERM', () => s.close().then(() => process.exit(0), () => process.exit(1)));
}, (err) => { console.error(String(err)); process.exit(1); });
`;

/** One client process: its own directory, creates for `seconds`, then getattrs of what it made. */
const CLIENT = `
const [dist, address, seconds, tag, startAt] = process.argv.slice(1);
const { MetaClient } = require(dist + '/src/metaserver/client.js');
const c = new MetaClient(address);
const who = { uid: 0, gid: 0 };
(async () => {
  const dir = (await c.mkdir(1, 1, Buffer.from('bench-' + tag), 0o755, who)).ino;
  while (Date.now() < Number(startAt)) await new Promise((r) => setTimeout(r, 5));
  const inos = [];
  let t0 = performance.now(); let end = t0 + Number(seconds) * 1000; let creates = 0;
  while (performance.now() < end) { const a = await c.mknod(1, dir, Buffer.from('f' + creates), 0o100644, 0, who); creates++; if (inos.length < 1000) inos.push(a.ino); }
  const createSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now(); end = t0 + Number(seconds) * 1000; let stats = 0;
  while (performance.now() < end) { await c.getattr(1, inos[stats % inos.length]); stats++; }
  process.stdout.write(JSON.stringify({ creates, createSeconds, stats, statSeconds: (performance.now() - t0) / 1000 }) + '\\n');
  c.close();
  process.exit(0);
})().catch((err) => { console.error(String(err)); process.exit(1); });
`;

interface Server {
  readonly child: ChildProcess;
  readonly address: string;
}

function startServer(env: BenchEnv, name: string, script: string, args: string[]): Promise<Server> {
  const log = fs.openSync(path.join(env.tmp, `${name}.log`), 'a');
  const child = spawn(process.execPath, ['-e', script, env.distDir, ...args], { stdio: ['ignore', 'pipe', log], env: { ...process.env, KURVE_LOG_LEVEL: 'warn' } });
  fs.closeSync(log);
  env.track(name, child);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start within 20 s: ${env.logTail(name)}`)), 20_000);
    const rl = readline.createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      const m = /^READY (\S+)/.exec(line);
      if (!m) return;
      clearTimeout(t);
      // Keep draining stdout so the child never blocks on a full pipe.
      resolve({ child, address: m[1] });
    });
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`${name} exited ${code}: ${env.logTail(name)}`)); });
  });
}

interface ClientResult {
  creates: number;
  createSeconds: number;
  stats: number;
  statSeconds: number;
}

/** Aggregate creates/s and getattrs/s of `n` client processes started together. */
async function clients(env: BenchEnv, address: string, n: number, seconds: number, tag: string): Promise<{ creates: number; stats: number }> {
  const startAt = Date.now() + 1500;
  const runs = Array.from({ length: n }, (_, i) => env.runNode<ClientResult>(CLIENT, 60_000 + seconds * 2000, [env.distDir, address, String(seconds), `${tag}-${i}`, String(startAt)]));
  const rs = await Promise.all(runs);
  return {
    creates: rs.reduce((a, r) => a + r.creates / r.createSeconds, 0),
    stats: rs.reduce((a, r) => a + r.stats / r.statSeconds, 0),
  };
}

async function withEtcd<T>(env: BenchEnv, fn: (etcd: EtcdCluster) => Promise<T>): Promise<T> {
  const mod = path.join(env.distDir, 'src', 'dev', 'etcd-process.js');
  if (!fs.existsSync(mod)) throw new Unavailable('src/dev/etcd-process.ts is not built');
  const { startEtcdCluster } = require(mod) as typeof import('../src/dev/etcd-process');
  const etcd = await startEtcdCluster({ members: 1, dir: path.join(env.tmp, `etcd-${Date.now().toString(36)}`) }).catch((err: Error) => {
    throw new Unavailable(`etcd did not start: ${err.message.split('\n')[0]}`);
  });
  try {
    return await fn(etcd);
  } finally {
    await etcd.stop();
  }
}

const etcdEngine: Benchmark = {
  name: 'etcd-engine',
  description: 'metaserver creates/s and getattrs/s over gRPC, etcd engine (1 member) vs lmdb, 1 and 4 client processes',
  async run(env) {
    for (const f of ['src/metaserver/engines/etcd-metaserver.js', 'src/metaserver/server.js', 'src/metaserver/client.js']) {
      if (!fs.existsSync(path.join(env.distDir, f))) throw new Unavailable(`${f} is not built`);
    }
    const seconds = env.pick(3, 1);
    const counts = [1, 4];
    return withEtcd(env, async (etcd) => {
      const results: Record<string, Record<number, Cell[]>> = { etcd: {}, lmdb: {} };
      for (const kind of ['etcd', 'lmdb'] as const) {
        const name = `metaserver-${kind}`;
        const server = await startServer(env, name, METASERVER, [kind, etcd.endpointList, path.join(await env.ext4Dir('ms-lmdb'), 'meta')]);
        try {
          for (const n of counts) {
            let r: { creates: number; stats: number } | undefined;
            const c = await cell(async () => { r = await clients(env, server.address, n, seconds, `${kind}${n}`); return r.creates; });
            results[kind][n] = [c, r ? { value: r.stats } : c];
          }
        } finally {
          await env.stopTracked(name);
        }
      }
      const rows: Row[] = [];
      for (const [i, op] of ['creates', 'getattrs'].entries()) {
        for (const n of counts) {
          rows.push({
            name: `metaserver ${op}/s, ${n} client process${n > 1 ? 'es' : ''}: etcd (Kurve) vs lmdb (ref)`,
            unit: 'ops/s', higherIsBetter: true,
            kurve: results.etcd[n][i], reference: { label: 'lmdb', cell: results.lmdb[n][i] },
          });
        }
      }
      return rows;
    });
  },
};

const mdsFailover: Benchmark = {
  name: 'mds-failover',
  description: 'HA MDS on etcd: time until the follower leads after kill -9 / SIGTERM of the leader',
  async run(env) {
    if (!fs.existsSync(path.join(env.distDir, 'src', 'mds', 'etcd-mds.js'))) throw new Unavailable('src/mds/etcd-mds.ts is not built');
    const ttl = env.pick(5, 2);
    return withEtcd(env, async (etcd) => {
      const leads = async (m: string): Promise<boolean> => {
        const { fetchText } = await import('../src/top/scrape');
        return /^kurve_mds_is_leader 1$/m.test(await fetchText(`http://${m}/metrics`, 500).catch(() => ''));
      };
      const replica = async (name: string): Promise<string> => {
        const m = `127.0.0.1:${await freePort()}`;
        await startServer(env, name, MDS, [etcd.endpointList, path.join(env.tmp, name), m, String(ttl)]);
        return m;
      };
      const measure = async (signal: 'SIGKILL' | 'SIGTERM', round: string): Promise<number> => {
        const a = await replica(`mds-${round}-a`);
        if (!(await waitFor(() => leads(a), 15_000, 50))) throw new Error('the first replica never led');
        const b = await replica(`mds-${round}-b`);
        const t0 = performance.now();
        env.signalTracked(`mds-${round}-a`, signal);
        if (!(await waitFor(() => leads(b), 4 * ttl * 1000 + 5000, 20))) throw new Error(`no new leader within ${4 * ttl + 5} s`);
        const ms = performance.now() - t0;
        await env.stopTracked(`mds-${round}-a`);
        await env.stopTracked(`mds-${round}-b`);
        return ms;
      };
      const kill = await cell(() => measure('SIGKILL', 'kill'));
      const term = await cell(() => measure('SIGTERM', 'term'));
      return [
        { name: `MDS failover after kill -9 of the leader (lease TTL ${ttl} s)`, unit: 'ms', higherIsBetter: false, kurve: kill, target: { kind: 'absolute', bound: 'max', value: 2 * ttl * 1000 }, notes: 'issue 5: a new leader within 2× the lease TTL' },
        { name: 'MDS handover on SIGTERM of the leader (resign)', unit: 'ms', higherIsBetter: false, kurve: term, target: { kind: 'absolute', bound: 'max', value: 1000 } },
      ];
    });
  },
};

export const etcdBenchmarks: Benchmark[] = [etcdEngine, mdsFailover];
