// rename(2) with every POSIX rule, RENAME_NOREPLACE and RENAME_EXCHANGE, in one transaction.
// Directory moves keep the '..' bookkeeping right: the moved directory's parent pointer, and
// nlink of the old and new parent (each subdirectory's '..' is a link to its parent).
import { fsError } from '../common/errno';
import { RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT_INO, type Attr } from './api';
import { Core, getDentry, parentDir } from './core';
import { encodeDentry, encodeReaddirEntry, InodeRec, nowTs, S_IFDIR, toAttr } from './inode';
import { checkName, dentryKey, readdirKey } from './keys';
import { addEntry, checkEmpty, removeEntry } from './ns-entries';
import { dropLink } from './orphans';
import type { Tx } from './txn';

/** EINVAL if `dir` is `target` or below it: a directory cannot move into its own subtree. */
async function checkNotInside(tx: Tx, target: number, dir: number): Promise<void> {
  for (let ino = dir, depth = 0; ; depth++) {
    if (ino === target) throw fsError('EINVAL', `cannot move directory ${target} into its own subtree`);
    if (ino === ROOT_INO) return;
    if (depth > 4096) throw fsError('ELOOP', `directory ${dir}: parent chain too deep or cyclic`);
    const rec = await tx.inode(ino);
    if (!rec || rec.parent === 0) return;
    ino = rec.parent;
  }
}

function ctimeNow(tx: Tx, rec: InodeRec): void {
  rec.ctime = nowTs();
  tx.markDirty(rec);
  tx.event({ kind: 'attr', ino: rec.ino });
}

/** A directory changes parents: fix its '..' pointer and both parents' nlink. */
function reparentDir(tx: Tx, child: InodeRec, from: InodeRec, to: InodeRec): void {
  if (from.ino === to.ino) return;
  child.parent = to.ino;
  tx.markDirty(child);
  from.nlink--;
  to.nlink++;
}

/**
 * Returns the empty directory the rename replaced, if any: removed, its last attributes (nlink 0,
 * size 0, ctime now) are for whoever still holds it (an open fd, a cwd), as after rmdir.
 */
export function rename(
  core: Core, fsId: number, parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number,
): Promise<Attr | undefined> {
  checkName(name);
  checkName(newName, 'new name');
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0) return Promise.reject(fsError('EINVAL', `unknown rename flags 0x${flags.toString(16)}`));
  if (flags === (RENAME_NOREPLACE | RENAME_EXCHANGE)) return Promise.reject(fsError('EINVAL', 'RENAME_NOREPLACE and RENAME_EXCHANGE together'));
  return core.run(fsId, 'rename', async (tx) => {
    const from = await parentDir(tx, parent);
    const to = await parentDir(tx, newParent);
    const src = await getDentry(tx, parent, name);
    if (!src) throw fsError('ENOENT', `'${name.toString()}' does not exist in directory ${parent}`);
    const dst = await getDentry(tx, newParent, newName);
    if (parent === newParent && name.equals(newName)) {
      if (flags & RENAME_NOREPLACE) throw fsError('EEXIST', `'${newName.toString()}' exists`);
      return undefined; // renaming to itself: nothing happens
    }
    const srcRec = await tx.mustInode(src.ino);
    const srcDir = src.type === S_IFDIR;

    if (flags & RENAME_EXCHANGE) {
      if (!dst) throw fsError('ENOENT', `'${newName.toString()}' does not exist in directory ${newParent} (RENAME_EXCHANGE)`);
      const dstRec = await tx.mustInode(dst.ino);
      const dstDir = dst.type === S_IFDIR;
      if (srcDir) await checkNotInside(tx, src.ino, newParent);
      if (dstDir) await checkNotInside(tx, dst.ino, parent);
      // Each name keeps its cookie and now points at the other inode.
      tx.put(dentryKey(fsId, parent, name), encodeDentry({ ino: dst.ino, type: dst.type, cookie: src.cookie }));
      tx.put(readdirKey(fsId, parent, src.cookie), encodeReaddirEntry(dst.ino, dst.type, name));
      tx.put(dentryKey(fsId, newParent, newName), encodeDentry({ ino: src.ino, type: src.type, cookie: dst.cookie }));
      tx.put(readdirKey(fsId, newParent, dst.cookie), encodeReaddirEntry(src.ino, src.type, newName));
      if (srcDir) reparentDir(tx, srcRec, from, to);
      if (dstDir) reparentDir(tx, dstRec, to, from);
      for (const d of new Set([from, to])) {
        const now = nowTs();
        d.mtime = now;
        d.ctime = now;
        tx.markDirty(d);
        tx.event({ kind: 'attr', ino: d.ino });
      }
      tx.event({ kind: 'entry', parent, name });
      tx.event({ kind: 'entry', parent: newParent, name: newName });
      ctimeNow(tx, srcRec);
      if (dst.ino !== src.ino) ctimeNow(tx, dstRec);
      return undefined;
    }

    let removedDir: Attr | undefined;
    if (dst) {
      if (flags & RENAME_NOREPLACE) throw fsError('EEXIST', `'${newName.toString()}' already exists in directory ${newParent}`);
      // Two names of one inode: POSIX says rename does nothing.
      if (dst.ino === src.ino) return undefined;
      const dstRec = await tx.mustInode(dst.ino);
      const dstDir = dst.type === S_IFDIR;
      if (srcDir && !dstDir) throw fsError('ENOTDIR', `cannot replace non-directory '${newName.toString()}' with a directory`);
      if (!srcDir && dstDir) throw fsError('EISDIR', `cannot replace directory '${newName.toString()}' with a non-directory`);
      if (srcDir) await checkNotInside(tx, src.ino, newParent);
      if (dstDir) {
        await checkEmpty(tx, dstRec);
        to.nlink--; // the replaced directory's '..'
        removedDir = toAttr({ ...dstRec, nlink: 0, size: 0, ctime: nowTs() });
      }
      removeEntry(tx, to, newName, dst);
      await dropLink(core, tx, dstRec);
    } else if (srcDir) {
      await checkNotInside(tx, src.ino, newParent);
    }
    removeEntry(tx, from, name, src);
    if (srcDir) reparentDir(tx, srcRec, from, to);
    addEntry(tx, to, newName, src.ino, srcRec.mode);
    ctimeNow(tx, srcRec);
    return removedDir;
  });
}
