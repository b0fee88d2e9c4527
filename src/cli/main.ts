#!/usr/bin/env node
// kurve: one binary, one file per command under src/cli/commands (each exports `register`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';

export interface CommandModule {
  register(program: Command): void;
}

/** Long-running services: their stdout is their log. Every other command prints results there. */
const SERVICES = new Set(['up', 'mount', 'mds', 'metaserver', 'datastore', 'dev']);

function main(): void {
  // Before any command module is loaded: modules create their loggers when required.
  if (!SERVICES.has(process.argv[2] ?? '')) process.env.KURVE_LOG_STDERR ??= '1';
  // libuv's threadpool (4 threads by default) carries the FUSE notifications, which the kernel may
  // hold until a request is answered, and the datastore's fsyncs, which wait for the disk: a few
  // of either must not stall the other or async file I/O. Read once, at the pool's first use.
  process.env.UV_THREADPOOL_SIZE ??= '16';
  const program = new Command('kurve')
    .description('Kurve: a distributed file system with a kernel-accelerated FUSE client')
    .version(require('../../../package.json').version as string)
    .showHelpAfterError('(run with --help for usage)');
  const dir = path.join(__dirname, 'commands');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.js')).sort() : [];
  for (const f of files) {
    const mod = require(path.join(dir, f)) as Partial<CommandModule>;
    if (typeof mod.register === 'function') mod.register(program);
  }
  program.parseAsync(process.argv).catch((err: unknown) => {
    process.stderr.write(`kurve: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  });
}

main();
