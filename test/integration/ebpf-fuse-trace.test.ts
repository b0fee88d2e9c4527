// fuse_trace against a real mount served by the FUSE session in this process: the kernel-side
// per-opcode counts must equal the daemon's own counters for a scripted workload.
import * as fsp from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { connectionIdFromDev, FuseTracer, registerFuseTracerMetrics } from '../../src/ebpf/fuse-tracer';
import { kurvePrograms } from '../../src/ebpf/status';
import { MemFs } from '../helpers/memfs';
import { mountTemp, type TempMount } from '../helpers/mount';
import { describeIf, whyNoBpf, whyNoFuse } from '../helpers/privileged';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The tracepoints do not fire for these (they bypass the request queue); the daemon counts them.
const NOT_TRACED = new Set(['FORGET', 'BATCH_FORGET', 'INTERRUPT']);

describeIf([whyNoFuse(), whyNoBpf()], 'eBPF fuse_trace on a real mount', () => {
  let m: TempMount | undefined;
  let tracer: FuseTracer | undefined;

  beforeAll(async () => {
    m = await mountTemp(new MemFs());
    tracer = FuseTracer.open();
  });
  afterAll(async () => {
    tracer?.close();
    await m?.cleanup();
  });

  async function settle(): Promise<void> {
    // RELEASE and friends arrive after the workload exits: wait until the counters stop moving.
    let last = '';
    for (let i = 0; i < 100; i++) {
      const now = JSON.stringify(m!.session.opCounts());
      if (now === last) return;
      last = now;
      await sleep(100);
    }
  }

  it('knows the mount\'s connection id from its device number', async () => {
    const st = await fsp.stat(m!.dir, { bigint: true });
    expect(connectionIdFromDev(st.dev)).toBe(m!.session.connectionId);
  });

  it('counts per opcode exactly what the daemon saw', async () => {
    const conn = m!.session.connectionId;
    tracer!.addConnection(conn);
    await settle();
    const before = m!.session.opCounts();
    const script = `cd "$1" && for i in 1 2 3 4 5 6 7 8; do echo hello$i > f$i; cat f$i > /dev/null; stat f$i > /dev/null; done
      mkdir d && touch d/x && ls -l d > /dev/null && rm d/x && rmdir d
      stat missing 2>/dev/null; mv f1 g1; rm f2 f3; ln -s g1 s1; readlink s1 > /dev/null; true`;
    await run('sh', ['-c', script, 'sh', m!.dir], { timeout: 20_000 });
    await settle();
    const after = m!.session.opCounts();
    const daemon: Record<string, number> = {};
    for (const [op, n] of Object.entries(after)) {
      const d = n - (before[op] ?? 0);
      if (d > 0 && !NOT_TRACED.has(op)) daemon[op] = d;
    }
    const kernel: Record<string, number> = {};
    for (const s of tracer!.snapshot(conn)) kernel[s.op] = s.count;
    expect(kernel).toEqual(daemon);
    expect(Object.keys(kernel)).toEqual(expect.arrayContaining(['LOOKUP', 'GETATTR', 'CREATE', 'WRITE', 'READ', 'MKDIR', 'UNLINK', 'RMDIR', 'RENAME2', 'SYMLINK', 'READLINK']));

    const lookups = tracer!.snapshot(conn).find((s) => s.op === 'LOOKUP')!;
    expect(lookups.errors).toBeGreaterThanOrEqual(1); // "missing" → ENOENT
    const get = tracer!.snapshot(conn).find((s) => s.op === 'GETATTR')!;
    expect(get.completed).toBe(get.count);
    expect(get.histogram.reduce((a, b) => a + b, 0)).toBe(get.completed);
    expect(get.sumSeconds).toBeGreaterThan(0);
    // eslint-disable-next-line no-console
    console.log(`fuse_trace vs daemon: ${JSON.stringify(kernel)}`);
  }, 30_000);

  it('exports kurve_kernel_fuse_* metrics', async () => {
    const reg = new Registry();
    registerFuseTracerMetrics(reg);
    registerFuseTracerMetrics(reg); // idempotent
    const text = await reg.metrics();
    const get = tracer!.snapshot().find((s) => s.op === 'GETATTR')!;
    expect(text).toContain(`kurve_kernel_fuse_requests_total{op="GETATTR"} ${get.count}`);
    expect(text).toMatch(/kurve_kernel_fuse_errors_total\{op="LOOKUP"\} [1-9]/);
    expect(text).toContain(`kurve_kernel_fuse_request_duration_seconds_count{op="GETATTR"} ${get.completed}`);
    expect(text).toContain(`kurve_kernel_fuse_request_duration_seconds_bucket{op="GETATTR",le="+Inf"} ${get.completed}`);
    expect(text).toMatch(/# TYPE kurve_kernel_fuse_request_duration_seconds histogram/);
  });

  it('shares one loaded object between handles, each seeing its own connections', async () => {
    const loaded = () => kurvePrograms().filter((p) => p.name === 'fuse_request_se').length;
    const before = loaded();
    const other = FuseTracer.open();
    try {
      expect(loaded()).toBe(before);
      other.addConnection(0x7fffff); // no such mount
      expect(other.snapshot()).toEqual([]);
      expect(tracer!.connections).toEqual([m!.session.connectionId]);
    } finally {
      other.close();
    }
    // The first handle keeps working after the second closed.
    await run('sh', ['-c', 'stat "$1" > /dev/null', 'sh', m!.dir], { timeout: 10_000 });
    expect(tracer!.snapshot().find((s) => s.op === 'GETATTR')!.count).toBeGreaterThan(0);
  });

  it('stops counting a removed connection', async () => {
    const conn = m!.session.connectionId;
    tracer!.removeConnection(conn);
    await run('sh', ['-c', 'stat "$1" > /dev/null', 'sh', m!.dir], { timeout: 10_000 });
    expect(tracer!.snapshot(conn)).toEqual([]);
  });
});
