// Inode attributes and extended attributes: setattr (chmod, chown, truncate, utimes) and
// get/set/list/removexattr with Linux's flags and limits.
import { fsError } from '../common/errno';
import { Attr, Caller, SetAttrRequest, Timespec, XATTR_CREATE, XATTR_NAME_MAX, XATTR_REPLACE, XATTR_SIZE_MAX } from './api';
import type { Core } from './core';
import { nowTs, S_IFMT, toAttr } from './inode';
import { inodeKey, keyName, xattrKey, xattrPrefix } from './keys';
import { checkSize, requireRegular, truncateChunks } from './ns-data';

function checkTime(t: Timespec | 'now' | undefined, what: string): void {
  if (t === undefined || t === 'now') return;
  if (typeof t !== 'object' || !Number.isFinite(t.sec) || !Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec > 999_999_999) {
    throw fsError('EINVAL', `${what} is not a valid time`);
  }
}

function checkId(v: number | undefined, what: string): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 0xffffffff)) throw fsError('EINVAL', `${what} ${v} is not a valid id`);
}

export function setattr(core: Core, fsId: number, ino: number, req: SetAttrRequest, _caller: Caller): Promise<Attr> {
  if (req.mode !== undefined && (!Number.isInteger(req.mode) || req.mode < 0)) throw fsError('EINVAL', `mode ${req.mode} is not valid`);
  checkId(req.uid, 'uid');
  checkId(req.gid, 'gid');
  if (req.size !== undefined) checkSize(req.size);
  checkTime(req.atime, 'atime');
  checkTime(req.mtime, 'mtime');
  checkTime(req.ctime, 'ctime');
  return core.run(fsId, 'setattr', async (tx) => {
    const rec = await tx.mustInode(ino);
    const now = nowTs();
    // Only permission bits change: the file type is fixed at creation.
    if (req.mode !== undefined) rec.mode = (rec.mode & S_IFMT) | (req.mode & 0o7777);
    if (req.uid !== undefined) rec.uid = req.uid;
    if (req.gid !== undefined) rec.gid = req.gid;
    if (req.size !== undefined) {
      requireRegular(rec, 'truncate');
      if (req.size !== rec.size) {
        const { chunkSize } = await core.fs(fsId);
        await truncateChunks(core, tx, rec, req.size, chunkSize);
        rec.size = req.size;
        rec.dataVersion++;
        if (req.mtime === undefined) rec.mtime = now;
        tx.event({ kind: 'data', ino, dataVersion: rec.dataVersion });
      }
    }
    if (req.atime !== undefined) rec.atime = req.atime === 'now' ? now : { sec: req.atime.sec, nsec: req.atime.nsec };
    if (req.mtime !== undefined) rec.mtime = req.mtime === 'now' ? now : { sec: req.mtime.sec, nsec: req.mtime.nsec };
    rec.ctime = req.ctime ? { sec: req.ctime.sec, nsec: req.ctime.nsec } : now;
    tx.markDirty(rec);
    tx.event({ kind: 'attr', ino });
    return toAttr(rec);
  });
}

/** Linux: an empty or too long xattr name is ERANGE. */
function xattrName(name: string): Buffer {
  if (typeof name !== 'string') throw fsError('EINVAL', 'xattr name must be a string');
  const b = Buffer.from(name, 'utf8');
  if (b.length === 0) throw fsError('ERANGE', 'xattr name is empty');
  if (b.length > XATTR_NAME_MAX) throw fsError('ERANGE', `xattr name is ${b.length} bytes, the limit is ${XATTR_NAME_MAX}`);
  if (b.includes(0)) throw fsError('EINVAL', 'xattr name contains a NUL byte');
  return b;
}

async function mustExist(core: Core, fsId: number, ino: number): Promise<void> {
  await core.fs(fsId);
  if (!(await core.engine.get(inodeKey(fsId, ino)))) throw fsError('ENOENT', `inode ${ino} does not exist`);
}

export function getxattr(core: Core, fsId: number, ino: number, name: string): Promise<Buffer> {
  return core.measure('getxattr', async () => {
    const key = xattrKey(fsId, ino, xattrName(name));
    await mustExist(core, fsId, ino);
    const v = await core.engine.get(key);
    if (!v) throw fsError('ENODATA', `no xattr '${name}' on inode ${ino}`);
    return v.value;
  });
}

export function setxattr(core: Core, fsId: number, ino: number, name: string, value: Buffer, flags: number): Promise<void> {
  const n = xattrName(name);
  if (!Number.isInteger(flags) || (flags & ~(XATTR_CREATE | XATTR_REPLACE)) !== 0 || flags === (XATTR_CREATE | XATTR_REPLACE)) {
    throw fsError('EINVAL', `bad setxattr flags ${flags}`);
  }
  if (value.length > XATTR_SIZE_MAX) throw fsError('E2BIG', `xattr value is ${value.length} bytes, the limit is ${XATTR_SIZE_MAX}`);
  return core.run(fsId, 'setxattr', async (tx) => {
    const rec = await tx.mustInode(ino);
    const key = xattrKey(fsId, ino, n);
    const exists = (await tx.get(key)) !== undefined;
    if (flags === XATTR_CREATE && exists) throw fsError('EEXIST', `xattr '${name}' already exists`);
    if (flags === XATTR_REPLACE && !exists) throw fsError('ENODATA', `no xattr '${name}' to replace`);
    tx.put(key, Buffer.from(value));
    rec.ctime = nowTs();
    tx.markDirty(rec);
    tx.event({ kind: 'attr', ino });
  });
}

export function listxattr(core: Core, fsId: number, ino: number): Promise<string[]> {
  return core.measure('listxattr', async () => {
    await mustExist(core, fsId, ino);
    const entries = await core.engine.range({ prefix: xattrPrefix(fsId, ino) });
    return entries.map((e) => keyName(e.key).toString('utf8'));
  });
}

export function removexattr(core: Core, fsId: number, ino: number, name: string): Promise<void> {
  const n = xattrName(name);
  return core.run(fsId, 'removexattr', async (tx) => {
    const rec = await tx.mustInode(ino);
    const key = xattrKey(fsId, ino, n);
    if ((await tx.get(key)) === undefined) throw fsError('ENODATA', `no xattr '${name}' on inode ${ino}`);
    tx.del(key);
    rec.ctime = nowTs();
    tx.markDirty(rec);
    tx.event({ kind: 'attr', ino });
  });
}
