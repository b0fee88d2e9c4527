// `kurve status` logic without a cluster: unreachable replicas are reported (never thrown), the
// verdict is DEGRADED with reasons, and the text form names every replica.
import { clusterStatus, formatStatus } from '../../src/dev/status';
import { freePorts } from '../../src/dev/etcd-process';

describe('cluster status', () => {
  it('reports unreachable MDS replicas and no leader, within the timeout', async () => {
    const [p1, p2] = await freePorts(2);
    const addrs = [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`];
    const t0 = Date.now();
    const st = await clusterStatus(addrs, { timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(st.leader).toBeNull();
    expect(st.mds.map((m) => [m.addr, m.role])).toEqual([[addrs[0], 'unreachable'], [addrs[1], 'unreachable']]);
    expect(st.health.ok).toBe(false);
    expect(st.health.problems).toContain('no MDS leader');
    expect(st.health.problems.filter((p) => p.includes('unreachable'))).toHaveLength(2);
    const text = formatStatus(st);
    expect(text).toMatch(/^leader\s+NONE$/m);
    expect(text).toContain(`${addrs[1]}  unreachable`);
    expect(text).toMatch(/^health\s+DEGRADED/m);
    // JSON shape the issue asks for: leader {addr, pid} or null.
    expect(JSON.parse(JSON.stringify(st))).toHaveProperty('leader', null);
  });
});
