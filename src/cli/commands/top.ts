// `kurve top`: a live terminal view of a mount computed from successive scrapes of its /metrics.
import { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('top')
    .description('live view of a Kurve mount: FUSE ops/s and latency per opcode (daemon and kernel), caches, throughput, errors')
    .option('--metrics <addr>', 'the mount\'s metrics endpoint (HOST:PORT or URL)', '127.0.0.1:9567')
    .option('--interval <duration>', 'refresh interval (e.g. 500ms, 1s, 2s)', '1s')
    .option('--once', 'print one frame (two scrapes one interval apart) and exit', false)
    .option('--rows <n>', 'opcodes shown per table', '12')
    .addHelpText('after', `
Rates are increases between two scrapes divided by the time between them; latency percentiles
come from the histogram buckets that changed in that interval (as Prometheus' histogram_quantile).

Examples:
  kurve top                              # the mount started by \`kurve up\` (metrics on 127.0.0.1:9567)
  kurve top --metrics 127.0.0.1:9600 --interval 2s
  kurve top --once                       # one frame, e.g. for scripts`)
    .action(async (opts: { metrics: string; interval: string; once: boolean; rows: string }) => {
      const { parseDuration } = await import('../../common/config');
      const { scrape } = await import('../../top/scrape');
      const { computeFrame } = await import('../../top/frame');
      const { renderFrame } = await import('../../top/render');
      const intervalMs = parseDuration(opts.interval, 's');
      if (!(intervalMs >= 100 && intervalMs <= 3_600_000)) throw new Error(`--interval must be between 100ms and 1h, got "${opts.interval}"`);
      const rows = Number(opts.rows);
      if (!Number.isInteger(rows) || rows < 1) throw new Error(`--rows must be a positive integer, got "${opts.rows}"`);
      const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
      const tty = process.stdout.isTTY && !opts.once;
      let prev = await scrape(opts.metrics);
      let stop = false;
      process.once('SIGINT', () => { stop = true; });
      while (!stop) {
        await sleep(intervalMs);
        if (stop) break;
        let cur;
        try {
          cur = await scrape(opts.metrics);
        } catch (err) {
          if (opts.once) throw err;
          process.stdout.write(`${tty ? '\x1b[H\x1b[2J' : ''}kurve top: ${(err as Error).message} (retrying)\n`);
          continue;
        }
        const frame = computeFrame(prev.scrape, cur.scrape, (cur.at - prev.at) / 1000);
        process.stdout.write((tty ? '\x1b[H\x1b[2J' : '') + renderFrame(frame, opts.metrics, new Date(), rows));
        prev = cur;
        if (opts.once) break;
        if (!tty) process.stdout.write('\n');
      }
    });
}
