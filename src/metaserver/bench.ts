// Metaserver micro-benchmarks: creates, lookups and getattrs per second, in-process (Namespace on
// lmdb) and over gRPC (MetaClient to a metaserver on a free port), sequential and with requests in
// flight; optionally also in-process on lmdb in 'written' durability (the embedded `kurve up` mode).
// Used by the bench harness; also runnable: `node dist/src/metaserver/bench.js [seconds]` (all modes).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MetaService } from './api';
import { ROOT_INO } from './api';
import { MetaClient } from './client';
import { LmdbEngine } from './engines/lmdb';
import { Namespace } from './namespace';
import { startMetaserver } from './server';

export type MetaBenchMode = 'in-process' | 'grpc' | 'in-process-written';

export interface MetaBenchResult {
  /** in-process-written: Namespace on lmdb with durability 'written' (acked before fsync). */
  readonly mode: MetaBenchMode;
  readonly concurrency: number;
  readonly createsPerSec: number;
  readonly lookupsPerSec: number;
  readonly getattrsPerSec: number;
  /** Median latency of one op (ms), per kind. */
  readonly p50Ms: { readonly create: number; readonly lookup: number; readonly getattr: number };
}

export interface MetaBenchOptions {
  /** Seconds per measured phase (default 1). */
  readonly seconds?: number;
  /** Requests in flight (default 1 = sequential). */
  readonly concurrency?: number;
  /** Skip fsync (measures the logic, not the disk). Default false: real durable commits. */
  readonly noSync?: boolean;
  /** Which modes to measure (default in-process and grpc, both with synced acknowledgements). */
  readonly modes?: readonly MetaBenchMode[];
}

const C = { uid: 0, gid: 0 };

/** Runs `op(i)` with `concurrency` loops for `seconds`; returns ops/s and the median op latency. */
async function rate(seconds: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<{ perSec: number; p50Ms: number }> {
  const end = Date.now() + seconds * 1000;
  let n = 0;
  const lat: number[] = [];
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < end) {
      const t = process.hrtime.bigint();
      await op(n++);
      lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }));
  lat.sort((a, b) => a - b);
  const p50Ms = lat.length ? Math.round(lat[Math.floor(lat.length / 2)] * 1000) / 1000 : 0;
  return { perSec: Math.round(n / (Number(process.hrtime.bigint() - start) / 1e9)), p50Ms };
}

async function measure(ms: MetaService, fsId: number, seconds: number, concurrency: number): Promise<Omit<MetaBenchResult, 'mode' | 'concurrency'>> {
  const dir = (await ms.mkdir(fsId, ROOT_INO, Buffer.from(`bench-${concurrency}-${Date.now()}`), 0o755, C)).ino;
  let created = 0;
  const creates = await rate(seconds, concurrency, async (i) => {
    await ms.mknod(fsId, dir, Buffer.from(`f${i}`), 0o100644, 0, C);
    created = Math.max(created, i + 1);
  });
  const names = Math.max(1, Math.min(created, 1000));
  const lookups = await rate(seconds, concurrency, (i) => ms.lookup(fsId, dir, Buffer.from(`f${i % names}`)).catch(() => undefined));
  const getattrs = await rate(seconds, concurrency, () => ms.getattr(fsId, dir));
  return {
    createsPerSec: creates.perSec, lookupsPerSec: lookups.perSec, getattrsPerSec: getattrs.perSec,
    p50Ms: { create: creates.p50Ms, lookup: lookups.p50Ms, getattr: getattrs.p50Ms },
  };
}

/** In-process and gRPC numbers for each concurrency level. */
export async function benchMetaserver(opts: MetaBenchOptions = {}): Promise<MetaBenchResult[]> {
  const seconds = opts.seconds ?? 1;
  const levels = opts.concurrency ? [opts.concurrency] : [1, 32];
  const modes = opts.modes ?? ['in-process', 'grpc'];
  const out: MetaBenchResult[] = [];
  if (modes.includes('in-process') || modes.includes('grpc')) out.push(...(await benchSynced(opts, seconds, levels, modes)));
  if (modes.includes('in-process-written')) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-msbench-'));
    const engine = new LmdbEngine({ path: dataDir, durability: 'written', noSync: opts.noSync });
    const ns = await Namespace.open(engine, { runGc: false });
    try {
      await ns.createFs(1);
      for (const c of levels) out.push({ mode: 'in-process-written', concurrency: c, ...(await measure(ns, 1, seconds, c)) });
    } finally {
      await ns.close();
      await engine.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }
  return out;
}

async function benchSynced(opts: MetaBenchOptions, seconds: number, levels: number[], modes: readonly MetaBenchMode[]): Promise<MetaBenchResult[]> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-msbench-'));
  const server = await startMetaserver({ listen: '127.0.0.1:0', dataDir, createFs: [1], noSync: opts.noSync, graceMs: 1000 });
  const client = new MetaClient(server.address);
  const out: MetaBenchResult[] = [];
  try {
    if (modes.includes('in-process')) for (const c of levels) out.push({ mode: 'in-process', concurrency: c, ...(await measure(server.namespace, 1, seconds, c)) });
    if (modes.includes('grpc')) for (const c of levels) out.push({ mode: 'grpc', concurrency: c, ...(await measure(client, 1, seconds, c)) });
  } finally {
    client.close();
    await server.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return out;
}

export function formatBench(results: readonly MetaBenchResult[]): string {
  const rows = results.map((r) =>
    `| ${r.mode} | ${r.concurrency} | ${r.createsPerSec} | ${r.lookupsPerSec} | ${r.getattrsPerSec} | ${r.p50Ms.create} / ${r.p50Ms.lookup} / ${r.p50Ms.getattr} |`);
  return ['| mode | in flight | creates/s | lookups/s | getattrs/s | p50 ms (create / lookup / getattr) |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

if (require.main === module) {
  const seconds = Number(process.argv[2] ?? 1);
  benchMetaserver({ seconds, modes: ['in-process', 'grpc', 'in-process-written'] }).then(
    (r) => {
      process.stdout.write(`${formatBench(r)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
