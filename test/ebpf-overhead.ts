// fuse_trace overhead measured in ONE process on ONE mount (bench/trace-inprocess.ts): a MemFs mount (attr timeout 0) served
// by this process, load from child processes (a C stat loop -> GETATTR round trips; a C O_DIRECT
// reader -> daemon-served 1 MiB reads), alternating short rounds with the tracer attached
// (FuseTracer.open + addConnection) and detached (close). Reports medians and the median of the
// per-pair ratios, so slow drifts of the machine cancel out (separate processes/data dirs do not).
//   (from the repo root) npx tsc -p tsconfig.json --outDir /tmp/kurve-ovh; KURVE_BPF_OBJ_DIR=bpf sudo -E node /tmp/kurve-ovh/test/ebpf-overhead.js \
//     [--rounds 12] [--seconds 1] [--client-cpu N] [--object path/to/other.bpf.o ...]
// Scheduling dominates the noise on a 2-core machine (client and daemon on one CPU or on two give
// round trip rates 2x apart): pin the daemon with `taskset -c 1 node …` and the load with
// --client-cpu (the same CPU or another) to get one mode at a time.
// Each --object adds a variant (a separate tracer object) measured in the same alternation.
import * as path from 'node:path';
import { measureTraceOverhead, type Load } from '../bench/trace-inprocess';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '12'));
  const seconds = Number(arg('--seconds', '1'));
  const objects = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--object' ? [path.resolve(a)] : []));
  const clientCpu = arg('--client-cpu', '');
  const results = await measureTraceOverhead({ rounds, seconds, objects, clientCpu: clientCpu || undefined, progress: (l) => process.stderr.write(`${l}\n`) });
  const base = results.get('none')!;
  for (const [name, res] of results) {
    for (const load of ['getattr', 'read'] as Load[]) {
      const ratios = res[load].map((x, i) => x / base[load][i]);
      const unit = load === 'getattr' ? 'GETATTR/s' : 'GB/s';
      const fmt = (x: number) => (load === 'getattr' ? x.toFixed(0) : x.toFixed(3));
      console.log(
        `${name.padEnd(24)} ${load.padEnd(8)} median ${fmt(median(res[load]))} ${unit}` +
          (name === 'none' ? '' : `  median ratio vs none ${median(ratios).toFixed(3)}`) +
          `  rounds: ${res[load].map(fmt).join(' ')}`,
      );
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
