// vfs building blocks: lookup counts (passthrough_hp rules), handles, stable readdir offsets.
import { FsError } from '../../src/common/errno';
import { DirentBuffer, DirentPlusBuffer } from '../../src/fuse/protocol/dirent';
import type { EntryOut } from '../../src/fuse/protocol/raw-fs';
import { HandleTable } from '../../src/fuse/vfs/handle-table';
import { InodeTable, LookupCountError, ROOT_NODEID } from '../../src/fuse/vfs/inode-table';
import { DirStream, dotEntries, fillDirents, fillDirentsPlus, type ListedEntry } from '../../src/fuse/vfs/readdir';
import { OUT_HEADER_SIZE, getU64 } from '../../src/fuse/protocol/wire';
import { connectionIdIn, resolveMountOptions } from '../../src/fuse/protocol/mount';

describe('InodeTable', () => {
  it('counts refs and evicts at zero', () => {
    const evicted: number[] = [];
    const t = new InodeTable('root', (id) => evicted.push(id));
    expect(t.ref(5, () => 'five')).toBe('five');
    expect(t.ref(5, () => 'other')).toBe('five');
    expect(t.lookupCount(5)).toBe(2);
    expect(t.forget(5, 1)).toBe(false);
    expect(t.forget(5, 1)).toBe(true);
    expect(t.get(5)).toBeUndefined();
    expect(evicted).toEqual([5]);
  });

  it('treats forgetting more than was handed out as a bug', () => {
    const t = new InodeTable('root');
    t.ref(7, () => 'x');
    expect(() => t.forget(7, 2)).toThrow(LookupCountError);
    expect(() => t.forget(8, 1)).toThrow(LookupCountError);
  });

  it('pins the root', () => {
    const t = new InodeTable('root');
    t.ref(ROOT_NODEID, () => 'ignored');
    expect(t.forget(ROOT_NODEID, 1)).toBe(false);
    expect(t.get(ROOT_NODEID)).toBe('root');
  });

  it('need() of an unknown nodeid is ESTALE', () => {
    const t = new InodeTable('root');
    expect(() => t.need(99)).toThrow(FsError);
    try { t.need(99); } catch (e) { expect((e as FsError).code).toBe('ESTALE'); }
  });
});

describe('HandleTable', () => {
  it('never reuses numbers and answers EBADF for unknown handles', () => {
    const h = new HandleTable<string>();
    const a = h.add('a');
    expect(h.release(a)).toBe('a');
    const b = h.add('b');
    expect(b).not.toBe(a);
    expect(() => h.need(a)).toThrow(/EBADF/);
    expect(h.size).toBe(1);
  });
});

describe('readdir helpers', () => {
  const entries = (n: number): ListedEntry[] => [...dotEntries(1, 1), ...Array.from({ length: n }, (_, i) => ({ name: Buffer.from(`file-${i}`), ino: 100 + i, type: 0o100000 }))];

  it('resumes at the offset the kernel passes back, without skips or repeats', async () => {
    const stream = new DirStream();
    let listing = entries(50);
    const seen: string[] = [];
    let offset = 0;
    for (;;) {
      const sink = new DirentBuffer(256);
      const list = await stream.entriesAt(offset, () => listing);
      const packed = fillDirents(sink, list, offset);
      if (packed === 0) break;
      const body = sink.bytes.subarray(OUT_HEADER_SIZE);
      for (let p = 0; p < body.length;) {
        const namelen = body.readUInt32LE(p + 16);
        seen.push(body.toString('latin1', p + 24, p + 24 + namelen));
        offset = getU64(body, p + 8);
        p += (24 + namelen + 7) & ~7;
      }
      listing = entries(3); // the directory changes under the reader: the snapshot holds
    }
    expect(seen).toEqual(entries(50).map((e) => e.name.toString()));
  });

  it('readdirplus refs exactly the packed entries with a nodeid', () => {
    const t = new InodeTable('root');
    const list = entries(100);
    const sink = new DirentPlusBuffer(1024);
    const entryOf = (e: ListedEntry): EntryOut => ({ nodeid: e.ino, generation: 0, entryValid: 1, attrValid: 1, attr: { ino: e.ino, size: 0, atime: { sec: 0, nsec: 0 }, mtime: { sec: 0, nsec: 0 }, ctime: { sec: 0, nsec: 0 }, mode: e.type | 0o644, nlink: 1, uid: 0, gid: 0 } });
    const packed = fillDirentsPlus(sink, list, 0, entryOf, (e) => t.ref(e.ino, () => String(e.ino)));
    expect(packed).toBe(sink.count);
    expect(packed).toBe(6); // 1024 / 160
    expect(t.size).toBe(1 + packed - 2); // root + packed files, not "." / ".."
    expect(t.lookupCount(1)).toBe(1);
  });
});

describe('mount helpers', () => {
  const mountinfo = [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '40 22 0:41 / /tmp/a\\040b rw,nosuid,nodev,relatime shared:2 - fuse.kurve kurve rw,user_id=0,group_id=0',
    '41 22 0:52 / /mnt/x rw,relatime shared:3 - tmpfs tmpfs rw',
    '42 41 0:53 / /mnt/x rw,relatime shared:4 - fuse.kurve kurve rw,user_id=0,group_id=0',
    '43 22 259:3 / /mnt/blk rw,relatime shared:5 - fuseblk dev rw',
  ].join('\n');

  it('finds the kernel device number of a FUSE mount, unescaping the path', () => {
    expect(connectionIdIn(mountinfo, '/tmp/a b')).toBe(41);
    expect(connectionIdIn(mountinfo, '/mnt/x')).toBe(53); // the FUSE mount stacked on top
    expect(connectionIdIn(mountinfo, '/mnt/blk')).toBe(259 * 2 ** 20 + 3);
    expect(connectionIdIn(mountinfo, '/')).toBeUndefined();
  });

  it('resolves mount options with defaults and rejects bad ones', () => {
    expect(resolveMountOptions()).toEqual({ allowOther: false, defaultPermissions: true, passthrough: false, maxWrite: 1 << 20, maxReadahead: 1 << 20, fsname: 'kurve', subtype: 'kurve', readOnly: false, loop: 'uv-poll', pollMicros: 0, slowMs: 0, onSlow: expect.any(Function) });
    expect(() => resolveMountOptions({ maxWrite: 2 << 20 })).toThrow(/EINVAL/);
    expect(resolveMountOptions({ pollMicros: 200 }).pollMicros).toBe(200);
    expect(() => resolveMountOptions({ pollMicros: 20_000 })).toThrow(/pollMicros must be between/);
    expect(resolveMountOptions({ slowMs: 1000 }).slowMs).toBe(1000);
    expect(() => resolveMountOptions({ slowMs: -1 })).toThrow(/slowMs must be 0 or more/);
  });
});
