// Service benchmarks (issues 2 and 5): metaserver operations in-process and over gRPC (the
// metaserver's own benchMetaserver(), run in a child process so the harness stays idle).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Benchmark, Row, Unavailable } from './harness';

interface MetaBenchResult {
  /** in-process, grpc, and newer modes such as in-process-written (acknowledged before fsync). */
  readonly mode: string;
  readonly concurrency: number;
  readonly createsPerSec: number;
  readonly lookupsPerSec: number;
  readonly getattrsPerSec: number;
  /** Median latency per op (ms); absent in older builds of the metaserver bench. */
  readonly p50Ms?: { readonly create: number; readonly lookup: number; readonly getattr: number };
}

const metaserver: Benchmark = {
  name: 'metaserver',
  description: 'metaserver create/lookup/getattr ops/s on lmdb (durable commits), in-process vs over gRPC, 1 and 32 in flight; in-process with "written" durability',
  async run(env) {
    const mod = path.join(env.distDir, 'src', 'metaserver', 'bench.js');
    if (!fs.existsSync(mod)) throw new Unavailable('src/metaserver/bench.ts is not built');
    const seconds = env.pick(2, 0.5);
    const results = await env.runNode<MetaBenchResult[]>(
      `require(${JSON.stringify(mod)}).benchMetaserver({ seconds: ${seconds}, modes: ['in-process', 'grpc', 'in-process-written'] }).then((r) => { process.stdout.write(JSON.stringify(r)); process.exit(0); }, (e) => { process.stderr.write(String(e)); process.exit(1); });`,
      120_000,
    );
    const rows: Row[] = [];
    for (const conc of [...new Set(results.map((r) => r.concurrency))]) {
      const inProc = results.find((r) => r.mode === 'in-process' && r.concurrency === conc);
      const grpc = results.find((r) => r.mode === 'grpc' && r.concurrency === conc);
      for (const [op, key] of [['create', 'createsPerSec'], ['lookup', 'lookupsPerSec'], ['getattr', 'getattrsPerSec']] as const) {
        rows.push({
          name: `metaserver ${op}, ${conc} in flight: in-process (Kurve) vs gRPC (ref)`,
          unit: 'ops/s',
          higherIsBetter: true,
          kurve: inProc ? { value: inProc[key] } : { unavailable: 'no in-process result' },
          reference: { label: 'gRPC', cell: grpc ? { value: grpc[key] } : { unavailable: 'no gRPC result' } },
          ...(inProc?.p50Ms && grpc?.p50Ms ? { notes: `p50 latency: in-process ${inProc.p50Ms[op].toPrecision(3)} ms, gRPC ${grpc.p50Ms[op].toPrecision(3)} ms` } : {}),
        });
      }
    }
    // Other modes (e.g. in-process-written: lmdb acknowledged once journaled, synced in the
    // background) next to the default durable in-process mode.
    for (const r of results.filter((x) => x.mode !== 'in-process' && x.mode !== 'grpc')) {
      const base = results.find((x) => x.mode === 'in-process' && x.concurrency === r.concurrency);
      for (const [op, key] of [['create', 'createsPerSec'], ['lookup', 'lookupsPerSec'], ['getattr', 'getattrsPerSec']] as const) {
        rows.push({
          name: `metaserver ${op}, ${r.concurrency} in flight: ${r.mode} (Kurve) vs in-process synced (ref)`,
          unit: 'ops/s',
          higherIsBetter: true,
          kurve: { value: r[key] },
          reference: { label: 'synced', cell: base ? { value: base[key] } : { unavailable: 'no in-process result' } },
          ...(r.p50Ms ? { notes: `p50 latency ${r.mode}: ${r.p50Ms[op].toPrecision(3)} ms` } : {}),
        });
      }
    }
    return rows;
  },
};

export const serviceBenchmarks: Benchmark[] = [metaserver];
