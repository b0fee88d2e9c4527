// The Grafana dashboards against a live stack: `kurve up` (with BPF) under a small workload, a real
// Prometheus scraping it every second, and every panel expression evaluated through /api/v1/query.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { describeIf, whyNoBpf, whyNoCommand, whyNoFuse } from '../helpers/privileged';
import { freePort, isMounted, waitFor } from '../../bench/util';
import { expressions, SCHEMA_VERSION } from '../../scripts/dashboard-kit';
import { allDashboards } from '../../scripts/gen-dashboards';
import { fetchText } from '../../src/top/scrape';
import type { EtcdCluster } from '../../src/dev/etcd-process';

const execFileP = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
// KURVE_DIST: run against another build output (development); CI uses dist/ from npm test's build.
const DIST = process.env.KURVE_DIST ?? path.join(ROOT, 'dist');
const CLI = path.join(DIST, 'src', 'cli', 'main.js');
const DASHBOARDS = path.join(ROOT, 'dashboards');
const FILES = ['kurve-client.json', 'kurve-kernel.json', 'kurve-services.json'];

/** SIGTERM, then SIGKILL after `ms`; resolves once the process is gone. */
async function stop(child: ChildProcess | undefined, ms: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), ms);
  await gone;
  clearTimeout(t);
}

const readDashboard = (f: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(DASHBOARDS, f), 'utf8')) as Record<string, unknown>;

/** Grafana's variables, replaced the way a dashboard showing "All" over the last hour would. */
function substitute(expr: string): string {
  return expr
    .replace(/\$__rate_interval/g, '1m')
    .replace(/\$__interval/g, '5s')
    .replace(/\$(instance|op|service)\b/g, '.*');
}

describe('dashboards/*.json', () => {
  it.each(FILES)('%s is importable Grafana JSON and matches scripts/gen-dashboards.ts', (file) => {
    const d = readDashboard(file);
    expect(d).toEqual(JSON.parse(JSON.stringify(allDashboards()[file])));
    expect(d.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(d.schemaVersion).toBe(SCHEMA_VERSION);
    const vars = (d.templating as { list: Array<{ name: string; type: string; query: unknown }> }).list;
    expect(vars[0]).toMatchObject({ name: 'DS_PROMETHEUS', type: 'datasource', query: 'prometheus' });
    const panels = d.panels as Array<{ id: number; type: string; datasource?: { uid: string }; targets?: Array<{ datasource: { uid: string } }>; gridPos: { x: number; w: number } }>;
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels) {
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      if (p.type === 'row') continue;
      expect(p.datasource?.uid).toBe('${DS_PROMETHEUS}');
      for (const t of p.targets ?? []) expect(t.datasource.uid).toBe('${DS_PROMETHEUS}');
      expect((p.targets ?? []).length).toBeGreaterThan(0);
    }
  });
});

describeIf([whyNoCommand('promtool')], 'dashboards/prometheus.yml', () => {
  it('is a valid Prometheus configuration (promtool)', async () => {
    const { stdout } = await execFileP('promtool', ['check', 'config', path.join(DASHBOARDS, 'prometheus.yml')]);
    expect(stdout).toContain('SUCCESS');
  });
});

