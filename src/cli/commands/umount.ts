// `kurve umount MOUNTPOINT`: detach a Kurve mount; its daemon sees the session end and exits.
import { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('umount')
    .alias('unmount')
    .description('unmount a Kurve mount (lazy detach: busy files keep working until closed; the daemon then exits)')
    .argument('<mountpoint>', 'the mount point')
    .addHelpText('after', `
Also recovers a mount whose daemon died (kill -9): "Transport endpoint is not connected" goes away.

Examples:
  kurve umount /mnt/kurve`)
    .action(async (mountpoint: string) => {
      const fs = await import('node:fs');
      const path = await import('node:path');
      const { unmountPath } = await import('../../fuse/protocol/mount');
      const target = path.resolve(mountpoint);
      const mounted = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((line) => {
        const f = line.split(' ');
        const sep = f.indexOf('-');
        return f[4] === target && f[sep + 1]?.startsWith('fuse');
      });
      if (!mounted) throw new Error(`${target} is not a FUSE mount`);
      unmountPath(target);
      process.stderr.write(`kurve: unmounted ${target}\n`);
    });
}
