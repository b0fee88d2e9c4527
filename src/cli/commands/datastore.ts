// `kurve datastore`: a standalone datastore (chunk objects on a local directory) in the foreground.
import { Command } from 'commander';

interface DatastoreFlags {
  listen?: string;
  bulkPort?: string;
  dir?: string;
  mds?: string;
  advertise?: string;
  token?: string;
  metrics?: string;
  config?: string;
}

export function register(program: Command): void {
  program
    .command('datastore')
    .description('run a datastore (immutable CRC32C-checked chunk objects in a local directory) in the foreground')
    .option('--listen <addr>', 'gRPC address (default 127.0.0.1:6703; port 0 = any free port)')
    .option('--bulk-port <port>', 'TCP port (on the --listen host) of the raw chunk transport (default 0 = a free one; -1 = none, gRPC only)')
    .option('--dir <dir>', 'directory holding the chunk objects (required; also $KURVE_DIR)')
    .option('--mds <addrs>', 'MDS address(es), comma-separated: register and heartbeat there (also $KURVE_MDS)')
    .option('--advertise <addr>', 'address to register with the MDS (default: the bound --listen address)')
    .option('--token <token>', 'shared token every RPC must carry, also used towards the MDS (also $KURVE_TOKEN)')
    .option('--metrics <addr>', 'Prometheus /metrics address ("" = none; default 127.0.0.1:9703)')
    .option('--config <file>', 'JSON config file (section "datastore"; also $KURVE_CONFIG)')
    .addHelpText('after', `
Without --mds the datastore runs unregistered (clients must be given its address). Stops
gracefully on SIGTERM or Ctrl-C: in-flight puts and gets finish, exit status 0.

Examples:
  kurve datastore --dir /srv/kurve/chunks --mds 127.0.0.1:6701
  kurve datastore --listen 0.0.0.0:6703 --advertise 10.0.0.5:6703 --dir /data --mds 10.0.0.2:6701,10.0.0.3:6701`)
    .action(async (flags: DatastoreFlags) => {
      const { resolveOptions } = await import('../../common/config');
      const o = resolveOptions(
        { listen: '', bulkPort: '0', dir: '', mds: '', advertise: '', token: '', metrics: '127.0.0.1:9703' },
        { flags: { ...flags }, configFile: flags.config, section: 'datastore' },
      );
      const bulkPort = Number(o.bulkPort);
      if (!Number.isInteger(bulkPort) || bulkPort < -1 || bulkPort > 65535) throw new Error(`--bulk-port: invalid port ${o.bulkPort}`);
      if (!o.dir) throw new Error('kurve datastore needs --dir DIR (or $KURVE_DIR)');
      const { startDatastore, DATASTORE_DEFAULT_LISTEN } = await import('../../datastore/server');
      const { exitOnSignal, quietGrpc } = await import('../../common/service');
      quietGrpc();
      const path = await import('node:path');
      const ds = await startDatastore({
        listen: o.listen || DATASTORE_DEFAULT_LISTEN, dir: path.resolve(o.dir), mds: o.mds || undefined,
        advertise: o.advertise || undefined, token: o.token || undefined, metricsListen: o.metrics || undefined,
        bulkPort,
      });
      exitOnSignal({ name: 'datastore', close: () => ds.close() });
      process.stderr.write(`kurve datastore: listening on ${ds.address}` +
        `${ds.bulk ? ` (bulk port ${ds.bulk.port})` : ''}` +
        `${ds.rpc.metricsAddress ? `, metrics on ${ds.rpc.metricsAddress}` : ''} (dir ${path.resolve(o.dir)}, id ${ds.id}` +
        `${o.mds ? `, MDS ${o.mds}` : ', no MDS'})\n`);
    });
}
