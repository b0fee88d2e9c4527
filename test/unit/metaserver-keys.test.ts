// Key layout, record codecs and name validation of the metaserver.
import { Errno, FsError } from '../../src/common/errno';
import { prefixEnd, compareHolds } from '../../src/metaserver/engine';
import { decodeEvents, encodeEvents, numberEvents, EVENTS_PER_REVISION } from '../../src/metaserver/feed';
import {
  decodeChunk, decodeDentry, decodeInode, decodeReaddirEntry, encodeChunk, encodeDentry, encodeInode, encodeReaddirEntry,
  InodeRec, S_IFDIR, S_IFLNK, S_IFREG, toAttr,
} from '../../src/metaserver/inode';
import {
  checkName, chunkKey, decodeSessionKey, dentryKey, dentryPrefix, gcKey, inodeKey, keyName, keyU64, keyU64b, readdirKey,
  readU64, sessionKey, sessionPrefix, writeU64,
} from '../../src/metaserver/keys';

function errnoOf(fn: () => void): number | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as FsError).errno;
  }
}

describe('u64 codec', () => {
  it('round-trips up to 2^53-1 and sorts numerically as bytes', () => {
    const vals = [0, 1, 255, 256, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER];
    const bufs = vals.map((v) => {
      const b = Buffer.alloc(8);
      writeU64(b, v, 0);
      expect(readU64(b, 0)).toBe(v);
      return b;
    });
    for (let i = 1; i < bufs.length; i++) expect(Buffer.compare(bufs[i - 1], bufs[i])).toBe(-1);
  });
});

describe('keys', () => {
  it('inode keys carry fs and ino, and order by ino within a fs', () => {
    const k = inodeKey(7, 2 ** 33 + 5);
    expect(k[0]).toBe(0x49);
    expect(k.readUInt32BE(1)).toBe(7);
    expect(keyU64(k)).toBe(2 ** 33 + 5);
    expect(Buffer.compare(inodeKey(7, 9), inodeKey(7, 10))).toBe(-1);
    expect(Buffer.compare(inodeKey(7, 2 ** 40), inodeKey(8, 1))).toBe(-1);
  });
  it('dentry keys are parent + raw name bytes, inside the parent prefix', () => {
    const name = Buffer.from([0xff, 0x00, 0x41]);
    const k = dentryKey(1, 42, name);
    expect(keyU64(k)).toBe(42);
    expect(keyName(k).equals(name)).toBe(true);
    const p = dentryPrefix(1, 42);
    expect(k.subarray(0, p.length).equals(p)).toBe(true);
    expect(Buffer.compare(k, prefixEnd(p)!)).toBe(-1);
    // another parent's entries are outside the prefix
    expect(Buffer.compare(dentryKey(1, 43, Buffer.from('a')), prefixEnd(p)!)).toBeGreaterThanOrEqual(0);
  });
  it('readdir keys order by cookie; chunk keys by index', () => {
    expect(keyU64b(readdirKey(1, 5, 1234))).toBe(1234);
    expect(Buffer.compare(readdirKey(1, 5, 9), readdirKey(1, 5, 300))).toBe(-1);
    expect(Buffer.compare(chunkKey(1, 5, 1), chunkKey(1, 5, 2 ** 32))).toBe(-1);
  });
  it('session keys decode back to fs and ino; one session prefix does not cover another', () => {
    const k = sessionKey('sess-1', 3, 99);
    expect(decodeSessionKey(k)).toEqual({ fsId: 3, ino: 99 });
    const other = sessionKey('sess-10', 3, 99);
    const p = sessionPrefix('sess-1');
    expect(other.subarray(0, p.length).equals(p)).toBe(false);
  });
  it('gc keys order by due time', () => {
    expect(Buffer.compare(gcKey(1000, 999), gcKey(1001, 0))).toBe(-1);
  });
  it('prefixEnd carries over 0xff bytes', () => {
    expect(prefixEnd(Buffer.from([1, 0xff]))).toEqual(Buffer.from([2]));
    expect(prefixEnd(Buffer.from([0xff, 0xff]))).toBeUndefined();
  });
});

describe('compares', () => {
  const cur = { value: Buffer.from('v'), modRevision: 5 };
  it('modRevision 0 means absent; otherwise equal revisions', () => {
    expect(compareHolds({ key: Buffer.from('k'), modRevision: 0 }, undefined)).toBe(true);
    expect(compareHolds({ key: Buffer.from('k'), modRevision: 0 }, cur)).toBe(false);
    expect(compareHolds({ key: Buffer.from('k'), modRevision: 5 }, cur)).toBe(true);
    expect(compareHolds({ key: Buffer.from('k'), modRevision: 4 }, cur)).toBe(false);
  });
  it('value compares', () => {
    expect(compareHolds({ key: Buffer.from('k'), value: Buffer.from('v') }, cur)).toBe(true);
    expect(compareHolds({ key: Buffer.from('k'), value: Buffer.from('w') }, cur)).toBe(false);
    expect(compareHolds({ key: Buffer.from('k'), value: undefined }, undefined)).toBe(true);
  });
});

