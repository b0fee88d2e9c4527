// `kurve fsck`: check (and optionally repair) a metaserver's lmdb store offline.
import { Command } from 'commander';

interface FsckFlags {
  data: string;
  repair?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('fsck')
    .description("check a stopped metaserver's namespace for consistency (dangling entries, link counts, orphans, chunk maps)")
    .requiredOption('--data <dir>', 'the metaserver --data directory (or the --data of `kurve up`, whose store is <dir>/meta)')
    .option('--repair', 'fix what has one obvious fix (drop dangling entries, correct link counts, purge unreachable inodes)')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', `
Run it only while no metaserver uses the directory. Exit status: 0 clean (or all repaired), 1 issues
remain, 2 the store could not be opened.

Examples:
  kurve fsck --data /var/lib/kurve/meta
  kurve fsck --data /var/lib/kurve --repair`)
    .action(async (flags: FsckFlags) => {
      const fs = await import('node:fs');
      const path = await import('node:path');
      const { LmdbEngine } = await import('../../metaserver/engines/lmdb');
      const { fsck, formatReport } = await import('../../metaserver/fsck');
      let dir = path.resolve(flags.data);
      if (!fs.existsSync(path.join(dir, 'data.mdb')) && fs.existsSync(path.join(dir, 'meta', 'data.mdb'))) dir = path.join(dir, 'meta');
      if (!fs.existsSync(path.join(dir, 'data.mdb'))) {
        process.stderr.write(`kurve fsck: no metaserver store in ${dir} (expected data.mdb)\n`);
        process.exit(2);
      }
      let engine: InstanceType<typeof LmdbEngine>;
      try {
        engine = new LmdbEngine({ path: dir });
      } catch (err) {
        process.stderr.write(`kurve fsck: ${(err as Error).message}\n`);
        process.exit(2);
      }
      try {
        const report = await fsck(engine, { repair: flags.repair });
        process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
        process.exitCode = report.issues.some((i) => !i.repaired) ? 1 : 0;
      } finally {
        await engine.close();
      }
    });
}
