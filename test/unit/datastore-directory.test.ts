// DatastoreDirectory: the router follows the MDS's datastore list — placement by registered id
// (over down ones too), a fresh connection when a datastore comes back or moves, the last list
// kept when the MDS cannot be asked, connections closed on removal and close().
import { ServerInfo } from '../../src/mds/api';
import { ChunkKey, DataService } from '../../src/datastore/api';
import { Connection, DatastoreDirectory } from '../../src/datastore/directory';

function fakeConn(address: string, log: string[]): Connection {
  const fail = async (): Promise<never> => {
    throw new Error('not used');
  };
  const svc: DataService = { put: fail, get: fail, delete: fail, deleteInode: fail, deleteMany: fail, stats: fail };
  log.push(`open ${address}`);
  return Object.assign(svc, { address, close: () => void log.push(`close ${address}`) });
}

describe('DatastoreDirectory', () => {
  const server = (id: string, address: string, healthy = true): ServerInfo => ({ id, kind: 'datastore', address, healthy, lastHeartbeatMs: 1 });
  const key = (ino: number): ChunkKey => ({ fsId: 1, ino, index: 0, version: 1 });

  it('tracks additions, health, moves and removals from the MDS list', async () => {
    let list = [server('ds-a', '10.0.0.1:1'), server('ds-b', '10.0.0.2:1')];
    let failing = false;
    const mds = { listServers: async () => { if (failing) throw new Error('MDS down'); return list; } };
    const log: string[] = [];
    const dir = await DatastoreDirectory.open(mds, { refreshMs: 0, connect: (a) => fakeConn(a, log) });
    try {
      expect(log).toEqual(['open 10.0.0.1:1', 'open 10.0.0.2:1']);
      const owners = (ks: number[]) => ks.map((i) => dir.router.order(key(i))[0].id);
      const before = owners([...Array(50).keys()]);
      expect(new Set(before)).toEqual(new Set(['ds-a', 'ds-b']));

      // Down: same placement (the down node stays in the list), no reconnect.
      list = [server('ds-a', '10.0.0.1:1', false), server('ds-b', '10.0.0.2:1')];
      await dir.refresh();
      expect(owners([...Array(50).keys()])).toEqual(before);
      expect(dir.router.order(key(0)).find((n) => n.id === 'ds-a')!.down).toBe(true);
      expect(dir.addresses()).toEqual(['10.0.0.2:1', '10.0.0.1:1']);
      expect(log.length).toBe(2);

      // Back, and on another address: new connections, placement unchanged (it is by id).
      list = [server('ds-a', '10.0.0.1:1'), server('ds-b', '10.0.0.9:1')];
      await dir.refresh();
      expect(log.slice(2)).toEqual(['close 10.0.0.1:1', 'open 10.0.0.1:1', 'close 10.0.0.2:1', 'open 10.0.0.9:1']);
      expect(owners([...Array(50).keys()])).toEqual(before);

      // The MDS cannot be asked: the last list stays.
      failing = true;
      await expect(dir.refresh()).rejects.toThrow(/MDS down/);
      expect(dir.router.order(key(0)).length).toBe(2);
      failing = false;

      // A third one joins: it takes over some chunks only; a removed one is closed.
      list = [...list, server('ds-c', '10.0.0.3:1')];
      await dir.refresh();
      const after = owners([...Array(50).keys()]);
      const moved = after.filter((o, i) => o !== before[i]);
      expect(moved.length).toBeGreaterThan(0);
      expect(moved.every((o) => o === 'ds-c')).toBe(true);
      list = list.filter((s) => s.id !== 'ds-b');
      await dir.refresh();
      expect(log[log.length - 1]).toBe('close 10.0.0.9:1');
    } finally {
      dir.close();
    }
    expect(log.filter((l) => l.startsWith('open')).length).toBe(log.filter((l) => l.startsWith('close')).length);
  });

  it('in the background, starts with no nodes and fills in once the MDS answers', async () => {
    let calls = 0;
    const mds = { listServers: async () => { calls++; if (calls === 1) throw new Error('MDS not up yet'); return [server('ds-a', '10.0.0.1:1')]; } };
    const dir = await DatastoreDirectory.open(mds, { background: true, refreshMs: 20, connect: (a) => fakeConn(a, []) });
    try {
      expect(() => dir.router.order(key(1))).toThrow(/no datastore available/);
      await expect(dir.router.deleteInode(1, 1)).rejects.toThrow(/no datastore available/);
      const t0 = Date.now();
      while (dir.addresses().length === 0 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10));
      expect(dir.addresses()).toEqual(['10.0.0.1:1']);
    } finally {
      dir.close();
    }
  });
});
