// `kurve dev cluster`: a complete distributed Kurve on loopback (3-member etcd, 3 MDS, 2
// metaservers on etcd, 2 datastores, file system "default") in the foreground until Ctrl-C.
import { Command } from 'commander';

interface ClusterFlags {
  dir?: string;
  basePort?: string;
  electionTtl?: string;
  lease?: string;
  fs?: string;
}

export function register(program: Command): void {
  const dev = program.command('dev').description('developer tools: local clusters for demos and tests');
  dev
    .command('cluster')
    .description('run a local distributed cluster on loopback (etcd, 3 MDS, 2 metaservers, 2 datastores) until Ctrl-C')
    .option('--dir <dir>', 'keep data and logs here (reused on the next start); default: a temp dir removed on exit')
    .option('--base-port <port>', 'port layout base: MDS base+1..3, metaservers base+11.., datastores base+21.., etcd base+31.., metrics base+41..', '6700')
    .option('--election-ttl <duration>', 'MDS leader lease (whole seconds)', '5s')
    .option('--lease <duration>', 'client session lease (default: the MDS default, 20s)')
    .option('--fs <name>', 'file system to create', 'default')
    .addHelpText('after', `
Needs etcd (Debian: etcd-server) and a built CLI. Prints every address, then runs until SIGINT or
SIGTERM, when it stops every process (MDS replicas resign and revoke their leases) and etcd.

Examples:
  kurve dev cluster
  kurve dev cluster --dir /tmp/kurve-dev --base-port 7700
  kurve mount /mnt/kurve --mds 127.0.0.1:6701,127.0.0.1:6702,127.0.0.1:6703   (in another shell)`)
    .action(async (flags: ClusterFlags) => {
      const { parseDuration } = await import('../../common/config');
      const { startDevCluster } = await import('../../dev/cluster');
      const basePort = Number(flags.basePort ?? '6700');
      if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65000) throw new Error(`--base-port must be 1024..65000, got ${flags.basePort}`);
      const ttl = Math.round(parseDuration(flags.electionTtl ?? '5s', 's') / 1000);
      if (ttl < 1) throw new Error('--election-ttl must be at least 1s');
      const say = (l: string) => process.stderr.write(`kurve dev: ${l}\n`);
      // Ctrl-C while starting: startDevCluster stops what it started, then this rejects.
      const starting = new AbortController();
      const onEarlySignal = () => {
        if (starting.signal.aborted) say('still stopping what was started…');
        starting.abort();
      };
      process.on('SIGINT', onEarlySignal);
      process.on('SIGTERM', onEarlySignal);
      const cluster = await startDevCluster({
        dir: flags.dir, basePort, electionTtlSec: ttl, fsName: flags.fs,
        sessionLeaseMs: flags.lease ? parseDuration(flags.lease, 's') : undefined, log: say, signal: starting.signal,
      });
      process.off('SIGINT', onEarlySignal);
      process.off('SIGTERM', onEarlySignal);
      const out: string[] = [`dir          ${cluster.dir}`, `etcd         ${cluster.etcd.endpointList}`];
      for (const s of cluster.services) out.push(`${s.kind.padEnd(11)}  ${s.address}  metrics ${s.metrics}  log ${s.logFile}`);
      out.push(`file system  ${cluster.fsName}`);
      out.push(`mount with   kurve mount MOUNTPOINT --mds ${cluster.mdsList}`);
      out.push(`status       kurve status --mds ${cluster.mdsList}`);
      process.stdout.write(`${out.join('\n')}\nkurve dev cluster ready; Ctrl-C to stop\n`);
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) return;
        stopping = true;
        say(`${sig}: stopping`);
        cluster.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            say(`stop failed: ${(err as Error).message}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
}
