// `kurve trace` recipes through the real CLI and bpftrace, each for ~1 s against a real mount
// (served by this process) with a workload running, and TCP retransmits from a namespace pair.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import type { AttrOut, Reply, RequestContext } from '../../src/fuse/protocol/raw-fs';
import type { RecipeResult } from '../../src/ebpf/trace-recipes';
import { MemFs } from '../helpers/memfs';
import { mountTemp, type TempMount } from '../helpers/mount';
import { NetnsPair, uniqueTag } from '../helpers/netns';
import { describeIf, whyNoBpf, whyNoCommand, whyNoFuse } from '../helpers/privileged';

const run = promisify(execFile);
// KURVE_CLI: run another build of the CLI (e.g. a private one while dist/ is being rebuilt).
const CLI = process.env.KURVE_CLI ?? path.join(__dirname, '../../dist/src/cli/main.js');
const whyNoCli = () => (fs.existsSync(CLI) ? undefined : 'dist/src/cli/main.js missing (npm run build)');

/** GETATTR of one chosen inode takes 25 ms, for slow-fuse-requests. */
class SlowFs extends MemFs {
  slowIno = -1;
  override getattr(ctx: RequestContext): Reply<AttrOut> {
    if (ctx.nodeid !== this.slowIno) return super.getattr(ctx);
    return new Promise((resolve) => setTimeout(() => resolve(super.getattr(ctx) as AttrOut), 25));
  }
}

