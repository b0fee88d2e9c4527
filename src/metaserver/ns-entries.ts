// Ops that add or remove one directory entry: mknod, mkdir, symlink, link, unlink, rmdir.
// Each runs as one transaction: the entry ('D' + 'R'), the inode, the parent's nlink/mtime/ctime.
import { fsError } from '../common/errno';
import type { Attr, Caller, UnlinkResult } from './api';
import { Core, getDentry, parentDir, touchDir } from './core';
import {
  encodeDentry, encodeReaddirEntry, FIRST_COOKIE, InodeRec, isDir, nowTs, S_IFBLK, S_IFCHR, S_IFDIR,
  S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, S_ISGID, toAttr,
} from './inode';
import { ALLOC_INO, checkName, dentryKey, readdirKey, readdirPrefix } from './keys';
import { dropLink, purgeInode } from './orphans';
import type { Tx } from './txn';
import type { Dentry } from './inode';

export const PATH_MAX = 4096;

/** Adds name -> child in dir with the next cookie; the caller checked the name is free. */
export function addEntry(tx: Tx, dir: InodeRec, name: Buffer, ino: number, mode: number): void {
  const cookie = dir.nextCookie++;
  const type = mode & S_IFMT;
  tx.put(dentryKey(tx.fsId, dir.ino, name), encodeDentry({ ino, type, cookie }));
  tx.put(readdirKey(tx.fsId, dir.ino, cookie), encodeReaddirEntry(ino, type, name));
  touchDir(tx, dir);
  tx.event({ kind: 'entry', parent: dir.ino, name });
}

export function removeEntry(tx: Tx, dir: InodeRec, name: Buffer, d: Dentry): void {
  tx.del(dentryKey(tx.fsId, dir.ino, name));
  tx.del(readdirKey(tx.fsId, dir.ino, d.cookie));
  touchDir(tx, dir);
  tx.event({ kind: 'entry', parent: dir.ino, name });
}

function newInode(ino: number, mode: number, caller: Caller, parent: number): InodeRec {
  const now = nowTs();
  return {
    ino, generation: 1, mode, nlink: isDir(mode) ? 2 : 1, uid: caller.uid >>> 0, gid: caller.gid >>> 0,
    rdev: 0, size: 0, atime: now, mtime: now, ctime: now, dataVersion: 0, nextCookie: FIRST_COOKIE,
    parent: isDir(mode) ? parent : 0, alloc: 0,
  };
}

/**
 * BSD group semantics under a setgid directory (what Linux's inode_init_owner does for local file
 * systems; for FUSE it is the server's job): the new inode takes the directory's group, and a new
 * subdirectory stays setgid. The kernel has already stripped S_ISGID from a non-directory's mode
 * when the creator is neither in that group nor privileged (mode_strip_sgid).
 */
function inheritSetgid(dir: InodeRec, rec: InodeRec): void {
  if (!(dir.mode & S_ISGID)) return;
  rec.gid = dir.gid;
  if (isDir(rec.mode)) rec.mode |= S_ISGID;
}

function checkCaller(caller: Caller): void {
  if (!caller || !Number.isInteger(caller.uid) || !Number.isInteger(caller.gid)) throw fsError('EINVAL', 'caller uid/gid missing');
}

/** The common shape of mknod/mkdir/symlink: a fresh inode under a free name. */
async function create(core: Core, fsId: number, op: string, parent: number, name: Buffer, make: (ino: number) => InodeRec): Promise<Attr> {
  checkName(name);
  const ino = await core.alloc.next(fsId, ALLOC_INO);
  return core.run(fsId, op, async (tx) => {
    const dir = await parentDir(tx, parent);
    if (await getDentry(tx, parent, name)) throw fsError('EEXIST', `'${name.toString()}' already exists in directory ${parent}`);
    const rec = make(ino);
    inheritSetgid(dir, rec);
    if (isDir(rec.mode)) {
      dir.nlink++;
    }
    tx.createInode(rec);
    addEntry(tx, dir, name, ino, rec.mode);
    return toAttr(rec);
  });
}

export function mknod(core: Core, fsId: number, parent: number, name: Buffer, mode: number, rdev: number, caller: Caller): Promise<Attr> {
  checkCaller(caller);
  let type = mode & S_IFMT;
  if (type === 0) type = S_IFREG;
  // Linux's may_mknod(): a directory type is EPERM, any other unknown type EINVAL.
  if (type === S_IFDIR) return Promise.reject(fsError('EPERM', 'mknod cannot create a directory (use mkdir)'));
  if (![S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK].includes(type)) {
    return Promise.reject(fsError('EINVAL', `mknod: unsupported file type 0o${type.toString(8)}`));
  }
  const dev = type === S_IFCHR || type === S_IFBLK ? rdev >>> 0 : 0;
  return create(core, fsId, 'mknod', parent, name, (ino) => ({ ...newInode(ino, type | (mode & 0o7777), caller, parent), rdev: dev }));
}

