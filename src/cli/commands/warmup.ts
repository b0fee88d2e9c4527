// `kurve warmup PATH…`: prefetch files into the mount's local chunk cache, so later reads are
// local (and passthrough). It asks the mount itself through the `user.kurve.warmup` xattr (as
// CurveFS's warmup), then follows the progress the mount reports through the same xattr.
import { Command } from 'commander';

const XATTR = 'user.kurve.warmup';

interface Progress {
  state: string;
  filesDone: number;
  files: number;
  bytesDone: number;
  bytes: number;
  error?: string;
}

export function parseProgress(s: string): Progress {
  const m = /^(\w+) (\d+)\/(\d+) (\d+)\/(\d+)(?: (.*))?$/.exec(s.trim());
  if (!m) throw new Error(`unexpected warmup status "${s}"`);
  return { state: m[1], filesDone: Number(m[2]), files: Number(m[3]), bytesDone: Number(m[4]), bytes: Number(m[5]), error: m[6] };
}

export function register(program: Command): void {
  program
    .command('warmup')
    .description('prefetch files into the local chunk cache of the Kurve mount they are on (progress bar on a TTY)')
    .argument('<paths...>', 'files (or, with --recursive, directories) inside a Kurve mount')
    .option('-r, --recursive', 'warm up every file below each directory given')
    .option('--no-wait', 'start the warmup and return at once (the mount keeps fetching)')
    .addHelpText('after', `
From inside the mount, without this command (e.g. on a host without the kurve CLI):
  setfattr -n ${XATTR} -v 1 PATH      # start (a directory: everything below it)
  getfattr -n ${XATTR} PATH           # "<state> <files done>/<files> <bytes done>/<bytes>"
Setting a user.* xattr needs write permission on the file; reading the status needs none.

Examples:
  kurve warmup /mnt/kurve/dataset/train.bin
  kurve warmup -r /mnt/kurve/models`)
    .action(async (paths: string[], flags: { recursive?: boolean; wait: boolean }) => {
      const fs = await import('node:fs');
      const koffi = (await import('koffi')).default;
      const libc = koffi.load('libc.so.6');
      const setxattr = libc.func('int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)') as
        (p: string, n: string, v: Buffer, s: number, f: number) => number;
      const getxattr = libc.func('intptr_t getxattr(const char *path, const char *name, _Out_ void *value, size_t size)') as
        (p: string, n: string, v: Buffer, s: number) => number;
      const errnoText = (): string => {
        const e = koffi.errno();
        return e === 95 || e === 61 ? 'not on a Kurve mount (no warmup xattr)' : `errno ${e}`;
      };
      const status = (p: string): Progress => {
        const buf = Buffer.alloc(512);
        const n = getxattr(p, XATTR, buf, buf.length);
        if (n < 0) throw new Error(`${p}: cannot read warmup status: ${errnoText()}`);
        return parseProgress(buf.toString('utf8', 0, n));
      };
      for (const p of paths) {
        const st = fs.statSync(p);
        if (st.isDirectory() && !flags.recursive) throw new Error(`${p} is a directory (use --recursive)`);
        if (setxattr(p, XATTR, Buffer.from('1'), 1, 0) < 0) throw new Error(`${p}: cannot start warmup: ${errnoText()}`);
      }
      if (!flags.wait) {
        process.stderr.write(`kurve: warmup started for ${paths.length} path(s)\n`);
        return;
      }
      const tty = process.stderr.isTTY;
      const { SingleBar, Presets } = await import('cli-progress');
      const sum = (): Progress => {
        const all = paths.map(status);
        const failed = all.find((s) => s.state === 'failed');
        return {
          state: failed ? 'failed' : all.every((s) => s.state === 'done') ? 'done' : 'running',
          filesDone: all.reduce((a, s) => a + s.filesDone, 0), files: all.reduce((a, s) => a + s.files, 0),
          bytesDone: all.reduce((a, s) => a + s.bytesDone, 0), bytes: all.reduce((a, s) => a + s.bytes, 0),
          error: failed?.error,
        };
      };
      const mib = (b: number): string => (b / 1048576).toFixed(1);
      const t0 = Date.now();
      const bar = tty
        ? new SingleBar({ format: 'warmup [{bar}] {percentage}% | {files} files | {done}/{total} MiB | {rate} MiB/s | ETA {eta_formatted}', etaBuffer: 20 }, Presets.shades_classic)
        : undefined;
      let s = sum();
      bar?.start(Math.max(1, s.bytes), 0, { files: '0/0', done: '0', total: mib(s.bytes), rate: '0' });
      let lastLine = 0;
      for (;;) {
        s = sum();
        const rate = mib(s.bytesDone / Math.max(0.001, (Date.now() - t0) / 1000));
        if (bar) {
          bar.setTotal(Math.max(1, s.bytes));
          bar.update(s.bytesDone, { files: `${s.filesDone}/${s.files}`, done: mib(s.bytesDone), total: mib(s.bytes), rate });
        } else if (Date.now() - lastLine >= 1000 || s.state !== 'running') {
          lastLine = Date.now();
          process.stdout.write(`warmup ${s.state}: ${s.filesDone}/${s.files} files, ${mib(s.bytesDone)}/${mib(s.bytes)} MiB, ${rate} MiB/s\n`);
        }
        if (s.state !== 'running') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      bar?.stop();
      if (s.state === 'failed') throw new Error(`warmup failed: ${s.error ?? 'unknown error'}`);
    });
}
