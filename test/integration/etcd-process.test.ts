// The etcd launcher itself: one and three real members on loopback, kill one, stop cleans up.
import * as fs from 'node:fs';
import { describeIf, whyNoCommand } from '../helpers/privileged';
import { memberHealthy, startEtcdCluster } from '../../src/dev/etcd-process';

describeIf([whyNoCommand('etcd')], 'etcd launcher', () => {
  it('starts one member, serves /health, and stop() removes its temp dir', async () => {
    const c = await startEtcdCluster({ members: 1 });
    try {
      expect(c.endpoints).toHaveLength(1);
      expect(await memberHealthy(c.endpoints[0])).toBe(true);
      expect(fs.existsSync(c.dir)).toBe(true);
    } finally {
      await c.stop();
    }
    expect(fs.existsSync(c.dir)).toBe(false);
    expect(c.members[0].proc).toBeUndefined();
  });

  it('starts three members; with one killed the other two stay healthy; restart rejoins', async () => {
    const c = await startEtcdCluster({ members: 3 });
    try {
      expect(c.endpointList.split(',')).toHaveLength(3);
      await c.kill(1);
      expect(c.members[1].proc).toBeUndefined();
      await c.waitHealthy(5000, [0, 2]);
      await c.restart(1);
      expect(await memberHealthy(c.endpoints[1])).toBe(true);
    } finally {
      await c.stop();
    }
    expect(fs.existsSync(c.dir)).toBe(false);
  });

  it('fails fast with the log tail when etcd cannot start, and cleans up', async () => {
    await expect(startEtcdCluster({ bin: 'kurve-no-such-etcd', startTimeoutMs: 3000 })).rejects.toThrow(/exited during startup[\s\S]*ENOENT/);
  });
});
