// The etcd-watch change feed survives etcd member failures: two metaservers on a 3-member etcd, a
// subscriber of B, and each member killed in turn while changes go through A — every change still
// reaches B's subscriber, in order, with no reset and no stream error.
import { describeIf, whyNoCommand } from '../helpers/privileged';
import { useEtcd } from '../helpers/etcd';
import { startEtcdMetaserver } from '../../src/metaserver/engines/etcd-metaserver';
import { MetaClient } from '../../src/metaserver/client';
import { ChangeEvent, ROOT_INO } from '../../src/metaserver/api';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeIf([whyNoCommand('etcd')], 'etcd change feed across etcd member failures', () => {
  const etcd = useEtcd({ members: 3 });

  it('every create through A reaches a subscriber of B while each etcd member is killed in turn', async () => {
    const cluster = `ff${process.pid}`;
    const opts = { listen: '127.0.0.1:0', etcd: etcd.cluster.endpoints, cluster, createFs: [1], graceMs: 500 };
    const a = await startEtcdMetaserver(opts);
    const b = await startEtcdMetaserver(opts);
    const ca = new MetaClient(a.address, { deadlineMs: 15_000 });
    const cb = new MetaClient(b.address, { deadlineMs: 15_000 });
    const got: ChangeEvent[] = [];
    let subErr: Error | undefined;
    const sub = cb.subscribe(1, 0, { event: (e) => got.push(e), error: (err) => (subErr = err) });
    const C = { uid: 0, gid: 0 };
    const created: string[] = [];
    try {
      await sleep(200);
      for (let victim = 0; victim < 3; victim++) {
        await etcd.cluster.kill(victim);
        for (let i = 0; i < 10; i++) {
          const name = `m${victim}-${i}`;
          await ca.mknod(1, ROOT_INO, Buffer.from(name), 0o100644, 0, C);
          created.push(name);
        }
        await etcd.cluster.restart(victim);
      }
      const seen = () => new Set(got.filter((e) => e.kind === 'entry').map((e) => (e as { name: Buffer }).name.toString()));
      const t0 = Date.now();
      while (created.some((n) => !seen().has(n)) && Date.now() - t0 < 5000) await sleep(10);
      expect(created.filter((n) => !seen().has(n))).toEqual([]);
      expect(got.filter((e) => e.kind === 'reset')).toEqual([]);
      const seqs = got.map((e) => e.seq);
      expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(subErr).toBeUndefined();
    } finally {
      sub.close();
      ca.close();
      cb.close();
      await Promise.all([a.close(), b.close()]);
    }
  }, 90_000);
});
