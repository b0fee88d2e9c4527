// `kurve up MOUNTPOINT`: the all-in-one Kurve (MDS + metaserver + datastore in this process),
// mounted in the foreground until SIGINT/SIGTERM or an external umount.
import { Command } from 'commander';

interface UpFlags {
  data?: string;
  listen?: string;
  bulkPort?: string;
  metrics?: string;
  fs?: string;
  chunkSize?: string;
  entryTimeout?: string;
  attrTimeout?: string;
  cacheDir?: string;
  cacheSize?: string;
  allowOther?: boolean;
  passthrough?: boolean;
  bpf?: boolean;
  requireBpf?: boolean;
  config?: string;
  token?: string;
  unlinkGrace?: string;
  strayGrace?: string;
}

export function register(program: Command): void {
  program
    .command('up')
    .description('run an all-in-one Kurve (MDS, metaserver, datastore in one process) and mount it in the foreground')
    .argument('<mountpoint>', 'directory to mount on (created if missing)')
    .option('--data <dir>', 'where metadata and chunks live (default: /var/lib/kurve as root, ~/.kurve otherwise)')
    .option('--listen <addr>', 'gRPC address other clients use with `kurve mount --mds` ("" = none)', '127.0.0.1:6700')
    .option('--bulk-port <port>', 'TCP port (on the --listen host) of the raw chunk transport for other clients (default 0 = a free one; -1 = none, gRPC only)')
    .option('--metrics <addr>', 'Prometheus /metrics address ("" = none)', '127.0.0.1:9567')
    .option('--fs <name>', 'file system to mount (created on first start)', 'default')
    .option('--chunk-size <size>', 'chunk size of a file system created now, e.g. 4MiB (default 4MiB)')
    .option('--entry-timeout <duration>', 'kernel dentry cache timeout while subscribed to changes (default 1h)')
    .option('--attr-timeout <duration>', 'kernel attribute cache timeout while subscribed to changes (default 1h)')
    .option('--cache-dir <dir>', 'local chunk cache directory (default <data>/cache)')
    .option('--cache-size <size>', 'local chunk cache limit, e.g. 10GiB (default 10GiB)')
    .option('--allow-other', 'let other users access the mount (allow_other)')
    .option('--no-passthrough', 'never use FUSE passthrough for cached files')
    .option('--no-bpf', 'do not load the eBPF FUSE tracer')
    .option('--require-bpf', 'fail instead of warning when the eBPF FUSE tracer cannot load')
    .option('--config <file>', 'JSON config file (section "client" for mount options; also $KURVE_CONFIG)')
    .option('--token <token>', 'shared token gRPC clients must present (also $KURVE_TOKEN)')
    .option('--unlink-grace <duration>', 'an unlinked file no client had registered open is purged after this (default 10s)')
    .option('--stray-grace <duration>', 'uploaded chunk objects no file references (a client died before committing) are deleted once older than this (default 24h)')
    .addHelpText('after', `
Options also come from KURVE_* environment variables (e.g. KURVE_ENTRY_TIMEOUT=10m) and the config
file; flags win over env, env over the file. Stop with Ctrl-C (or SIGTERM): dirty data is uploaded,
the file system unmounted. Restarting on the same --data shows the same files.

Examples:
  kurve up /mnt/kurve
  kurve up /mnt/kurve --data /srv/kurve --cache-size 50GiB
  kurve up /tmp/k --listen 127.0.0.1:0 --metrics 127.0.0.1:0 --no-bpf   # free ports, no tracing
  kurve mount /mnt/other --mds 127.0.0.1:6700                            # a second client of it`)
    .action(async (mountpoint: string, flags: UpFlags) => {
      const { startEmbedded, defaultDataDir } = await import('../../embedded/embedded');
      const { resolveMountOptions } = await import('../../fuse/client-options');
      const { parseDuration, parseSize } = await import('../../common/config');
      const path = await import('node:path');
      const dataDir = path.resolve(flags.data ?? process.env.KURVE_DATA ?? defaultDataDir());
      const client = resolveMountOptions(
        {
          flags: {
            entryTimeout: flags.entryTimeout, attrTimeout: flags.attrTimeout, cacheDir: flags.cacheDir, cacheSize: flags.cacheSize,
            allowOther: flags.allowOther, passthrough: flags.passthrough === false ? false : undefined, bpf: flags.bpf, requireBpf: flags.requireBpf,
          },
          configFile: flags.config,
        },
        {
          ...(flags.cacheDir || process.env.KURVE_CACHE_DIR ? {} : { cacheDir: path.join(dataDir, 'cache') }),
          // The datastore shares the disk: early uploads measured no gain (see ClientOptions.earlyUploads).
          ...(process.env.KURVE_EARLY_UPLOADS ? {} : { earlyUploads: 0 }),
        },
      );
      const k = await startEmbedded({
        dataDir, mountpoint, listen: flags.listen, metrics: flags.metrics, fsName: flags.fs, client,
        chunkSize: flags.chunkSize ? parseSize(flags.chunkSize) : undefined,
        token: flags.token ?? process.env.KURVE_TOKEN,
        bulkPort: flags.bulkPort !== undefined ? parsePort(flags.bulkPort) : undefined,
        namespace: {
          ...(flags.unlinkGrace ? { unlinkGraceMs: parseDuration(flags.unlinkGrace) } : {}),
          ...(flags.strayGrace ? { strayGraceMs: parseDuration(flags.strayGrace) } : {}),
        },
      });
      process.stderr.write(
        `kurve: "${k.fs.name}" mounted on ${k.mount?.mountpoint} (data ${dataDir}` +
        `${k.rpcAddress ? `, gRPC ${k.rpcAddress}` : ''}${k.metricsAddress ? `, metrics ${k.metricsAddress}` : ''}` +
        `${k.mount?.bpfUnavailable ? '' : ', eBPF tracing on'}); Ctrl-C to stop\n`,
      );
      await runUntilSignal(k);
    });
}

/** Waits for SIGINT/SIGTERM (then closes) or for the mount to end by itself; then exits. */
export async function runUntilSignal(target: { close(): Promise<void>; readonly closed: Promise<void> }): Promise<never> {
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`kurve: second ${sig}, exiting now\n`);
      process.exit(130);
    }
    process.stderr.write(`kurve: ${sig}, unmounting\n`);
    const force = setTimeout(() => {
      process.stderr.write('kurve: shutdown took more than 15 s, exiting\n');
      process.exit(1);
    }, 15_000);
    force.unref();
    target.close().catch((err: unknown) => process.stderr.write(`kurve: shutdown: ${(err as Error).message}\n`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await target.closed;
  process.exit(0);
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < -1 || n > 65535) throw new Error(`--bulk-port: invalid port ${v}`);
  return n;
}
