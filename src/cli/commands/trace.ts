// `kurve trace`: ad-hoc kernel tracing recipes (bpftrace) for the FUSE path and TCP, shown as
// tables and histograms or printed as JSON.
import { Command } from 'commander';
import type { RecipeResult } from '../../ebpf/trace-recipes';

function renderResult(r: RecipeResult): string {
  if (r.kind === 'table') {
    if (r.rows.length === 0) return '(no events)\n';
    const cells = r.rows.map((row) => row.map(String));
    const w = r.columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
    const line = (row: string[]) => row.map((c, i) => (typeof r.rows[0][i] === 'number' ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ').trimEnd();
    return [line(r.columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
  }
  if (r.rows.length === 0) return '(no events)\n';
  let out = '';
  for (const row of r.rows) {
    out += `${r.keyNames.map((k, i) => `${k}=${row.key[i] ?? ''}`).join(' ')}  (${row.count} events, ${r.unit})\n`;
    const max = Math.max(...row.buckets.map((b) => b.count));
    for (const b of row.buckets) {
      const range = b.min === b.max ? `${b.min}` : `${b.min}, ${b.max + 1})`;
      const bar = '@'.repeat(max ? Math.round((b.count / max) * 40) : 0);
      out += `  [${range.padEnd(22)} ${String(b.count).padStart(8)} |${bar.padEnd(40)}|\n`;
    }
    out += '\n';
  }
  return out;
}

export function register(program: Command): void {
  program
    .command('trace')
    .description('run a kernel tracing recipe (bpftrace) on the FUSE path or TCP; `kurve trace list` shows them')
    .argument('[recipe]', 'recipe name (see `kurve trace list`)')
    .option('--duration <duration>', 'how long to trace (Ctrl-C ends early and still prints)', '10s')
    .option('--mount <path>', 'only this Kurve mount (default: every FUSE mount)')
    .option('--threshold <duration>', 'slow-fuse-requests: report requests slower than this', '10ms')
    .option('--json', 'print the parsed result as JSON', false)
    .addHelpText('after', `
Needs root and bpftrace. Each recipe is a small bpftrace program run with \`bpftrace -f json\`;
its maps are parsed and shown as tables or latency histograms (µs, log2 buckets).

Examples:
  kurve trace list
  kurve trace fuse-latency --mount /mnt/kurve --duration 5s
  kurve trace slow-fuse-requests --threshold 50ms
  kurve trace tcp-retransmits --json
  kurve trace syscall-latency --mount /mnt/kurve`)
    .action(async (name: string | undefined, o: { duration: string; mount?: string; threshold: string; json: boolean }) => {
      const { RECIPES, recipe } = await import('../../ebpf/trace-recipes');
      if (name === undefined || name === 'list') {
        const w = Math.max(...RECIPES.map((r) => r.name.length));
        process.stdout.write(RECIPES.map((r) => `${r.name.padEnd(w)}  ${r.description}`).join('\n') + '\n');
        return;
      }
      const r = recipe(name);
      const { parseDuration } = await import('../../common/config');
      const durationMs = parseDuration(o.duration, 's');
      if (!(durationMs >= 100 && durationMs <= 86_400_000)) throw new Error(`--duration must be between 100ms and 24h, got "${o.duration}"`);
      const thresholdMs = parseDuration(o.threshold, 'ms');
      const { runBpftrace, whyNoBpftrace } = await import('../../ebpf/bpftrace');
      const why = whyNoBpftrace();
      if (why) throw new Error(why);
      // bpftrace reads tracepoint formats from tracefs; some systems boot without it mounted.
      const { ensureTracefs } = await import('../../ebpf/features');
      ensureTracefs();
      let connection: number | undefined;
      if (o.mount) {
        const { connectionIdOf } = await import('../../ebpf/fuse-tracer');
        const { mounts } = await import('../../ebpf/features');
        const fs = await import('node:fs');
        let real: string;
        try {
          real = fs.realpathSync(o.mount);
        } catch (err) {
          throw new Error(`--mount ${o.mount}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (err as Error).message}`);
        }
        const m = mounts().filter((x) => x.target === real).pop();
        if (!m || !m.fstype.startsWith('fuse')) throw new Error(`--mount ${o.mount} is not a FUSE mount point${m ? ` (it is ${m.fstype})` : ''}`);
        connection = connectionIdOf(real);
      }
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.on('SIGINT', onSigint);
      if (!o.json) process.stderr.write(`tracing ${r.name} for ${o.duration} (Ctrl-C to stop early)…\n`);
      try {
        const run = await runBpftrace(r.program({ connection, mount: o.mount, thresholdMs }), { durationMs, signal: ac.signal });
        if (run.exitCode !== 0 && !run.aborted && run.events.length === 0) {
          throw new Error(`bpftrace failed (exit ${run.exitCode}): ${run.errors.join('\n') || 'no output'}`);
        }
        const result = r.result(run.events);
        process.stdout.write(o.json ? JSON.stringify({ recipe: r.name, connection, result }, null, 2) + '\n' : renderResult(result));
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
