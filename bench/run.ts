// `npm run bench -- [--filter NAME] [--quick] [--list]`: runs the named benchmarks, prints a
// markdown table with ratios against baselines measured in the same run, saves JSON results.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { BenchEnv } from './env';
import { Benchmark, evaluate, markdownTable, RowResult } from './harness';
import { fsBenchmarks } from './fs-benches';
import { serviceBenchmarks } from './service-benches';
import { kernelBenchmarks } from './kernel-benches';
import { etcdBenchmarks } from './etcd-benches';

export const allBenchmarks: Benchmark[] = [...fsBenchmarks, ...kernelBenchmarks, ...serviceBenchmarks, ...etcdBenchmarks];

/** The repository root (where package.json names kurve), else the working directory. */
function repoRoot(): string {
  for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) {
    const pkg = path.join(d, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kurve') return d;
  }
  return process.cwd();
}

function select(filters: string[]): Benchmark[] {
  if (!filters.length) return allBenchmarks;
  const chosen = allBenchmarks.filter((b) => filters.some((f) => b.name === f || b.name.includes(f)));
  if (!chosen.length) throw new Error(`no benchmark matches ${filters.join(', ')}; known: ${allBenchmarks.map((b) => b.name).join(', ')}`);
  return chosen;
}

async function main(): Promise<void> {
  const program = new Command('bench')
    .description('Kurve benchmarks: ext4 (loop image), the fuse-native baseline and Kurve, side by side in one run')
    .option('--filter <name...>', 'run only benchmarks whose name contains NAME (repeatable)', [])
    .option('--quick', 'smaller sizes and shorter loops (about 2 minutes)', false)
    .option('--list', 'list the benchmarks and exit', false)
    .option('--out <dir>', 'where to save the JSON results (default: bench/results in the repository)')
    .addHelpText('after', '\nExamples:\n  npm run bench\n  npm run bench -- --quick\n  npm run bench -- --filter stat-hot --filter seq-read\n');
  program.parse(process.argv);
  const opts = program.opts<{ filter: string[]; quick: boolean; list: boolean; out?: string }>();
  if (opts.list) {
    for (const b of allBenchmarks) process.stdout.write(`${b.name.padEnd(16)} ${b.description}\n`);
    return;
  }
  const chosen = select(opts.filter);
  const log = (msg: string): void => { process.stderr.write(`${msg}\n`); };
  const env = new BenchEnv(opts.quick, log);
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`bench: ${sig}, cleaning up`);
    env.closeSync();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const started = new Date();
  const loadAtStart = os.loadavg()[0];
  const results: RowResult[] = [];
  try {
    for (const b of chosen) {
      log(`bench: ${b.name} — ${b.description}`);
      const t0 = Date.now();
      try {
        for (const row of await b.run(env)) results.push(evaluate(b.name, row));
      } catch (err) {
        // A benchmark that fails as a whole still gets a row, and the others still run.
        results.push(evaluate(b.name, { name: b.name, unit: '–', higherIsBetter: true, kurve: { error: (err as Error).message.split('\n')[0] } }));
      }
      log(`bench: ${b.name} took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await env.close();
  }
  const host = hostFacts(loadAtStart);
  const table = markdownTable(results);
  process.stdout.write(`\n${table}\n\n${describeHost(host)}\n`);
  const outDir = opts.out ?? path.join(repoRoot(), 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const record = {
    started: started.toISOString(),
    finished: new Date().toISOString(),
    quick: opts.quick,
    host,
    results,
  };
  fs.writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
  process.stdout.write(`results saved to ${path.relative(process.cwd(), file) || file}\n`);
}

/** One sysfs value, or undefined where this kernel or VM has no such file. */
function sysfs(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * What the figures depend on besides Kurve: round-trip rows swing 2-3x with the cost of waking an
 * idle vCPU, which guest halt polling (and the cpuidle driver) decide; load shows a busy machine.
 */
function hostFacts(loadAtStart: number) {
  const driver = sysfs('/sys/devices/system/cpu/cpuidle/current_driver');
  return {
    kernel: os.release(),
    cpus: os.cpus().length,
    node: process.version,
    memoryBytes: os.totalmem(),
    loadAverage: { start: loadAtStart, end: os.loadavg()[0] },
    cpuidleDriver: driver,
    // The governor's parameter only acts under the haltpoll cpuidle driver.
    guestHaltPollNs: driver === 'haltpoll' ? sysfs('/sys/module/haltpoll/parameters/guest_halt_poll_ns') : undefined,
  };
}

function describeHost(h: ReturnType<typeof hostFacts>): string {
  return `host: kernel ${h.kernel}, ${h.cpus} CPUs, node ${h.node}, load ${h.loadAverage.start.toFixed(2)} -> ${h.loadAverage.end.toFixed(2)}, `
    + `cpuidle driver ${h.cpuidleDriver ?? 'none'}, guest halt polling ${h.guestHaltPollNs === undefined ? 'n/a' : `${h.guestHaltPollNs} ns`}`;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
