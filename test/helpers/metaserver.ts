// Test helpers for the metaserver: a real metaserver on a free port in a temp dir (gRPC), or an
// in-process Namespace on lmdb; both as SuiteTargets for the semantics suite.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MetaClient } from '../../src/metaserver/client';
import { LmdbEngine, LmdbEngineOptions } from '../../src/metaserver/engines/lmdb';
import { Namespace, NamespaceOptions } from '../../src/metaserver/namespace';
import { startMetaserver, Metaserver } from '../../src/metaserver/server';
import type { SuiteTarget } from './metaserver-suite';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A metaserver over real gRPC on 127.0.0.1:0 with its own temp data dir. */
export async function grpcTarget(opts: { token?: string; namespace?: NamespaceOptions } = {}): Promise<SuiteTarget & { server: Metaserver; client: MetaClient; dir: string }> {
  const dir = tempDir('kurve-ms-');
  const server = await startMetaserver({ listen: '127.0.0.1:0', dataDir: dir, token: opts.token, namespace: opts.namespace, graceMs: 1000 });
  const client = new MetaClient(server.address, { token: opts.token, deadlineMs: 5000 });
  let next = 100;
  return {
    ms: client,
    server,
    client,
    dir,
    newFs: async (o = {}) => {
      const id = next++;
      await client.createFs(id, { chunkSize: o.chunkSize });
      return id;
    },
    close: async () => {
      client.close();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Namespace in this process on a temp lmdb. */
export async function inProcessTarget(
  opts: NamespaceOptions = {},
  engineOpts: Omit<LmdbEngineOptions, 'path'> = {},
): Promise<SuiteTarget & { ns: Namespace; engine: LmdbEngine; dir: string }> {
  const dir = tempDir('kurve-ns-');
  const engine = new LmdbEngine({ ...engineOpts, path: dir });
  const ns = await Namespace.open(engine, opts);
  let next = 100;
  return {
    ms: ns,
    ns,
    engine,
    dir,
    newFs: async (o = {}) => {
      const id = next++;
      await ns.createFs(id, { chunkSize: o.chunkSize });
      return id;
    },
    close: async () => {
      await ns.close();
      await engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
