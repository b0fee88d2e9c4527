// Wire layouts against the kernel's own header: a C program built here prints sizeof/offsetof
// from <linux/fuse.h>, and every size constant and field offset in wire.ts must match it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeIf, whyNoCommand } from '../helpers/privileged';
import { OPS, Opcode } from '../../src/fuse/protocol/opcodes';
import * as W from '../../src/fuse/protocol/wire';
import { DirentBuffer, DirentPlusBuffer } from '../../src/fuse/protocol/dirent';
import type { EntryOut, SetattrIn } from '../../src/fuse/protocol/raw-fs';

// Field name -> [our constant or offset, the C expression]. Structs newer than the build host's
// header (fuse_backing_map, 7.40) are checked only when the header has them.
const SIZES: Array<[string, number, string]> = [
  ['fuse_in_header', W.IN_HEADER_SIZE, 'sizeof(struct fuse_in_header)'],
  ['fuse_out_header', W.OUT_HEADER_SIZE, 'sizeof(struct fuse_out_header)'],
  ['fuse_attr', W.ATTR_SIZE, 'sizeof(struct fuse_attr)'],
  ['fuse_entry_out', W.ENTRY_OUT_SIZE, 'sizeof(struct fuse_entry_out)'],
  ['fuse_attr_out', W.ATTR_OUT_SIZE, 'sizeof(struct fuse_attr_out)'],
  ['fuse_open_out', W.OPEN_OUT_SIZE, 'sizeof(struct fuse_open_out)'],
  ['fuse_init_in', W.INIT_IN_SIZE, 'sizeof(struct fuse_init_in)'],
  ['fuse_init_out', W.INIT_OUT_SIZE, 'sizeof(struct fuse_init_out)'],
  ['fuse_kstatfs', W.KSTATFS_SIZE, 'sizeof(struct fuse_kstatfs)'],
  ['fuse_write_out', W.WRITE_OUT_SIZE, 'sizeof(struct fuse_write_out)'],
  ['fuse_getxattr_out', W.GETXATTR_OUT_SIZE, 'sizeof(struct fuse_getxattr_out)'],
  ['fuse_lseek_out', W.LSEEK_OUT_SIZE, 'sizeof(struct fuse_lseek_out)'],
  ['fuse_forget_one', W.FORGET_ONE_SIZE, 'sizeof(struct fuse_forget_one)'],
  ['fuse_dirent', W.DIRENT_SIZE, 'sizeof(struct fuse_dirent)'],
  ['fuse_direntplus', W.DIRENTPLUS_SIZE, 'sizeof(struct fuse_direntplus)'],
  ['fuse_notify_inval_inode_out', W.NOTIFY_INVAL_INODE_SIZE, 'sizeof(struct fuse_notify_inval_inode_out)'],
  ['fuse_notify_inval_entry_out', W.NOTIFY_INVAL_ENTRY_SIZE, 'sizeof(struct fuse_notify_inval_entry_out)'],
  ['fuse_notify_delete_out', W.NOTIFY_DELETE_SIZE, 'sizeof(struct fuse_notify_delete_out)'],
  // Request bodies, as the opcode table declares them.
  ['FORGET', OPS[Opcode.FORGET].inSize, 'sizeof(struct fuse_forget_in)'],
  ['GETATTR', OPS[Opcode.GETATTR].inSize, 'sizeof(struct fuse_getattr_in)'],
  ['SETATTR', OPS[Opcode.SETATTR].inSize, 'sizeof(struct fuse_setattr_in)'],
  ['MKNOD', OPS[Opcode.MKNOD].inSize, 'sizeof(struct fuse_mknod_in)'],
  ['MKDIR', OPS[Opcode.MKDIR].inSize, 'sizeof(struct fuse_mkdir_in)'],
  ['RENAME', OPS[Opcode.RENAME].inSize, 'sizeof(struct fuse_rename_in)'],
  ['RENAME2', OPS[Opcode.RENAME2].inSize, 'sizeof(struct fuse_rename2_in)'],
  ['LINK', OPS[Opcode.LINK].inSize, 'sizeof(struct fuse_link_in)'],
  ['OPEN', OPS[Opcode.OPEN].inSize, 'sizeof(struct fuse_open_in)'],
  ['READ', OPS[Opcode.READ].inSize, 'sizeof(struct fuse_read_in)'],
  ['WRITE', OPS[Opcode.WRITE].inSize, 'sizeof(struct fuse_write_in)'],
  ['RELEASE', OPS[Opcode.RELEASE].inSize, 'sizeof(struct fuse_release_in)'],
  ['FSYNC', OPS[Opcode.FSYNC].inSize, 'sizeof(struct fuse_fsync_in)'],
  ['SETXATTR (compat, no SETXATTR_EXT)', OPS[Opcode.SETXATTR].inSize, 'FUSE_COMPAT_SETXATTR_IN_SIZE'],
  ['GETXATTR', OPS[Opcode.GETXATTR].inSize, 'sizeof(struct fuse_getxattr_in)'],
  ['FLUSH', OPS[Opcode.FLUSH].inSize, 'sizeof(struct fuse_flush_in)'],
  ['INIT (compat)', W.INIT_IN_COMPAT_SIZE, 'offsetof(struct fuse_init_in, flags2)'],
  ['ACCESS', OPS[Opcode.ACCESS].inSize, 'sizeof(struct fuse_access_in)'],
  ['CREATE', OPS[Opcode.CREATE].inSize, 'sizeof(struct fuse_create_in)'],
  ['INTERRUPT', OPS[Opcode.INTERRUPT].inSize, 'sizeof(struct fuse_interrupt_in)'],
  ['BATCH_FORGET', OPS[Opcode.BATCH_FORGET].inSize, 'sizeof(struct fuse_batch_forget_in)'],
  ['FALLOCATE', OPS[Opcode.FALLOCATE].inSize, 'sizeof(struct fuse_fallocate_in)'],
  ['READDIR (read_in)', OPS[Opcode.READDIR].inSize, 'sizeof(struct fuse_read_in)'],
  ['LSEEK', OPS[Opcode.LSEEK].inSize, 'sizeof(struct fuse_lseek_in)'],
  ['COPY_FILE_RANGE', OPS[Opcode.COPY_FILE_RANGE].inSize, 'sizeof(struct fuse_copy_file_range_in)'],
  ['GETLK', OPS[Opcode.GETLK].inSize, 'sizeof(struct fuse_lk_in)'],
  ['IOCTL', OPS[Opcode.IOCTL].inSize, 'sizeof(struct fuse_ioctl_in)'],
  ['POLL', OPS[Opcode.POLL].inSize, 'sizeof(struct fuse_poll_in)'],
  ['BMAP', OPS[Opcode.BMAP].inSize, 'sizeof(struct fuse_bmap_in)'],
  // Field offsets the codecs hard-code.
  ['fuse_attr.mode', 60, 'offsetof(struct fuse_attr, mode)'],
  ['fuse_attr.atimensec', 48, 'offsetof(struct fuse_attr, atimensec)'],
  ['fuse_attr.blksize', 80, 'offsetof(struct fuse_attr, blksize)'],
  ['fuse_entry_out.attr', 40, 'offsetof(struct fuse_entry_out, attr)'],
  ['fuse_entry_out.entry_valid_nsec', 32, 'offsetof(struct fuse_entry_out, entry_valid_nsec)'],
  ['fuse_attr_out.attr', 16, 'offsetof(struct fuse_attr_out, attr)'],
  ['fuse_setattr_in.atimensec', 56, 'offsetof(struct fuse_setattr_in, atimensec)'],
  ['fuse_setattr_in.mode', 68, 'offsetof(struct fuse_setattr_in, mode)'],
  ['fuse_setattr_in.uid', 76, 'offsetof(struct fuse_setattr_in, uid)'],
  ['fuse_init_out.max_write', 20, 'offsetof(struct fuse_init_out, max_write)'],
  ['fuse_init_out.max_pages', 28, 'offsetof(struct fuse_init_out, max_pages)'],
  ['fuse_init_out.flags2', 32, 'offsetof(struct fuse_init_out, flags2)'],
  ['fuse_kstatfs.bsize', 40, 'offsetof(struct fuse_kstatfs, bsize)'],
  ['fuse_release_in.lock_owner', 16, 'offsetof(struct fuse_release_in, lock_owner)'],
  ['fuse_flush_in.lock_owner', 16, 'offsetof(struct fuse_flush_in, lock_owner)'],
  ['fuse_read_in.flags', 32, 'offsetof(struct fuse_read_in, flags)'],
  ['fuse_in_header.pid', 32, 'offsetof(struct fuse_in_header, pid)'],
];
const NEWER: Array<[string, number, string, string]> = [
  ['fuse_backing_map', W.BACKING_MAP_SIZE, 'sizeof(struct fuse_backing_map)', 'FUSE_DEV_IOC_BACKING_OPEN'],
  ['fuse_init_out.max_stack_depth', 36, 'offsetof(struct fuse_init_out, max_stack_depth)', 'FUSE_PASSTHROUGH'],
];

