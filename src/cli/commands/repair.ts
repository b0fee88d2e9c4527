// `kurve repair`: one re-replication pass now, run by a metaserver the MDS lists, and its summary.
import { Command } from 'commander';

interface RepairFlags {
  fs?: string;
  mds?: string;
  token?: string;
  timeout?: string;
  json?: boolean;
  config?: string;
}

export function register(program: Command): void {
  program
    .command('repair')
    .description('put missing copies of replicated chunks back now: one re-replication pass, run by a metaserver')
    .option('--fs <name>', 'only this file system (default: every file system with --replicas 2 or more)')
    .option('--mds <addrs>', 'MDS address(es), comma-separated (default 127.0.0.1:6701; also $KURVE_MDS)')
    .option('--token <token>', 'shared token (also $KURVE_TOKEN)')
    .option('--timeout <duration>', 'give up on the pass after this long (default 30m)')
    .option('--json', 'print the summary as JSON')
    .option('--config <file>', 'JSON config file (also $KURVE_CONFIG)')
    .addHelpText('after', `
A file system created with --replicas N keeps each chunk object on N datastores: the first N live
ones in the rendezvous order clients write in. After a datastore is lost (or an object vanished, or
a write found too few datastores answering) some objects have fewer copies. Metaservers started
with --mds put them back in the background every --repair-interval (default 60s); this command
asks one metaserver for a pass now and waits for it.

A pass reads the chunk maps (only chunks that files still reference), lists each live datastore,
and copies every object a target datastore lacks from one that has it (a few at a time), reading
each copy back to check its CRC32C. Chunks of files deleted or overwritten meanwhile are not
copied (or the copy is taken back). It does not scrub: a copy that is present but corrupt is found
by a read. It does not remove surplus copies (e.g. on a datastore that came back). Datastores
the MDS reports down (or that do not answer) count as having nothing.

Prints: objects checked, under-replicated (fewer than N copies on their targets), copies made,
copies failed, and lost (referenced objects on no live datastore; each is named: fs/ino/chunk).

Exit status: 0 all copies in place; 1 some copies failed (try again); 2 some objects are lost
(a down datastore may still hold them: bring it back, then run this again).

Examples:
  kurve repair --mds 127.0.0.1:6701
  kurve repair --fs photos --mds 10.0.0.1:6701,10.0.0.2:6701 --json`)
    .action(async (flags: RepairFlags) => {
      const { resolveOptions, parseDuration } = await import('../../common/config');
      const o = resolveOptions({ mds: '127.0.0.1:6701', token: '', timeout: '30m' }, { flags: { ...flags }, configFile: flags.config });
      const timeoutMs = parseDuration(o.timeout, 's');
      const token = o.token || undefined;
      const { MdsClient } = await import('../../mds/client');
      const mds = new MdsClient(o.mds, { token, budgetMs: 10_000 });
      let res: Awaited<ReturnType<typeof runPass>>;
      let names: Map<number, string>;
      try {
        const all = await mds.listFs();
        names = new Map(all.map((f) => [f.fsId, f.name]));
        let fsId: number | undefined;
        if (flags.fs !== undefined) {
          const f = all.find((x) => x.name === flags.fs);
          if (!f) throw new Error(`no file system named "${flags.fs}"`);
          if (f.replicas < 2) {
            process.stdout.write(flags.json ? `${JSON.stringify({ fs: [], checked: 0, underReplicated: 0, copied: 0, failed: 0, lost: 0, lostObjects: [] })}\n`
              : `file system "${f.name}" keeps 1 copy of each chunk: nothing to re-replicate\n`);
            return;
          }
          fsId = f.fsId;
        }
        const servers = (await mds.listServers('metaserver')).filter((s) => s.healthy).map((s) => s.address);
        if (servers.length === 0) throw new Error('the MDS lists no healthy metaserver');
        res = await runPass(servers, fsId, token, timeoutMs);
      } finally {
        mds.close();
      }
      const fsNames = res.fsIds.map((id) => names.get(id) ?? `fs ${id}`);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({
          metaserver: res.address, fs: fsNames, checked: res.checked, underReplicated: res.underReplicated, copied: res.copied, failed: res.failed,
          lost: res.lost, skipped: res.skipped, durationMs: res.durationMs, lostObjects: res.lostObjects,
        })}\n`);
      } else {
        const out = [
          `repair (metaserver ${res.address}) of ${fsNames.length > 0 ? fsNames.join(', ') : 'no replicated file system'}: ${(res.durationMs / 1000).toFixed(1)} s`,
          `  checked           ${res.checked}`,
          `  under-replicated  ${res.underReplicated}`,
          `  copied            ${res.copied}`,
          `  failed            ${res.failed}`,
          `  lost              ${res.lost}`,
        ];
        if (res.skipped > 0) out.push(`  (${res.skipped} deleted or replaced during the pass: left alone)`);
        process.stdout.write(`${out.join('\n')}\n`);
        for (const k of res.lostObjects) process.stderr.write(`LOST: fs ${names.get(k.fsId) ?? k.fsId} (id ${k.fsId}) ino ${k.ino} chunk ${k.index} version ${k.version}\n`);
        if (res.lost > res.lostObjects.length) process.stderr.write(`LOST: ${res.lost - res.lostObjects.length} more (see the metaserver's log)\n`);
      }
      if (res.lost > 0) process.exitCode = 2;
      else if (res.failed > 0) process.exitCode = 1;
    });
}

/** Asks the metaservers in turn (the next one only if one does not answer). */
async function runPass(addresses: string[], fsId: number | undefined, token: string | undefined, timeoutMs: number) {
  const grpc = await import('@grpc/grpc-js');
  const pb = await import('../../gen/metaserver');
  const { clientChannelOptions, describeRpcError, unary } = await import('../../common/rpc');
  let last: unknown;
  for (const address of addresses) {
    const client = new pb.MetaserverClient(address, grpc.credentials.createInsecure(), clientChannelOptions({ token }));
    try {
      const r = await unary(client, client.repair, { all: fsId === undefined, fsId: fsId ?? 0 }, timeoutMs);
      return { address, ...r };
    } catch (err) {
      const e = err as { code?: number };
      last = new Error(`metaserver ${address}: ${describeRpcError(err)}`);
      if (e.code !== grpc.status.UNAVAILABLE) throw last;
    } finally {
      client.close();
    }
  }
  throw last;
}