export function mkdir(core: Core, fsId: number, parent: number, name: Buffer, mode: number, caller: Caller): Promise<Attr> {
  checkCaller(caller);
  return create(core, fsId, 'mkdir', parent, name, (ino) => newInode(ino, S_IFDIR | (mode & 0o7777), caller, parent));
}

export function symlink(core: Core, fsId: number, parent: number, name: Buffer, target: Buffer, caller: Caller): Promise<Attr> {
  checkCaller(caller);
  if (target.length === 0) return Promise.reject(fsError('ENOENT', 'symlink target is empty'));
  if (target.length >= PATH_MAX) return Promise.reject(fsError('ENAMETOOLONG', `symlink target is ${target.length} bytes, the limit is ${PATH_MAX - 1}`));
  if (target.includes(0)) return Promise.reject(fsError('EINVAL', 'symlink target contains a NUL byte'));
  return create(core, fsId, 'symlink', parent, name, (ino) => ({
    ...newInode(ino, S_IFLNK | 0o777, caller, parent), size: target.length, target: Buffer.from(target),
  }));
}

export function link(core: Core, fsId: number, ino: number, newParent: number, newName: Buffer): Promise<Attr> {
  checkName(newName);
  return core.run(fsId, 'link', async (tx) => {
    const rec = await tx.mustInode(ino);
    if (isDir(rec.mode)) throw fsError('EPERM', `inode ${ino} is a directory: hard links to directories are not allowed`);
    if (rec.nlink === 0) throw fsError('ENOENT', `inode ${ino} was unlinked`);
    const dir = await parentDir(tx, newParent);
    if (await getDentry(tx, newParent, newName)) throw fsError('EEXIST', `'${newName.toString()}' already exists in directory ${newParent}`);
    if (rec.nlink >= 0xffffffff) throw fsError('EMLINK', `inode ${ino} has too many links`);
    rec.nlink++;
    rec.ctime = nowTs();
    tx.markDirty(rec);
    tx.event({ kind: 'attr', ino });
    addEntry(tx, dir, newName, ino, rec.mode);
    return toAttr(rec);
  });
}

export function unlink(core: Core, fsId: number, parent: number, name: Buffer): Promise<UnlinkResult> {
  checkName(name);
  return core.run(fsId, 'unlink', async (tx) => {
    const dir = await parentDir(tx, parent);
    const d = await getDentry(tx, parent, name);
    if (!d) throw fsError('ENOENT', `'${name.toString()}' does not exist in directory ${parent}`);
    if (d.type === S_IFDIR) throw fsError('EISDIR', `'${name.toString()}' is a directory (use rmdir)`);
    const rec = await tx.mustInode(d.ino);
    removeEntry(tx, dir, name, d);
    const orphaned = await dropLink(core, tx, rec);
    return { ino: d.ino, nlink: rec.nlink, orphaned };
  });
}

/** ENOTEMPTY unless the directory has no entries (its inode read guards against racing creates). */
export async function checkEmpty(tx: Tx, dir: InodeRec): Promise<void> {
  const any = await tx.range(readdirPrefix(tx.fsId, dir.ino), 1);
  if (any.length > 0) throw fsError('ENOTEMPTY', `directory ${dir.ino} is not empty`);
}

/**
 * Returns the removed directory's last attributes (nlink 0, size 0, ctime now, as ext4 leaves
 * them): whoever still holds it (an open fd, a cwd) can fstat it, but no longer ask for it.
 */
export function rmdir(core: Core, fsId: number, parent: number, name: Buffer): Promise<Attr> {
  checkName(name);
  return core.run(fsId, 'rmdir', async (tx) => {
    const dir = await parentDir(tx, parent);
    const d = await getDentry(tx, parent, name);
    if (!d) throw fsError('ENOENT', `'${name.toString()}' does not exist in directory ${parent}`);
    if (d.type !== S_IFDIR) throw fsError('ENOTDIR', `'${name.toString()}' is not a directory`);
    const child = await tx.mustInode(d.ino);
    await checkEmpty(tx, child);
    removeEntry(tx, dir, name, d);
    dir.nlink--;
    purgeInode(core, tx, child);
    return toAttr({ ...child, nlink: 0, size: 0, ctime: nowTs() });
  });
}
