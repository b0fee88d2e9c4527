// The metaserver on etcd: the KvEngine contract suite and the whole namespace semantics suite (over
// real gRPC) against a real etcd, and two metaservers sharing one etcd: a change made through A
// reaches a change-feed subscriber of B within 200 ms.
import { describeIf, whyNoCommand } from '../helpers/privileged';
import { useEtcd } from '../helpers/etcd';
import { engineSuite } from '../helpers/metaserver-engine-suite';
import { namespaceSuite, SuiteTarget } from '../helpers/metaserver-suite';
import { EtcdEngine } from '../../src/metaserver/engines/etcd';
import { startEtcdMetaserver } from '../../src/metaserver/engines/etcd-metaserver';
import { MetaClient } from '../../src/metaserver/client';
import { ChangeEvent, ROOT_INO } from '../../src/metaserver/api';

let clusterSeq = 0;
const uniqueCluster = () => `t${process.pid}-${Date.now().toString(36)}-${++clusterSeq}`;

describeIf([whyNoCommand('etcd')], 'metaserver on etcd', () => {
  const etcd = useEtcd({ members: 1 });

  engineSuite('etcd engine contract', async () => {
    const prefix = `kurve/${uniqueCluster()}/meta/`;
    let engine = new EtcdEngine({ endpoints: etcd.cluster.endpoints, prefix });
    return {
      engine,
      reopen: async () => {
        await engine.close();
        engine = new EtcdEngine({ endpoints: etcd.cluster.endpoints, prefix });
        return engine;
      },
      close: () => engine.close(),
    };
  });

  namespaceSuite('namespace semantics on etcd over gRPC', async (): Promise<SuiteTarget> => {
    const server = await startEtcdMetaserver({ listen: '127.0.0.1:0', etcd: etcd.cluster.endpoints, cluster: uniqueCluster(), graceMs: 1000 });
    const client = new MetaClient(server.address, { deadlineMs: 10_000 });
    let next = 100;
    return {
      ms: client,
      newFs: async (o = {}) => {
        const id = next++;
        await client.createFs(id, { chunkSize: o.chunkSize });
        return id;
      },
      close: async () => {
        client.close();
        await server.close();
      },
    };
  });

  describe('two metaservers on one etcd', () => {
    it('a create, rename and unlink through A reach a subscriber of B within 200 ms each', async () => {
      const cluster = uniqueCluster();
      const a = await startEtcdMetaserver({ listen: '127.0.0.1:0', etcd: etcd.cluster.endpoints, cluster, createFs: [1], graceMs: 500 });
      const b = await startEtcdMetaserver({ listen: '127.0.0.1:0', etcd: etcd.cluster.endpoints, cluster, createFs: [1], graceMs: 500 });
      const ca = new MetaClient(a.address, { deadlineMs: 5000 });
      const cb = new MetaClient(b.address, { deadlineMs: 5000 });
      const got: Array<{ e: ChangeEvent; at: number }> = [];
      let subErr: Error | undefined;
      const sub = cb.subscribe(1, 0, { event: (e) => got.push({ e, at: Date.now() }), error: (err) => (subErr = err) });
      try {
        await new Promise((r) => setTimeout(r, 200)); // the stream is open before the first change
        await Promise.all([ca.getattr(1, ROOT_INO), cb.getattr(1, ROOT_INO)]); // channels connected
        const C = { uid: 0, gid: 0 };
        const lat: number[] = [];
        const wait = async (pred: (e: ChangeEvent) => boolean, since: number): Promise<number> => {
          for (;;) {
            const hit = got.find((g) => g.at >= since && pred(g.e));
            if (hit) {
              lat.push(hit.at - since);
              return hit.at - since;
            }
            if (Date.now() - since > 2000) throw new Error(`no matching event on B within 2 s; got ${JSON.stringify(got.map((g) => g.e))} ${subErr?.message ?? ''}`);
            await new Promise((r) => setTimeout(r, 2));
          }
        };
        const isEntry = (name: string) => (e: ChangeEvent) => e.kind === 'entry' && e.parent === ROOT_INO && e.name.toString() === name;

        const all: ChangeEvent[] = [];
        const mark = () => {
          all.push(...got.map((g) => g.e));
          got.length = 0;
          return Date.now();
        };
        let t0 = mark();
        const f = await ca.mknod(1, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
        expect(await wait(isEntry('f'), t0)).toBeLessThan(200);
        expect((await cb.lookup(1, ROOT_INO, Buffer.from('f'))).ino).toBe(f.ino);

        t0 = mark();
        await ca.rename(1, ROOT_INO, Buffer.from('f'), ROOT_INO, Buffer.from('g'), 0, C);
        expect(await wait(isEntry('g'), t0)).toBeLessThan(200);

        t0 = mark();
        await ca.setattr(1, f.ino, { mode: 0o100600 }, C);
        expect(await wait((e) => e.kind === 'attr' && e.ino === f.ino, t0)).toBeLessThan(200);

        t0 = mark();
        await ca.unlink(1, ROOT_INO, Buffer.from('g'), C);
        expect(await wait(isEntry('g'), t0)).toBeLessThan(200);
        await expect(cb.lookup(1, ROOT_INO, Buffer.from('g'))).rejects.toThrow();
        // Sequence numbers increase and are the same scheme on both servers (revision-based).
        mark();
        const seqs = all.map((e) => e.seq);
        expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
        expect(subErr).toBeUndefined();
        process.stderr.write(`etcd feed: op through A until the event at a subscriber of B (ms, incl. the op): ${lat.join(', ')}\n`);
      } finally {
        sub.close();
        ca.close();
        cb.close();
        await Promise.all([a.close(), b.close()]);
      }
    });
  });
});
