// `kurve mount MOUNTPOINT --mds HOST:PORT[,…]`: mount a file system of a distributed Kurve (or of
// another machine's `kurve up`) in the foreground.
import { Command } from 'commander';

interface MountFlags {
  mds?: string;
  fs: string;
  cacheDir?: string;
  cacheSize?: string;
  metrics?: string;
  token?: string;
  entryTimeout?: string;
  attrTimeout?: string;
  allowOther?: boolean;
  passthrough?: boolean;
  bpf?: boolean;
  requireBpf?: boolean;
  config?: string;
  mdsTimeout?: string;
}

export function register(program: Command): void {
  program
    .command('mount')
    .description('mount a Kurve file system served by an MDS, metaservers and datastores (runs in the foreground)')
    .argument('<mountpoint>', 'directory to mount on (created if missing)')
    .option('--mds <addrs>', 'MDS address(es), comma-separated HOST:PORT (also $KURVE_MDS)')
    .option('--fs <name>', 'file system name', 'default')
    .option('--cache-dir <dir>', 'local chunk cache directory (default /var/cache/kurve as root, ~/.cache/kurve otherwise)')
    .option('--cache-size <size>', 'local chunk cache limit, e.g. 10GiB (default 10GiB)')
    .option('--metrics <addr>', 'serve Prometheus /metrics on HOST:PORT (default: none)')
    .option('--token <token>', 'shared token the services require (also $KURVE_TOKEN)')
    .option('--mds-timeout <duration>', 'how long MDS calls (mount, session keepalive) wait through an MDS failover before failing (also $KURVE_MDS_TIMEOUT; default 30s)')
    .option('--entry-timeout <duration>', 'kernel dentry cache timeout while subscribed to changes (default 1h)')
    .option('--attr-timeout <duration>', 'kernel attribute cache timeout while subscribed to changes (default 1h)')
    .option('--allow-other', 'let other users access the mount (allow_other)')
    .option('--no-passthrough', 'never use FUSE passthrough for cached files')
    .option('--no-bpf', 'do not load the eBPF FUSE tracer')
    .option('--require-bpf', 'fail instead of warning when the eBPF FUSE tracer cannot load')
    .option('--config <file>', 'JSON config file (section "client"; also $KURVE_CONFIG)')
    .addHelpText('after', `
Stop with Ctrl-C or SIGTERM (dirty data is uploaded first), or \`kurve umount MOUNTPOINT\` from elsewhere.

Examples:
  kurve mount /mnt/kurve --mds 10.0.0.1:6701,10.0.0.2:6701
  kurve mount /mnt/k2 --mds 127.0.0.1:6700 --metrics 127.0.0.1:9568   # second client of \`kurve up\``)
    .action(async (mountpoint: string, flags: MountFlags) => {
      const { resolveMountOptions } = await import('../../fuse/client-options');
      const { mountRemote } = await import('../../fuse/remote');
      const { runUntilSignal } = await import('./up');
      const { parseDuration } = await import('../../common/config');
      const mds = flags.mds ?? process.env.KURVE_MDS;
      if (!mds) throw new Error('--mds is required (or set KURVE_MDS), e.g. --mds 127.0.0.1:6700');
      const options = resolveMountOptions({
        flags: {
          entryTimeout: flags.entryTimeout, attrTimeout: flags.attrTimeout, cacheDir: flags.cacheDir, cacheSize: flags.cacheSize,
          allowOther: flags.allowOther, passthrough: flags.passthrough === false ? false : undefined, bpf: flags.bpf, requireBpf: flags.requireBpf,
        },
        configFile: flags.config,
      });
      const m = await mountRemote({
        mds, fsName: flags.fs, mountpoint, options, token: flags.token ?? process.env.KURVE_TOKEN, metrics: flags.metrics,
        mdsTimeoutMs: parseDuration(flags.mdsTimeout ?? process.env.KURVE_MDS_TIMEOUT ?? '30s', 's'),
      });
      process.stderr.write(`kurve: "${m.info.fs.name}" mounted on ${m.mount.mountpoint} (mds ${mds}${m.metricsAddress ? `, metrics ${m.metricsAddress}` : ''}); Ctrl-C to stop\n`);
      await runUntilSignal(m);
    });
}
