// `kurve status`: the cluster at a glance (leader, MDS replicas, metaservers, datastores, file
// systems, sessions, health), as text or --json. Exit status 0 when healthy, 1 when degraded.
import { Command } from 'commander';

interface StatusFlags {
  mds?: string;
  json?: boolean;
  token?: string;
  timeout?: string;
}

export function register(program: Command): void {
  program
    .command('status')
    .description('show the cluster at a glance: MDS leader and replicas, metaservers, datastores, file systems, sessions, health')
    .option('--mds <addrs>', 'MDS replica addresses, comma-separated HOST:PORT (also $KURVE_MDS; default 127.0.0.1:6701)')
    .option('--json', 'print JSON instead of text (includes leader: {addr, pid})')
    .option('--token <token>', 'shared token the services require (also $KURVE_TOKEN)')
    .option('--timeout <duration>', 'how long to wait for each replica', '2s')
    .addHelpText('after', `
Every given replica is asked directly (role, pid, uptime); the leader is then asked for the
topology, file systems and sessions. Exit status: 0 healthy, 1 degraded or no leader.

Examples:
  kurve status --mds 127.0.0.1:6701,127.0.0.1:6702,127.0.0.1:6703
  kurve status --mds 127.0.0.1:6701 --json | jq .leader`)
    .action(async (flags: StatusFlags) => {
      const { parseDuration } = await import('../../common/config');
      const { clusterStatus, formatStatus } = await import('../../dev/status');
      const { quietGrpc } = await import('../../common/service');
      quietGrpc();
      const mds = (flags.mds ?? process.env.KURVE_MDS ?? '127.0.0.1:6701').split(',').map((s) => s.trim()).filter(Boolean);
      if (mds.length === 0) throw new Error('--mds needs at least one HOST:PORT');
      const st = await clusterStatus(mds, { token: flags.token ?? process.env.KURVE_TOKEN, timeoutMs: parseDuration(flags.timeout ?? '2s') });
      process.stdout.write(flags.json ? `${JSON.stringify(st, null, 2)}\n` : formatStatus(st));
      process.exitCode = st.health.ok ? 0 : 1;
    });
}