describeIf([whyNoFuse(), whyNoBpf(), whyNoCommand('bpftrace'), whyNoCommand('ip'), whyNoCli()], 'kurve trace recipes (bpftrace)', () => {
  let fsImpl: SlowFs;
  let m: TempMount | undefined;
  let workload: ChildProcess | undefined;
  const pair = new NetnsPair(uniqueTag());

  beforeAll(async () => {
    fsImpl = new SlowFs();
    m = await mountTemp(fsImpl);
    await fsp.writeFile(m.p('f'), 'hello\n');
    await fsp.writeFile(m.p('slow'), 'zzz\n');
    fsImpl.slowIno = (await fsp.stat(m.p('slow'))).ino;
    // Keeps FUSE requests flowing (attr timeouts are 0: every stat reaches the daemon).
    // No spawn cwd on the mount: libuv's chdir would wait for this (blocked) event loop.
    workload = spawn('sh', ['-c', 'cd "$1" && while :; do cat f > /dev/null; stat "$1/f" "$1/slow" > /dev/null; sleep 0.02; done', 'sh', m.dir], { stdio: 'ignore' });
    pair.setUp();
  });
  afterAll(async () => {
    workload?.kill('SIGKILL');
    pair.tearDown();
    await m?.cleanup();
  });

  async function trace(recipe: string, ...extra: string[]): Promise<RecipeResult> {
    const { stdout } = await run(process.execPath, [CLI, 'trace', recipe, '--duration', '1s', '--json', ...extra], { timeout: 30_000 });
    const out = JSON.parse(stdout) as { recipe: string; result: RecipeResult };
    expect(out.recipe).toBe(recipe);
    return out.result;
  }

  it('lists the recipes', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'trace', 'list']);
    for (const r of ['fuse-latency', 'fuse-ops-by-process', 'slow-fuse-requests', 'tcp-retransmits', 'syscall-latency']) expect(stdout).toContain(r);
  });

  it('fuse-latency: per-opcode histograms for the mount', async () => {
    const r = await trace('fuse-latency', '--mount', m!.dir);
    expect(r.kind).toBe('histograms');
    if (r.kind !== 'histograms') return;
    const ops = r.rows.map((x) => x.key[0]);
    expect(ops).toEqual(expect.arrayContaining(['GETATTR', 'LOOKUP']));
    expect(r.rows.every((x) => x.count > 0 && x.buckets.length > 0)).toBe(true);
  }, 40_000);

  it('fuse-ops-by-process: the workload\'s commands and opcodes', async () => {
    const r = await trace('fuse-ops-by-process', '--mount', m!.dir);
    expect(r.kind).toBe('table');
    if (r.kind !== 'table') return;
    expect(r.columns).toEqual(['pid', 'comm', 'op', 'count']);
    expect(r.rows.some((row) => row[1] === 'stat' && row[2] === 'GETATTR')).toBe(true);
  }, 40_000);

  it('slow-fuse-requests: requests over the threshold with opcode, pid, comm', async () => {
    const r = await trace('slow-fuse-requests', '--mount', m!.dir, '--threshold', '15ms');
    expect(r.kind).toBe('table');
    if (r.kind !== 'table') return;
    expect(r.rows.length).toBeGreaterThan(0);
    // The slowed GETATTRs are there; anything else listed (a busy machine) is over the threshold too.
    expect(r.rows.some(([op, pid, comm]) => op === 'GETATTR' && comm === 'stat' && Number(pid) > 0)).toBe(true);
    for (const row of r.rows) expect(row[3]).toBeGreaterThanOrEqual(15_000);
  }, 40_000);

  it('syscall-latency: syscalls on the mount by process', async () => {
    const r = await trace('syscall-latency', '--mount', m!.dir);
    expect(r.kind).toBe('histograms');
    if (r.kind !== 'histograms') return;
    const keys = r.rows.map((x) => x.key.join(' '));
    expect(keys).toEqual(expect.arrayContaining(['cat read']));
    expect(keys.some((k) => /^(stat|cat) (statx|newfstatat|openat)$/.test(k))).toBe(true);
  }, 40_000);

  it('tcp-retransmits: SYN retransmits per destination', async () => {
    pair.blackhole();
    const port = 9; // nothing listens; the SYNs are blackholed anyway
    const connects: ChildProcess[] = [];
    const tracing = trace('tcp-retransmits', '--duration', '2500ms');
    try {
      for (let i = 0; i < 3; i++) {
        const c = pair.connect(port, 10_000);
        c.result.catch(() => undefined); // killed below, before it prints
        connects.push(c.child);
        await new Promise((r) => setTimeout(r, 400));
      }
      const r = await tracing;
      expect(r.kind).toBe('table');
      if (r.kind !== 'table') return;
      expect(r.rows).toEqual(expect.arrayContaining([[pair.serverIp, port, 'syn', expect.any(Number)]]));
    } finally {
      for (const c of connects) c.kill('SIGKILL');
      pair.restore();
    }
  }, 40_000);

  it('Ctrl-C ends a long trace cleanly and still prints what was collected', async () => {
    const child = spawn(process.execPath, [CLI, 'trace', 'fuse-latency', '--duration', '60s', '--json', '--mount', m!.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await new Promise((r) => setTimeout(r, 3_000)); // bpftrace compiles and attaches in ~1-2 s
      const t0 = Date.now();
      child.kill('SIGINT');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 10_000)))]);
      clearTimeout(timer);
      expect(code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(10_000);
      const res = JSON.parse(out) as { result: RecipeResult };
      expect(res.result.kind === 'histograms' && res.result.rows.length > 0).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);

  it('fails clearly: unknown recipe, no bpftrace, not root, --mount not a FUSE mount', async () => {
    await expect(run(process.execPath, [CLI, 'trace', 'nope'])).rejects.toMatchObject({ stderr: expect.stringMatching(/unknown recipe "nope"/) });
    await expect(run(process.execPath, [CLI, 'trace', 'fuse-latency'], { env: { ...process.env, PATH: '/nonexistent' } }))
      .rejects.toMatchObject({ stderr: expect.stringMatching(/bpftrace is not installed/) });
    await expect(run(process.execPath, [CLI, 'trace', 'fuse-latency'], { uid: 65534, gid: 65534 }))
      .rejects.toMatchObject({ stderr: expect.stringMatching(/bpftrace needs root/) });
    const notFuse = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-notfuse-'));
    try {
      await expect(run(process.execPath, [CLI, 'trace', 'fuse-latency', '--mount', notFuse])).rejects.toMatchObject({ stderr: expect.stringMatching(/is not a FUSE mount point/) });
    } finally {
      fs.rmdirSync(notFuse);
    }
  });
});