function kernelLayout(): Map<string, number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-fuseh-'));
  try {
    const lines = [
      '#include <stdio.h>', '#include <stddef.h>', '#include <linux/fuse.h>', 'int main(void) {',
      ...SIZES.map(([name, , expr]) => `  printf("%s=%zu\\n", "${name}", (size_t)(${expr}));`),
      ...NEWER.map(([name, , expr, guard]) => `#ifdef ${guard}\n  printf("%s=%zu\\n", "${name}", (size_t)(${expr}));\n#endif`),
      '  return 0;', '}',
    ];
    fs.writeFileSync(path.join(dir, 'l.c'), lines.join('\n'));
    execFileSync('cc', ['-o', path.join(dir, 'l'), path.join(dir, 'l.c')], { stdio: 'pipe' });
    const out = execFileSync(path.join(dir, 'l'), { encoding: 'utf8' });
    return new Map(out.trim().split('\n').map((l) => [l.slice(0, l.lastIndexOf('=')), Number(l.slice(l.lastIndexOf('=') + 1))]));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describeIf([whyNoCommand('cc'), fs.existsSync('/usr/include/linux/fuse.h') ? undefined : 'no linux/fuse.h'], 'wire layouts vs <linux/fuse.h>', () => {
  const layout = kernelLayout();
  it.each(SIZES.map(([name, ours]) => [name, ours]))('%s = %i', (name, ours) => {
    expect(layout.get(name as string)).toBe(ours);
  });
  it('newer structs match when the header has them', () => {
    for (const [name, ours] of NEWER) if (layout.has(name)) expect([name, layout.get(name)]).toEqual([name, ours]);
  });
});

describe('wire codecs', () => {
  const attr = { ino: 42, size: 5000, atime: { sec: 1, nsec: 2 }, mtime: { sec: 3, nsec: 4 }, ctime: { sec: 2 ** 40, nsec: 999_999_999 }, mode: 0o100644, nlink: 2, uid: 1000, gid: 100, rdev: 7 };

  it('attr round-trips and defaults blocks/blksize', () => {
    const b = Buffer.alloc(W.ATTR_SIZE);
    W.writeAttr(b, 0, attr);
    expect(W.readAttr(b, 0)).toEqual({ ...attr, blocks: 10, blksize: 4096 });
  });

  it('entry_out splits fractional timeouts into sec + nsec', () => {
    const b = Buffer.alloc(W.ENTRY_OUT_SIZE);
    const e: EntryOut = { nodeid: 2 ** 33 + 5, generation: 9, entryValid: 1.5, attrValid: 0, attr };
    W.writeEntryOut(b, 0, e);
    expect(W.getU64(b, 0)).toBe(2 ** 33 + 5);
    expect(W.getU64(b, 16)).toBe(1);
    expect(b.readUInt32LE(32)).toBe(500_000_000);
    expect(W.getU64(b, 24)).toBe(0);
    expect(W.readAttr(b, 40).ino).toBe(42);
  });

  it('u64 helpers handle values above 2^32 and negative i64', () => {
    const b = Buffer.alloc(8);
    W.putU64(b, 0, 2 ** 52 + 3);
    expect(b.readBigUInt64LE(0)).toBe(2n ** 52n + 3n);
    W.putU64(b, 0, -1);
    expect(W.getI64(b, 0)).toBe(-1);
  });

  it('in_header decodes every field', () => {
    const b = Buffer.alloc(W.IN_HEADER_SIZE);
    b.writeUInt32LE(40, 0); b.writeUInt32LE(Opcode.GETATTR, 4); b.writeBigUInt64LE(2n ** 40n + 12n, 8);
    b.writeBigUInt64LE(77n, 16); b.writeUInt32LE(1000, 24); b.writeUInt32LE(100, 28); b.writeUInt32LE(4242, 32);
    expect(W.decodeInHeader(b)).toEqual({ len: 40, opcode: 3, unique: 2 ** 40 + 12, uniqueLo: 12, uniqueHi: 256, nodeid: 77, uid: 1000, gid: 100, pid: 4242 });
  });

  it('setattr_in decodes only the valid fields, with UTIME_NOW as "now"', () => {
    const s: SetattrIn = { valid: (1 << 0) | (1 << 3) | (1 << 5) | (1 << 7), mode: 0o600, size: 123, mtime: { sec: 5, nsec: 6 }, killSuidgid: false };
    const d = W.decodeSetattrIn(W.encodeSetattrIn(s), 0);
    expect(d).toEqual({ valid: s.valid, mode: 0o600, size: 123, mtime: { sec: 5, nsec: 6 }, atime: 'now', fh: undefined, ctime: undefined, uid: undefined, gid: undefined, killSuidgid: false });
  });

  it('init_out puts flags above bit 31 into flags2', () => {
    const b = Buffer.alloc(W.INIT_OUT_SIZE);
    W.writeInitOut(b, 0, { major: 7, minor: 44, maxReadahead: 1 << 20, flags: (1n << 37n) | (1n << 30n) | 1n, maxBackground: 64, congestionThreshold: 48, maxWrite: 1 << 20, timeGran: 1, maxPages: 256, maxStackDepth: 1 });
    expect(b.readUInt32LE(12)).toBe((1 << 30) + 1);
    expect(b.readUInt32LE(32)).toBe(1 << 5);
    expect(b.readUInt32LE(36)).toBe(1);
    expect(b.readUInt16LE(28)).toBe(256);
  });

  it('notify messages carry unique 0 and the code in the error field', () => {
    const inval = W.encodeNotifyInvalInode(5, -1, 0);
    expect([inval.length, inval.readInt32LE(4), inval.readBigUInt64LE(8)]).toEqual([40, 2, 0n]);
    expect(inval.readBigInt64LE(24)).toBe(-1n);
    const ent = W.encodeNotifyInvalEntry(1, Buffer.from('foo'));
    expect([ent.length, ent.readInt32LE(4), ent.readUInt32LE(24), ent.toString('latin1', 32, 36)]).toEqual([36, 3, 3, 'foo\0']);
    const del = W.encodeNotifyDelete(1, 9, Buffer.from('x'));
    expect([del.length, del.readInt32LE(4), W.getU64(del, 24), del.readUInt32LE(32)]).toEqual([42, 6, 9, 1]);
    expect(W.encodeNotifyResend().readInt32LE(4)).toBe(7);
  });

  it('dirents are 8-byte aligned and packing stops at the size budget', () => {
    const d = new DirentBuffer(64);
    expect(d.add({ ino: 1, off: 1, name: Buffer.from('a'), type: 0o040000 })).toBe(true); // 32 bytes
    expect(d.add({ ino: 2, off: 2, name: Buffer.from('abcdefghi'), type: 0o100000 })).toBe(false); // 40 > 32 left
    expect(d.add({ ino: 3, off: 3, name: Buffer.from('abcdefgh'), type: 0o100000 })).toBe(true); // exactly 32
    expect(d.bytes.length).toBe(W.OUT_HEADER_SIZE + 64);
    const rec = d.bytes.subarray(W.OUT_HEADER_SIZE + 32);
    expect([W.getU64(rec, 0), W.getU64(rec, 8), rec.readUInt32LE(16), rec.readUInt32LE(20)]).toEqual([3, 3, 8, 8]); // DT_REG
    expect(() => d.add({ ino: 4, off: 4, name: Buffer.from('a/b'), type: 0 })).toThrow(RangeError);
  });

  it('direntplus packs "." and ".." with nodeid 0 and reports them as not referenced', () => {
    const e = (nodeid: number): EntryOut => ({ nodeid, generation: 0, entryValid: 1, attrValid: 1, attr });
    const d = new DirentPlusBuffer(4096);
    expect(d.add({ ino: 1, off: 1, name: Buffer.from('.'), type: 0o040000, entry: e(1) })).toBe('noref');
    expect(d.add({ ino: 5, off: 2, name: Buffer.from('f'), type: 0o100000, entry: e(5) })).toBe(true);
    expect(d.add({ ino: 6, off: 3, name: Buffer.from('g'), type: 0o100000, entry: e(0) })).toBe('noref');
    const body = d.bytes.subarray(W.OUT_HEADER_SIZE);
    expect(body.length).toBe(3 * 160);
    expect(W.getU64(body, 0)).toBe(0);
    expect(W.getU64(body, 160)).toBe(5);
    expect(W.getU64(body, 160 + W.ENTRY_OUT_SIZE)).toBe(5);
  });
});
