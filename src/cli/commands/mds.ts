// `kurve mds`: a standalone MDS (cluster manager) in the foreground until SIGTERM/SIGINT.
import { Command } from 'commander';

interface MdsFlags {
  listen?: string;
  data?: string;
  token?: string;
  metrics?: string;
  lease?: string;
  heartbeat?: string;
  config?: string;
  etcd?: string;
  cluster?: string;
  electionTtl?: string;
}

export function register(program: Command): void {
  program
    .command('mds')
    .description('run the MDS (cluster manager: file systems, topology, client sessions) in the foreground')
    .option('--listen <addr>', 'gRPC address (default 127.0.0.1:6701; port 0 = any free port)')
    .option('--data <dir>', 'directory for the MDS database (required; also $KURVE_DATA)')
    .option('--token <token>', 'shared token every RPC must carry (also $KURVE_TOKEN; default: none)')
    .option('--metrics <addr>', 'Prometheus /metrics address ("" = none; default 127.0.0.1:9701)')
    .option('--lease <duration>', 'client session lease: mounts that do not renew within it expire (default 20s)')
    .option('--heartbeat <duration>', 'heartbeat period expected from servers; 3 missed = unhealthy (default 2s)')
    .option('--config <file>', 'JSON config file (section "mds"; also $KURVE_CONFIG)')
    .option('--etcd <endpoints>', 'HA: keep state in etcd (HOST:PORT,...) and elect one leader among the replicas (default: embedded lmdb, always leader)')
    .option('--cluster <name>', 'with --etcd: cluster name, the etcd key prefix kurve/<name>/ (default "default")')
    .option('--election-ttl <duration>', 'with --etcd: leader lease; a crashed leader is replaced within ~1-2x this (whole seconds, default 5s)')
    .addHelpText('after', `
Flags win over KURVE_* environment variables, which win over the config file. Stops gracefully on
SIGTERM or Ctrl-C: in-flight calls finish, the database is closed, exit status 0.

Examples:
  kurve mds --data /var/lib/kurve/mds
  kurve mds --listen 0.0.0.0:6701 --data /srv/mds --token s3cret --metrics 127.0.0.1:9701
  KURVE_TOKEN=s3cret kurve mds --data ./mds --lease 30s
  kurve mds --data ./mds1 --listen 127.0.0.1:6701 --etcd 127.0.0.1:2379 --election-ttl 2s   (one of several replicas)`)
    .action(async (flags: MdsFlags) => {
      const { resolveOptions, parseDuration } = await import('../../common/config');
      const o = resolveOptions(
        { listen: '', data: '', token: '', metrics: '127.0.0.1:9701', lease: '20s', heartbeat: '2s', etcd: '', cluster: 'default', electionTtl: '5s' },
        { flags: { ...flags }, configFile: flags.config, section: 'mds' },
      );
      if (!o.data) throw new Error('kurve mds needs --data DIR (or $KURVE_DATA)');
      const leaseMs = parseDuration(o.lease, 's');
      const heartbeatMs = parseDuration(o.heartbeat, 's');
      const { startMds, MDS_DEFAULT_LISTEN } = await import('../../mds/server');
      const { exitOnSignal, quietGrpc } = await import('../../common/service');
      quietGrpc();
      const path = await import('node:path');
      const common = {
        listen: o.listen || MDS_DEFAULT_LISTEN, dataDir: path.resolve(o.data), token: o.token || undefined,
        metricsListen: o.metrics || undefined, leaseMs, heartbeatMs,
      };
      const electionTtlSec = Math.round(parseDuration(o.electionTtl, 's') / 1000);
      if (o.etcd && electionTtlSec < 1) throw new Error(`--election-ttl must be at least 1s (got ${o.electionTtl})`);
      const server = o.etcd
        ? await (await import('../../mds/etcd-mds')).startEtcdMds({ ...common, etcd: o.etcd, cluster: o.cluster, electionTtlSec })
        : await startMds(common);
      exitOnSignal({ name: 'mds', close: () => server.close() });
      process.stderr.write(`kurve mds: listening on ${server.address}` +
        `${server.rpc.metricsAddress ? `, metrics on ${server.rpc.metricsAddress}` : ''} (data ${path.resolve(o.data)})\n`);
    });
}
