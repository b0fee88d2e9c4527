// The SYN RTO set by `kurve rto` (the real CLI) measured on the wire: two network namespaces, SYNs
// to a blackholed neighbour, a packet capture on the server's veth. Connections run in a test
// cgroup, so the sockops program never touches the rest of the machine.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { listPins } from '../../src/ebpf/pins';
import { unloadAll } from '../../src/ebpf/status';
import { NetnsPair, TestCgroup, uniqueTag, type SynEvent } from '../helpers/netns';
import { describeIf, whyNoBpf, whyNoCommand } from '../helpers/privileged';

const run = promisify(execFile);
// KURVE_CLI: run another build of the CLI (e.g. a private one while dist/ is being rebuilt).
const CLI = process.env.KURVE_CLI ?? path.join(__dirname, '../../dist/src/cli/main.js');

function whyNoCli(): string | undefined {
  return fs.existsSync(CLI) ? undefined : 'dist/src/cli/main.js missing (npm run build)';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeIf([whyNoBpf(), whyNoCommand('ip'), whyNoCli()], 'eBPF tcp_tune: SYN RTO in a network namespace', () => {
  const tag = uniqueTag();
  const pair = new NetnsPair(tag);
  const pinRoot = `/sys/fs/bpf/kurve-test-${tag}`;
  let cg: TestCgroup | undefined;
  let capture: { syns: SynEvent[]; stop(): void } | undefined;
  let port = 0;
  const env = { ...process.env, KURVE_BPF_PIN_DIR: pinRoot };
  const kurve = (...args: string[]) => run(process.execPath, [CLI, ...args], { env, timeout: 20_000 });

  beforeAll(async () => {
    pair.setUp();
    cg = new TestCgroup(`kurve-test-${tag}`);
    capture = await pair.capture();
    port = await pair.listen();
  }, 30_000);

  afterAll(() => {
    capture?.stop();
    try {
      unloadAll(pinRoot);
    } finally {
      pair.tearDown();
      cg?.close();
    }
  });

  /** SYNs (not SYN-ACKs) captured after `start`, from the first source port seen. */
  function synsAfter(start: bigint): SynEvent[] {
    const after = capture!.syns.filter((s) => !s.ack && s.t >= start && s.dport === port);
    return after.filter((s) => s.sport === after[0]?.sport);
  }

  async function waitSyns(start: bigint, n: number, ms: number): Promise<SynEvent[]> {
    const deadline = Date.now() + ms;
    while (synsAfter(start).length < n) {
      if (Date.now() > deadline) throw new Error(`saw ${synsAfter(start).length} SYNs, wanted ${n} within ${ms} ms`);
      await sleep(5);
    }
    return synsAfter(start);
  }

  /** ms between the first SYN and its first retransmission, through a blackholed neighbour. */
  async function firstRetransmitMs(host = pair.serverIp): Promise<number> {
    pair.blackhole();
    const start = process.hrtime.bigint();
    const c = pair.connect(port, 10_000, cg, host);
    c.result.catch(() => undefined);
    try {
      const syns = await waitSyns(start, 2, 3_000);
      return Number(syns[1].t - syns[0].t) / 1e6;
    } finally {
      c.child.kill('SIGKILL');
      pair.restore();
    }
  }

  /** connect() time when the first SYN is lost (the neighbour is fixed right after it leaves). */
  async function connectThroughLostSynMs(): Promise<number> {
    pair.blackhole();
    const start = process.hrtime.bigint();
    const c = pair.connect(port, 10_000, cg);
    try {
      await waitSyns(start, 1, 3_000);
    } finally {
      pair.restore();
    }
    const r = await c.result;
    expect(r).toMatchObject({ connected: true });
    return r.connectMs!;
  }

  const measured: Record<string, number> = {};

  it('connects normally through the namespace pair', async () => {
    const r = await pair.connect(port, 5_000, cg).result;
    expect(r.connected).toBe(true);
  });

  it('retransmits the first SYN after ≈ 1 s by default', async () => {
    measured.defaultFirstRetransmitMs = await firstRetransmitMs();
    expect(measured.defaultFirstRetransmitMs).toBeGreaterThan(900);
    expect(measured.defaultFirstRetransmitMs).toBeLessThan(1300);
    measured.defaultLostSynConnectMs = await connectThroughLostSynMs();
    expect(measured.defaultLostSynConnectMs).toBeGreaterThan(900);
  }, 20_000);

  it('rejects bad input with clear errors', async () => {
    await expect(kurve('rto', 'set', pair.subnet, '--syn-rto', '0ms')).rejects.toMatchObject({ stderr: expect.stringMatching(/SYN RTO 0 ms is out of range: use 1 ms to 120 s/) });
    await expect(kurve('rto', 'set', pair.subnet, '--syn-rto', '121s')).rejects.toMatchObject({ stderr: expect.stringMatching(/out of range/) });
    await expect(kurve('rto', 'set', pair.subnet, '--rto-min', '5ms')).rejects.toMatchObject({ stderr: expect.stringMatching(/8 ms to 200 ms/) });
    await expect(kurve('rto', 'set', '10.0.0.0/40', '--syn-rto', '200ms')).rejects.toMatchObject({ stderr: expect.stringMatching(/more than 32/) });
    await expect(kurve('rto', 'set', pair.subnet, '--syn-rto', 'fast')).rejects.toMatchObject({ stderr: expect.stringMatching(/invalid --syn-rto "fast"/) });
    await expect(kurve('rto', 'set', pair.subnet)).rejects.toMatchObject({ stderr: expect.stringMatching(/--syn-rto and\/or --rto-min/) });
  });

  it('retransmits after 200 ms ± 25 % with `kurve rto set … --syn-rto 200ms`', async () => {
    await kurve('rto', 'set', pair.subnet, '--syn-rto', '200ms', '--rto-min', '20ms');
    const { stdout } = await kurve('rto', 'attach', '--cgroup', cg!.path);
    expect(stdout).toContain(`attached to cgroup ${cg!.path}`);
    // The settings and the attachment outlived the CLI processes: they are pinned.
    expect(listPins(pinRoot).map((p) => path.basename(p)).sort()).toEqual(['link-retransmit', 'link-sockops', 'rto_prefixes', 'rto_stats']);
    measured.tunedFirstRetransmitMs = await firstRetransmitMs();
    expect(measured.tunedFirstRetransmitMs).toBeGreaterThan(150);
    expect(measured.tunedFirstRetransmitMs).toBeLessThan(250);
    measured.tunedLostSynConnectMs = await connectThroughLostSynMs();
    // connect() timed in the client process: ≈ 200 ms plus scheduling noise, far from the 1 s default.
    expect(measured.tunedLostSynConnectMs).toBeLessThan(600);
  }, 20_000);

  it('tunes IPv6 prefixes too', async () => {
    await kurve('rto', 'set', pair.subnet6, '--syn-rto', '300ms');
    measured.tunedV6FirstRetransmitMs = await firstRetransmitMs(pair.serverIp6);
    expect(measured.tunedV6FirstRetransmitMs).toBeGreaterThan(225);
    expect(measured.tunedV6FirstRetransmitMs).toBeLessThan(375);
    const { stdout } = await kurve('rto', 'list', '--json');
    const e = (JSON.parse(stdout) as { prefixes: Array<{ prefix: string; stats: Record<string, number> }> }).prefixes.find((p) => p.prefix === pair.subnet6)!;
    expect(e.stats.synTuned).toBe(1);
    expect(e.stats.synRetrans).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it('`kurve rto list` counts tuned connections, SYN retransmits and RTT', async () => {
    const { stdout } = await kurve('rto', 'list', '--json');
    const list = JSON.parse(stdout) as { attached: { cgroup?: string } | null; prefixes: Array<{ prefix: string; synRtoMs?: number; rtoMinMs?: number; stats: Record<string, number> }> };
    expect(list.attached?.cgroup).toBe(cg!.path);
    const e = list.prefixes.find((p) => p.prefix === pair.subnet)!;
    expect(e).toMatchObject({ synRtoMs: 200, rtoMinMs: 20 });
    expect(e.stats.synTuned).toBeGreaterThanOrEqual(2);
    expect(e.stats.synRetrans).toBeGreaterThanOrEqual(2); // one per measurement
    expect(e.stats.rtoMinSet).toBeGreaterThanOrEqual(1); // the connection that got through
    expect(e.stats.rttSamples).toBeGreaterThanOrEqual(1);
    expect(e.stats.srttUs).toBeGreaterThan(0);
    const table = (await kurve('rto', 'list')).stdout;
    expect(table).toMatch(new RegExp(`${pair.subnet.replace(/\./g, '\\.')}\\s+200ms\\s+20ms`));
    // eslint-disable-next-line no-console
    console.log(`RTO measurements (ms): ${JSON.stringify(measured)}`);
  });

  /** The kernel's RTO (ss -ti) of an established connection after 30 round trips. */
  async function establishedRtoMs(): Promise<number> {
    const js = `const s = require('net').connect({ host: '${pair.serverIp}', port: ${port} });
      s.on('error', (e) => console.error('error', e.code));
      // 30 round trips first: the kernel lets rttvar decay to a lowered minimum by 1/4 per round.
      let rounds = 0;
      s.on('connect', () => s.write('ping'));
      s.on('data', () => { if (++rounds < 30) s.write('ping'); else if (rounds === 30) console.log(s.localPort); });
      setTimeout(() => process.exit(0), 10000);`;
    const child = pair.spawnIn(pair.client, [process.execPath, '-e', js], cg);
    try {
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d));
      const sport = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`client not ready within 5 s: ${err}`)), 5_000);
        child.stdout!.once('data', (d: Buffer) => {
          clearTimeout(timer);
          resolve(Number(String(d).trim()));
        });
      });
      const { stdout } = await run('ip', ['netns', 'exec', pair.client, 'ss', '-tin', 'state', 'established', `( sport = :${sport} )`]);
      const m = /\brto:([\d.]+)/.exec(stdout);
      if (!m) throw new Error(`no rto in ss output: ${stdout}`);
      return Number(m[1]);
    } finally {
      child.kill('SIGKILL');
    }
  }

  it('lowers the minimum RTO of established connections (--rto-min)', async () => {
    measured.establishedRtoWithRtoMin20ms = await establishedRtoMs();
    await kurve('rto', 'set', pair.subnet, '--syn-rto', '200ms'); // no --rto-min: the kernel's 200 ms
    measured.establishedRtoDefault = await establishedRtoMs();
    await kurve('rto', 'set', pair.subnet, '--syn-rto', '200ms', '--rto-min', '20ms');
    // eslint-disable-next-line no-console
    console.log(`established-connection RTO (ms): ${JSON.stringify(measured)}`);
    // RTO = srtt + rttvar with rttvar floored at the minimum; srtt on a veth is microseconds.
    expect(measured.establishedRtoWithRtoMin20ms).toBeGreaterThanOrEqual(20);
    expect(measured.establishedRtoWithRtoMin20ms).toBeLessThan(60);
    expect(measured.establishedRtoDefault).toBeGreaterThanOrEqual(200);
  }, 30_000);

  it('detach stops tuning; clear and unload leave nothing behind', async () => {
    expect((await kurve('rto', 'detach')).stdout).toContain('detached');
    const after = await firstRetransmitMs();
    expect(after).toBeGreaterThan(900);
    expect((await kurve('rto', 'clear', pair.subnet)).stdout).toContain('cleared 1 prefix');
    await expect(kurve('rto', 'clear', pair.subnet)).rejects.toMatchObject({ stderr: expect.stringMatching(/is not set/) });
    const status = JSON.parse((await kurve('bpf', 'status', '--json')).stdout) as { pins: Array<{ path: string }> };
    expect(status.pins.map((p) => path.basename(p.path)).sort()).toEqual(['rto_prefixes', 'rto_stats']);
    await kurve('bpf', 'unload');
    expect(listPins(pinRoot)).toEqual([]);
    expect(fs.existsSync(pinRoot)).toBe(false);
  }, 20_000);
});