interface PromAnswer {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

async function promQuery(base: string, expr: string): Promise<PromAnswer> {
  const url = `${base}/api/v1/query?query=${encodeURIComponent(expr)}&time=${Date.now() / 1000}`;
  try {
    return JSON.parse(await fetchText(url, 5000)) as PromAnswer;
  } catch (err) {
    // Prometheus answers a bad expression with HTTP 400 and a JSON body naming the parse error.
    const m = /HTTP 4\d\d: (.*)$/s.exec((err as Error).message);
    if (m) {
      try { return JSON.parse(m[1]) as PromAnswer; } catch { /* not JSON */ }
    }
    throw err;
  }
}

/** A workload that touches every client metric: creates, stats, misses, big writes, reads, renames. */
const WORKLOAD = `
const fs = require('fs'), path = require('path');
const root = path.join(process.argv[2], 'obs-' + process.pid);
fs.mkdirSync(root, { recursive: true });
for (let i = 0; i < 80; i++) {
  const f = path.join(root, 'f' + i);
  fs.writeFileSync(f, 'x'.repeat(i));
  fs.statSync(f);
  try { fs.statSync(f + '.missing'); } catch {}
}
fs.readdirSync(root);
const big = path.join(root, 'big');
const buf = Buffer.alloc(1 << 20, 7);
const fd = fs.openSync(big, 'w');
for (let i = 0; i < 9; i++) fs.writeSync(fd, buf);
fs.fsyncSync(fd);
fs.closeSync(fd);
for (let k = 0; k < 2; k++) {
  // plain opens (passthrough once the data is local) and O_DIRECT ones (served by the daemon from the chunk cache)
  for (const flags of [fs.constants.O_RDONLY, fs.constants.O_RDONLY | fs.constants.O_DIRECT]) {
    const r = fs.openSync(big, flags);
    let n; const b = Buffer.alloc(1 << 20);
    while ((n = fs.readSync(r, b, 0, b.length, null)) > 0);
    fs.closeSync(r);
  }
}
for (let i = 0; i < 20; i++) fs.renameSync(path.join(root, 'f' + i), path.join(root, 'g' + i));
for (let i = 20; i < 40; i++) fs.unlinkSync(path.join(root, 'f' + i));
`;

const reasons = [whyNoFuse(), whyNoCommand('prometheus'), whyNoCommand('etcd'), fs.existsSync(CLI) ? undefined : 'dist not built (npm run build)'];
/** The second client: reads what the first wrote (chunks come from the datastore over gRPC), adds a file. */
const WORKLOAD2 = `
const fs = require('fs'), path = require('path');
const root = process.argv[2];
for (const d of fs.readdirSync(root).filter((n) => n.startsWith('obs-'))) {
  const dir = path.join(root, d);
  for (const n of fs.readdirSync(dir)) fs.statSync(path.join(dir, n));
  if (fs.existsSync(path.join(dir, 'big'))) fs.readFileSync(path.join(dir, 'big'));
  fs.writeFileSync(path.join(dir, 'from-client2-' + process.pid), 'x');
}
`;

describeIf(reasons, 'dashboards against a live Prometheus', () => {
  const bpf = whyNoBpf() === undefined;
  let tmp = '';
  let mnt = '';
  let metrics = '';
  let listen = '';
  let promBase = '';
  let up: ChildProcess | undefined;
  let client2: ChildProcess | undefined;
  let mnt2 = '';
  let metrics2 = '';
  let prom: ChildProcess | undefined;
  let tcpExporter: ChildProcess | undefined;
  let etcd: EtcdCluster | undefined;
  const replicas: Array<{ child: ChildProcess; metrics: string }> = [];
  // tcp_tune state of this test only: its own pin dir and its own cgroup (never the host's root).
  let pinRoot = '';
  let cgroup = '';
  const kurve = (...args: string[]) => execFileP(process.execPath, [CLI, ...args], { timeout: 30_000 });
  const logOf = (name: string): string => {
    try { return fs.readFileSync(path.join(tmp, `${name}.log`), 'utf8').split('\n').slice(-15).join('\n'); } catch { return ''; }
  };
  const start = (name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess => {
    const fd = fs.openSync(path.join(tmp, `${name}.log`), 'a');
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
    fs.closeSync(fd);
    return child;
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-obs-'));
    mnt = path.join(tmp, 'mnt');
    fs.mkdirSync(mnt);
    listen = `127.0.0.1:${await freePort()}`;
    metrics = `127.0.0.1:${await freePort()}`;
    if (bpf) {
      // RTO tuning for loopback in this test's own pin dir, applied to a cgroup holding only
      // Prometheus: its scrapes are the tuned connections (SYN RTO, min RTO, RTT samples) the
      // kernel dashboard shows. kurve up gets the same pin dir, so if it exports kurve_tcp_*
      // itself, it reports these settings.
      const suffix = `kurve-obs-${process.pid}-${Date.now().toString(36)}`;
      pinRoot = path.join('/sys/fs/bpf', suffix);
      const { cgroup2Path } = await import('../../src/ebpf/features');
      cgroup = path.join(cgroup2Path() ?? '/sys/fs/cgroup', suffix);
      fs.mkdirSync(cgroup);
      await kurve('rto', 'set', '127.0.0.0/8', '--syn-rto', '200ms', '--rto-min', '20ms', '--pin-dir', pinRoot);
      await kurve('rto', 'attach', '--cgroup', cgroup, '--pin-dir', pinRoot);
    }
    up = start('up', process.execPath, [CLI, 'up', mnt, '--data', path.join(tmp, 'data'), '--listen', listen, '--metrics', metrics, ...(bpf ? ['--require-bpf'] : ['--no-bpf'])], pinRoot ? { KURVE_BPF_PIN_DIR: pinRoot } : {});
    let exited = false;
    up.once('exit', () => { exited = true; });
    if (!(await waitFor(() => exited || isMounted(mnt), 30_000)) || exited) throw new Error(`kurve up did not mount:\n${logOf('up')}`);

    // A second client of the same file system over gRPC (`kurve mount`): RPCs to every service.
    mnt2 = path.join(tmp, 'mnt2');
    fs.mkdirSync(mnt2);
    metrics2 = `127.0.0.1:${await freePort()}`;
    client2 = start('mount', process.execPath, [CLI, 'mount', mnt2, '--mds', listen, '--cache-dir', path.join(tmp, 'cache2'), '--metrics', metrics2, '--no-bpf']);
    let exited2 = false;
    client2.once('exit', () => { exited2 = true; });
    if (!(await waitFor(() => exited2 || isMounted(mnt2), 30_000)) || exited2) throw new Error(`kurve mount did not mount:\n${logOf('mount')}`);

    // Two `kurve mds --etcd` replicas: leader, follower, and (below) a handover for the failover panels.
    const { startEtcdCluster } = await import('../../src/dev/etcd-process');
    etcd = await startEtcdCluster({ members: 1, dir: path.join(tmp, 'etcd') });
    for (const name of ['mds-a', 'mds-b']) {
      const m = `127.0.0.1:${await freePort()}`;
      const child = start(name, process.execPath, [CLI, 'mds', '--etcd', etcd.endpointList, '--election-ttl', '1s', '--listen', '127.0.0.1:0', '--data', path.join(tmp, name), '--metrics', m]);
      replicas.push({ child, metrics: m });
      // a must lead; b serves as a follower.
      const state = name === 'mds-a' ? /^kurve_mds_is_leader 1$/m : /^kurve_mds_is_leader 0$/m;
      const ready = await waitFor(async () => state.test(await fetchText(`http://${m}/metrics`, 500).catch(() => '')), 15_000, 100);
      if (!ready) throw new Error(`MDS replica ${name} did not come up as ${name === 'mds-a' ? 'leader' : 'follower'}:\n${logOf(name)}`);
    }

    const targets = [metrics];
    // Until kurve up hosts registerTcpTuneMetrics() itself, a small exporter process does, exactly
    // as a Kurve process would, over the same pins.
    if (pinRoot && !/^kurve_tcp_syn_rto_seconds\{prefix="127\.0\.0\.0\/8"\} /m.test(await fetchText(`http://${metrics}/metrics`))) {
      const exporterAddr = `127.0.0.1:${await freePort()}`;
      tcpExporter = start('tcp-exporter', process.execPath, ['-e', [
        `require(${JSON.stringify(path.join(DIST, 'src/top/tcp-metrics.js'))}).registerTcpTuneMetrics(undefined, ${JSON.stringify(pinRoot)});`,
        `require(${JSON.stringify(path.join(DIST, 'src/common/metrics.js'))}).startMetricsServer(${JSON.stringify(exporterAddr)});`,
      ].join('\n')]);
      const ok = await waitFor(async () => { try { await fetchText(`http://${exporterAddr}/metrics`, 500); return true; } catch { return false; } }, 10_000, 100);
      if (!ok) throw new Error(`tcp exporter did not start:\n${logOf('tcp-exporter')}`);
      targets.push(exporterAddr);
    }

    const promPort = await freePort();
    promBase = `http://127.0.0.1:${promPort}`;
    const config = path.join(tmp, 'prometheus.yml');
    fs.writeFileSync(config, [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      '  - job_name: kurve-up',
      `    static_configs: [{ targets: ['${metrics}', '${metrics2}'] }]`,
      ...(targets.length > 1 ? ['  - job_name: kurve-tcp', `    static_configs: [{ targets: ['${targets[1]}'] }]`] : []),
      '  - job_name: kurve-mds',
      `    static_configs: [{ targets: [${replicas.map((r) => `'${r.metrics}'`).join(', ')}] }]`,
      '',
    ].join('\n'));
    const promArgs = [`--config.file=${config}`, `--storage.tsdb.path=${path.join(tmp, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`];
    // Prometheus joins the test's cgroup before it execs, so every scrape connection is tuned.
    prom = cgroup
      ? start('prometheus', 'sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec prometheus "$@"', cgroup, ...promArgs])
      : start('prometheus', 'prometheus', promArgs);
    const ready = await waitFor(async () => {
      try { await fetchText(`${promBase}/-/ready`, 1000); return true; } catch { return false; }
    }, 20_000, 100);
    if (!ready) throw new Error(`prometheus not ready:\n${logOf('prometheus')}`);

    // Rates need a sample from before the workload: a series whose first scrape already holds
    // the increments shows a rate of 0. So wait for one scrape, then work in two rounds.
    const firstScrape = await waitFor(async () => (await promQuery(promBase, 'up{job="kurve-up"} == 1')).data?.result.length === 2, 20_000, 200);
    if (!firstScrape) throw new Error(`prometheus did not scrape kurve up:\n${logOf('prometheus')}`);
    const script = path.join(tmp, 'workload.js');
    fs.writeFileSync(script, WORKLOAD);
    const script2 = path.join(tmp, 'workload2.js');
    fs.writeFileSync(script2, WORKLOAD2);
    const { MdsClient } = await import('../../src/mds/client');
    const mds = new MdsClient(listen, { budgetMs: 5000 });
    try {
      for (let round = 0; round < 2; round++) {
        // The load generator is its own process (never the daemon's, never jest's).
        await execFileP(process.execPath, [script, mnt], { timeout: 60_000 });
        await execFileP(process.execPath, [script2, mnt2], { timeout: 60_000 });
        // gRPC traffic for the RPC panels: a second client of the same services (one call fails).
        await mds.listFs();
        await mds.listSessions();
        await expect(mds.getFs('no-such-fs')).rejects.toThrow();
        await new Promise((r) => setTimeout(r, 1500));
      }
    } finally {
      mds.close();
    }
    // Handover: SIGTERM the leader; the follower must take over within a few seconds.
    await stop(replicas[0].child, 10_000);
    const tookOver = await waitFor(async () => /^kurve_mds_is_leader 1$/m.test(await fetchText(`http://${replicas[1].metrics}/metrics`, 500).catch(() => '')), 10_000, 100);
    if (!tookOver) throw new Error(`MDS replica b did not take over:\n${logOf('mds-b')}`);
    // Enough scrapes after the workload for rates over the last minute.
    const scraped = await waitFor(async () => {
      const a = await promQuery(promBase, 'sum(kurve_fuse_requests_total{job="kurve-up"})');
      return Number(a.data?.result[0]?.value[1] ?? 0) > 400;
    }, 20_000, 250);
    if (!scraped) throw new Error(`prometheus has no kurve samples:\n${logOf('prometheus')}`);
    await new Promise((r) => setTimeout(r, 3000));
  }, 120_000);

  afterAll(async () => {
    // The second client goes first: it depends on kurve up's services.
    await stop(client2, 15_000);
    await Promise.all([stop(prom, 5000), stop(up, 15_000), stop(tcpExporter, 5000), ...replicas.map((r) => stop(r.child, 10_000))]);
    await etcd?.stop();
    for (const m of [mnt2, mnt]) if (m && isMounted(m)) execFileSync('umount', ['-l', m]);
    if (pinRoot) {
      await kurve('rto', 'detach', '--pin-dir', pinRoot).catch(() => undefined);
      // Removing the pins unloads the maps; the links went with detach.
      fs.rmSync(pinRoot, { recursive: true, force: true });
    }
    // A cgroup can be removed once its processes are gone (Prometheus was its only member).
    if (cgroup) await waitFor(() => { try { fs.rmdirSync(cgroup); return true; } catch { return false; } }, 5000);
    if (tmp && !isMounted(mnt) && !isMounted(mnt2)) fs.rmSync(tmp, { recursive: true, force: true });
  }, 30_000);

  it.each(FILES)('%s: every panel expression parses and returns data', async (file) => {
    const failures: string[] = [];
    for (const { panel, expr } of expressions(readDashboard(file))) {
      const q = substitute(expr);
      const a = await promQuery(promBase, q);
      if (a.status !== 'success') failures.push(`${panel}: ${a.error ?? a.status} in ${q}`);
      else if (!a.data?.result.length) failures.push(`${panel}: no data for ${q}`);
      else if (!a.data.result.some((r) => Number.isFinite(Number(r.value[1])))) failures.push(`${panel}: only NaN/Inf for ${q}`);
    }
    expect(failures).toEqual([]);
  });

  it.each(FILES)('%s: template variables list values', async (file) => {
    const vars = (readDashboard(file).templating as { list: Array<{ name: string; definition?: string }> }).list;
    for (const v of vars.filter((x) => x.definition)) {
      const m = /^label_values\((\w+), (\w+)\)$/.exec(v.definition!);
      expect(m).not.toBeNull();
      const a = await promQuery(promBase, `count by (${m![2]}) (${m![1]})`);
      expect({ variable: v.name, values: a.data?.result.length ?? 0 }).toEqual({ variable: v.name, values: expect.any(Number) });
      expect(a.data?.result.length).toBeGreaterThan(0);
    }
  });

  it('sees RPCs of all three services and both clients\' FUSE requests', async () => {
    const services = await promQuery(promBase, 'count by (service) (kurve_rpc_requests_total)');
    expect(services.data?.result.length).toBeGreaterThanOrEqual(3);
    const clients = await promQuery(promBase, 'count by (instance) (kurve_fuse_requests_total)');
    expect(clients.data?.result.map((r) => r.metric.instance).sort()).toEqual([metrics, metrics2].sort());
  });

  it('kurve top --once shows the mount\'s opcodes from the daemon and the kernel', async () => {
    const { stdout } = await execFileP(process.execPath, [CLI, 'top', '--once', '--metrics', metrics, '--interval', '500ms'], { timeout: 15_000 });
    expect(stdout).toContain(`kurve top — ${metrics}`);
    expect(stdout).toMatch(/FUSE requests seen by the daemon/);
    if (bpf) expect(stdout).not.toContain('not available (no fuse_trace metrics');
    // The body is idle now, but the scrape must have parsed: the header carries the process line.
    expect(stdout).toMatch(/process\s+handles \d+\s+inodes \d+/);
    const raw = await fetchText(`http://${metrics}/metrics`);
    expect(raw).toContain('kurve_fuse_requests_total');
  });
});
