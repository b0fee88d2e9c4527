// MDS leader election on a real etcd: one leader, hints, fast handover on resign, the fence, and
// stepping down when the lease can no longer be renewed (etcd frozen with SIGSTOP).
import { Etcd3 } from 'etcd3';
import { describeIf, whyNoCommand } from '../helpers/privileged';
import { useEtcd } from '../helpers/etcd';
import { createEtcdClient } from '../../src/common/etcd-client';
import { EtcdElection, NotLeaderError, startElection } from '../../src/mds/election-etcd';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
  return Date.now() - t0;
}

describeIf([whyNoCommand('etcd')], 'etcd MDS election', () => {
  const etcd = useEtcd({ members: 1 });
  const clients: Etcd3[] = [];
  const elections: EtcdElection[] = [];
  let cluster = 0;

  async function replicas(n: number, ttlSec = 2): Promise<EtcdElection[]> {
    const name = `el${++cluster}`;
    const out: EtcdElection[] = [];
    for (let i = 0; i < n; i++) {
      const client = createEtcdClient({ endpoints: etcd.cluster.endpoints });
      clients.push(client);
      const e = await startElection({ client, cluster: name, address: `127.0.0.1:${6700 + i}`, ttlSec });
      elections.push(e);
      out.push(e);
    }
    return out;
  }
  const leaders = (es: EtcdElection[]) => es.filter((e) => e.isLeader());

  afterEach(async () => {
    await Promise.all(elections.splice(0).map((e) => e.close()));
    for (const c of clients.splice(0)) c.close();
  });

  it('elects exactly one leader; followers hint its address; resign hands over in < 1 s', async () => {
    const es = await replicas(3);
    await until('a leader', () => leaders(es).length === 1, 5000);
    const first = leaders(es)[0];
    await until(`followers to know the leader (${first.leaderAddress()})`, () => es.every((e) => e.leaderAddress() === first.leaderAddress()), 3000).catch((err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(es.map((e) => [e.isLeader(), e.leaderAddress(), e.leaderValue()]))}`);
    });
    expect(first.leaderValue()).toEqual({ addr: first.leaderAddress(), pid: process.pid });
    for (const e of es) if (e !== first) expect(() => e.fence()).toThrow(NotLeaderError);

    const t0 = Date.now();
    await first.close();
    const rest = es.filter((e) => e !== first);
    await until('a new leader', () => leaders(rest).length === 1, 1000);
    const handoverMs = Date.now() - t0;
    expect(handoverMs).toBeLessThan(1000);
    expect(leaders(rest)).toHaveLength(1);
    await until('the hint to move', () => rest.every((e) => e.leaderAddress() === leaders(rest)[0].leaderAddress()), 2000);
  });

  it("fences writes: the deposed leader's compare fails once another replica leads", async () => {
    const es = await replicas(2);
    await until('a leader', () => leaders(es).length === 1, 5000);
    const [a] = leaders(es);
    const b = es.find((e) => e !== a)!;
    const fenceA = a.fence();
    const kv = clients[clients.length - 1].kv;
    const write = async (fence: typeof fenceA, v: string) =>
      (await kv.txn({ compare: [fence], success: [{ request_put: { key: Buffer.from('fenced/x'), value: Buffer.from(v) } }] })).succeeded;
    expect(await write(fenceA, 'from a')).toBe(true);
    await a.resign();
    expect(a.isLeader()).toBe(false);
    await until('b to lead', () => b.isLeader(), 2000);
    expect(await write(fenceA, 'late write from a')).toBe(false);
    expect(await write(b.fence(), 'from b')).toBe(true);
  });

  it('steps down on its own when the lease cannot be renewed (etcd frozen), before etcd could expire it', async () => {
    const es = await replicas(2, 2);
    await until('a leader', () => leaders(es).length === 1, 5000);
    const [a] = leaders(es);
    const proc = etcd.cluster.members[0].proc!;
    proc.kill('SIGSTOP');
    try {
      const t0 = Date.now();
      await until('the leader to step down', () => !a.isLeader(), 3000);
      expect(Date.now() - t0).toBeLessThan(2000); // TTL 2 s: must be out before the lease can expire
      expect(leaders(es)).toHaveLength(0);
    } finally {
      proc.kill('SIGCONT');
    }
    await until('a leader again', () => leaders(es).length === 1, 8000);
  });
});
