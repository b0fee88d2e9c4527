// `kurve fs create|list`: manage file systems through the MDS.
import { Command } from 'commander';

interface CommonFlags {
  mds?: string;
  token?: string;
  timeout?: string;
  config?: string;
}

async function withMds<T>(flags: CommonFlags, fn: (c: import('../../mds/client').MdsClient) => Promise<T>): Promise<T> {
  const { resolveOptions, parseDuration } = await import('../../common/config');
  const o = resolveOptions({ mds: '127.0.0.1:6701', token: '', timeout: '5s' }, { flags: { ...flags }, configFile: flags.config });
  const { MdsClient } = await import('../../mds/client');
  const client = new MdsClient(o.mds, { token: o.token || undefined, budgetMs: parseDuration(o.timeout, 's') });
  try {
    return await fn(client);
  } catch (err) {
    // User-facing: the message only (it names the MDS when it could not be reached), no stack.
    const msg = (err as Error).message ?? String(err);
    throw new Error(msg.replace(/^E[A-Z]+: /, ''));
  } finally {
    client.close();
  }
}

function humanSize(n: number): string {
  for (const [unit, f] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (n >= f && n % f === 0) return `${n / f} ${unit}`;
  }
  return `${n} B`;
}

/** The --replicas flag: a whole number 1..max (the MDS checks the range again). */
function parseReplicas(s: string, max: number): number {
  const n = /^\s*\d+\s*$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new Error(`invalid --replicas "${s}": must be an integer from 1 to ${max}`);
  return n;
}

function addCommon(cmd: Command): Command {
  return cmd
    .option('--mds <addrs>', 'MDS address(es), comma-separated (default 127.0.0.1:6701; also $KURVE_MDS)')
    .option('--token <token>', 'shared token (also $KURVE_TOKEN)')
    .option('--timeout <duration>', 'give up after this long if no MDS answers (default 5s)')
    .option('--config <file>', 'JSON config file (also $KURVE_CONFIG)');
}

export function register(program: Command): void {
  const fsCmd = program.command('fs').description('create and list file systems (asks the MDS)');

  addCommon(fsCmd.command('create')
    .description('create a file system; its root directory is made on the metaservers')
    .argument('<name>', "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    .option('--chunk-size <size>', 'data chunk size, a power of two from 64KiB to 64MiB (default 4MiB)')
    .option('--replicas <n>', 'copies of each chunk on distinct datastores, 1 to 5 (default 1); fixed at creation'))
    .option('--json', 'print the new file system as JSON')
    .addHelpText('after', `
Examples:
  kurve fs create photos --mds 127.0.0.1:6701
  kurve fs create scratch --chunk-size 1MiB --mds 10.0.0.2:6701,10.0.0.3:6701 --token s3cret
  kurve fs create important --replicas 2 --mds 127.0.0.1:6701`)
    .action(async (name: string, flags: CommonFlags & { chunkSize?: string; replicas?: string; json?: boolean }) => {
      const { parseSize } = await import('../../common/config');
      const { MAX_REPLICAS } = await import('../../mds/validate');
      const chunkSize = flags.chunkSize ? parseSize(flags.chunkSize) : 0;
      const replicas = flags.replicas === undefined ? 0 : parseReplicas(flags.replicas, MAX_REPLICAS);
      const f = await withMds(flags, (c) => c.createFs(name, chunkSize, replicas));
      process.stdout.write(flags.json
        ? `${JSON.stringify(f)}\n`
        : `created file system "${f.name}" (id ${f.fsId}, chunk size ${humanSize(f.chunkSize)}, replicas ${f.replicas})\n`);
    });

  addCommon(fsCmd.command('list')
    .description('list file systems')
    .option('--json', 'print a JSON array instead of a table'))
    .addHelpText('after', `
Examples:
  kurve fs list --mds 127.0.0.1:6701
  kurve fs list --json | jq '.[].name'`)
    .action(async (flags: CommonFlags & { json?: boolean }) => {
      const list = await withMds(flags, (c) => c.listFs());
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(list)}\n`);
        return;
      }
      const rows = [['ID', 'NAME', 'CHUNK SIZE', 'REPLICAS', 'CREATED'],
        ...list.map((f) => [String(f.fsId), f.name, humanSize(f.chunkSize), String(f.replicas), new Date(f.createdMs).toISOString()])];
      const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
      for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()}\n`);
    });
}