describe('name validation', () => {
  it('accepts ordinary and binary names up to 255 bytes', () => {
    expect(errnoOf(() => checkName(Buffer.from('hello.txt')))).toBeUndefined();
    expect(errnoOf(() => checkName(Buffer.from([0xc3, 0x28, 0xff])))).toBeUndefined();
    expect(errnoOf(() => checkName(Buffer.from('...')))).toBeUndefined();
    expect(errnoOf(() => checkName(Buffer.alloc(255, 0x61)))).toBeUndefined();
  });
  it('rejects empty, dot names, slash and NUL with EINVAL, long names with ENAMETOOLONG', () => {
    expect(errnoOf(() => checkName(Buffer.alloc(0)))).toBe(Errno.EINVAL);
    expect(errnoOf(() => checkName(Buffer.from('.')))).toBe(Errno.EINVAL);
    expect(errnoOf(() => checkName(Buffer.from('..')))).toBe(Errno.EINVAL);
    expect(errnoOf(() => checkName(Buffer.from('a/b')))).toBe(Errno.EINVAL);
    expect(errnoOf(() => checkName(Buffer.from([0x61, 0])))).toBe(Errno.EINVAL);
    expect(errnoOf(() => checkName(Buffer.alloc(256, 0x61)))).toBe(Errno.ENAMETOOLONG);
  });
  it('says what is wrong', () => {
    expect(() => checkName(Buffer.alloc(300, 0x61))).toThrow('ENAMETOOLONG: name is 300 bytes, the limit is 255');
    expect(() => checkName(Buffer.from('x/y'), 'new name')).toThrow("new name contains '/'");
  });
});

describe('record codecs', () => {
  const base: InodeRec = {
    ino: 12, generation: 1, mode: S_IFDIR | 0o755, nlink: 3, uid: 1000, gid: 100, rdev: 0, size: 2 ** 45,
    atime: { sec: -5, nsec: 1 }, mtime: { sec: 1_700_000_000, nsec: 999_999_999 }, ctime: { sec: 0, nsec: 0 },
    dataVersion: 17, nextCookie: 99, parent: 1,
  };
  it('inodes round-trip, including negative times and symlink targets', () => {
    expect(decodeInode(12, encodeInode(base))).toEqual({ ...base, target: undefined });
    const link = { ...base, mode: S_IFLNK | 0o777, target: Buffer.from([0xff, 0x2f, 0x61]) };
    expect(decodeInode(12, encodeInode(link))).toEqual(link);
  });
  it('regular files carry their allocated bytes; a record from before that decodes as unknown', () => {
    const file = { ...base, mode: S_IFREG | 0o644, alloc: 3 * 4096 };
    expect(decodeInode(12, encodeInode(file))).toEqual({ ...file, target: undefined });
    const old = encodeInode({ ...file, alloc: undefined });
    expect(old.length).toBe(96);
    expect(decodeInode(12, old).alloc).toBeUndefined();
    expect(toAttr(decodeInode(12, encodeInode(file))).blocks).toBe(24);
    expect(toAttr(decodeInode(12, old)).blocks).toBeUndefined();
  });
  it('a truncated inode record is EIO, not garbage', () => {
    expect(errnoOf(() => decodeInode(1, Buffer.alloc(10)))).toBe(Errno.EIO);
  });
  it('dentries, readdir entries and chunks round-trip', () => {
    expect(decodeDentry(encodeDentry({ ino: 2 ** 50, type: S_IFDIR, cookie: 77 }))).toEqual({ ino: 2 ** 50, type: S_IFDIR, cookie: 77 });
    const r = decodeReaddirEntry(encodeReaddirEntry(5, S_IFLNK, Buffer.from('n')));
    expect(r).toEqual({ ino: 5, type: S_IFLNK, name: Buffer.from('n') });
    expect(decodeChunk(3, encodeChunk({ index: 3, version: 2 ** 40, length: 4 << 20 }))).toEqual({ index: 3, version: 2 ** 40, length: 4 << 20 });
  });
  it('events number by revision and round-trip through the E-key codec', () => {
    const drafts = [{ kind: 'entry' as const, parent: 1, name: Buffer.from([0xff]) }, { kind: 'data' as const, ino: 4, dataVersion: 2 }];
    expect(numberEvents(3, drafts).map((e) => e.seq)).toEqual([3 * EVENTS_PER_REVISION, 3 * EVENTS_PER_REVISION + 1]);
    expect(decodeEvents(encodeEvents(drafts))).toEqual(drafts);
  });
});
