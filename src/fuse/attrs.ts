// Conversions between the metaserver's Attr and the kernel's fuse_attr, with the client's local
// view (uncommitted writes change size and mtime before the metaserver knows).
import type { Attr } from '../metaserver/api';
import type { FuseAttr, Timespec } from './protocol/raw-fs';
import type { InodeData } from './inode-data';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
const S_IXGRP = 0o010;

/**
 * The privilege bits a write, truncate or chown clears: S_ISUID, and S_ISGID when the file is
 * group-executable (without group execute it marks mandatory locking, and stays) — Linux's rule.
 */
export function privBits(mode: number): number {
  return (mode & S_ISUID) | (mode & S_IXGRP ? mode & S_ISGID : 0);
}

export function toFuseAttr(a: Attr, local?: InodeData): FuseAttr {
  let size = a.size;
  let mtime: Timespec = a.mtime;
  let ctime: Timespec = a.ctime;
  if (local && (local.handles > 0 || local.dirty.size > 0 || local.sizeDirty)) {
    // Our uncommitted writes (or passthrough writes the kernel made) are newer than the metaserver.
    if (local.writablePtHandles > 0 && !local.backing.closed) size = local.backing.stat().size;
    else if (local.sizeDirty || local.dirty.size > 0) size = local.size;
    if (local.localMtime && later(local.localMtime, mtime)) {
      mtime = local.localMtime;
      if (later(mtime, ctime)) ctime = mtime;
    }
  }
  return {
    ino: a.ino,
    size,
    blocks: blocksOf(a, size, local),
    atime: a.atime,
    mtime,
    ctime,
    mode: a.mode,
    nlink: a.nlink,
    uid: a.uid,
    gid: a.gid,
    rdev: a.rdev,
    blksize: 4096,
  };
}

/**
 * st_blocks: what the datastore holds for the file (the metaserver counts its chunk objects, so
 * holes and punched-out chunks count nothing), plus our writes not committed yet.
 */
function blocksOf(a: Attr, size: number, local?: InodeData): number {
  if ((a.mode & S_IFMT) !== S_IFREG) return Math.ceil(size / 512);
  // Writes through a passthrough handle are seen in the backing file only.
  const pt = new Set(local?.passthroughWrittenChunks());
  if (local && local.dataVersion >= 0 && (local.dirty.size > 0 || local.uploaded.size > 0 || local.sizeDirty || pt.size > 0)) {
    const cs = local.chunkSize;
    let bytes = 0;
    const seen = new Set<number>();
    for (const i of [...local.dirty.keys(), ...local.uploaded.keys(), ...pt, ...local.refs.keys()]) {
      if (seen.has(i) || i * cs >= size) continue;
      seen.add(i);
      const written = local.dirty.has(i) || local.uploaded.has(i) || pt.has(i);
      const hi = Math.min((i + 1) * cs, size);
      // Written chunks will be stored up to the end of their data (see FileData's upload).
      const held = local.zeroed.has(i) ? 0 : written ? local.backing.dataEnd(i * cs, hi) - i * cs : local.refs.get(i)!.length;
      bytes += roundBlock(Math.min(held, size - i * cs));
    }
    return bytes / 512;
  }
  return a.blocks ?? Math.ceil(size / 512);
}

function roundBlock(n: number): number {
  return Math.ceil(n / 4096) * 4096;
}

function later(a: Timespec, b: Timespec): boolean {
  return a.sec > b.sec || (a.sec === b.sec && a.nsec > b.nsec);
}
