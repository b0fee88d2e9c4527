// Open handles and orphans: a session that opened an inode keeps it alive after its last link is
// gone (nlink 0, listed under 'O') until the session releases it or expires; only then is the
// inode purged and its chunks handed to the GC queue. Holders of one inode live in one key ('H'),
// so every change to them is a compare on that key and two sessions releasing at once cannot
// both believe the other still holds the inode.
import { Errno, FsError, fsError } from '../common/errno';
import type { Core } from './core';
import { InodeRec, isDir, isReg, nowTs } from './inode';
import { holdKey, orphanKey, sessionKey, sessionPrefix, decodeSessionKey } from './keys';
import type { Tx } from './txn';

type Holders = Record<string, number>;

async function readHolders(tx: Tx, ino: number): Promise<Holders> {
  const raw = await tx.get(holdKey(tx.fsId, ino));
  return raw ? (JSON.parse(raw.toString()) as Holders) : {};
}

function writeHolders(tx: Tx, ino: number, h: Holders): void {
  if (Object.keys(h).length === 0) tx.del(holdKey(tx.fsId, ino));
  else tx.put(holdKey(tx.fsId, ino), Buffer.from(JSON.stringify(h)));
}

/** Deletes the inode now and queues its chunks and xattrs for collection. */
export function purgeInode(core: Core, tx: Tx, rec: InodeRec): void {
  tx.deleteInode(rec.ino);
  tx.del(orphanKey(tx.fsId, rec.ino));
  core.gc.enqueue(tx, { fsId: tx.fsId, ino: rec.ino, noData: !isReg(rec.mode) }, 0);
  tx.event({ kind: 'attr', ino: rec.ino });
}

/**
 * One link of `rec` went away (unlink, rename over it). Returns whether the inode survives as an
 * orphan. Directories have no open-handle protection: an empty removed directory goes at once.
 */
export async function dropLink(core: Core, tx: Tx, rec: InodeRec): Promise<boolean> {
  if (isDir(rec.mode)) {
    purgeInode(core, tx, rec);
    return false;
  }
  rec.nlink = Math.max(0, rec.nlink - 1);
  rec.ctime = nowTs();
  if (rec.nlink > 0) {
    tx.markDirty(rec);
    tx.event({ kind: 'attr', ino: rec.ino });
    return false;
  }
  const holders = await readHolders(tx, rec.ino);
  if (Object.keys(holders).length > 0) {
    tx.markDirty(rec);
    tx.put(orphanKey(tx.fsId, rec.ino), Buffer.from(String(Date.now())));
    tx.event({ kind: 'attr', ino: rec.ino });
    return true;
  }
  if (isReg(rec.mode) && core.gc.unlinkGraceMs > 0) {
    // A client may have it open and not registered yet (it registers lazily): keep it for the
    // unlink grace; a registration in that window makes it a held orphan (see settleUnlinked).
    tx.markDirty(rec);
    tx.put(orphanKey(tx.fsId, rec.ino), Buffer.from(String(Date.now())));
    core.gc.enqueue(tx, { fsId: tx.fsId, ino: rec.ino, unlinked: true }, core.gc.unlinkGraceMs);
    tx.event({ kind: 'attr', ino: rec.ino });
    return false;
  }
  purgeInode(core, tx, rec);
  return false;
}

/** The unlink grace of an unheld file ended: purge it unless a session opened it meanwhile. */
export async function settleUnlinked(core: Core, fsId: number, ino: number): Promise<void> {
  await core.run(fsId, 'settleUnlinked', async (tx) => {
    const rec = await tx.inode(ino);
    if (!rec || rec.nlink > 0) return;
    if (Object.keys(await readHolders(tx, ino)).length > 0) return; // its last release purges it
    purgeInode(core, tx, rec);
  });
}

export function checkSession(sessionId: string): void {
  if (typeof sessionId !== 'string' || sessionId.length === 0) throw fsError('EINVAL', 'session id is empty');
  if (Buffer.byteLength(sessionId) > 200) throw fsError('EINVAL', 'session id is longer than 200 bytes');
}

export async function openInode(core: Core, fsId: number, ino: number, sessionId: string): Promise<void> {
  checkSession(sessionId);
  await core.run(fsId, 'openInode', async (tx) => {
    const rec = await tx.mustInode(ino);
    if (rec.nlink === 0 && isDir(rec.mode)) throw fsError('ENOENT', `directory ${ino} was removed`);
    const h = await readHolders(tx, ino);
    h[sessionId] = (h[sessionId] ?? 0) + 1;
    writeHolders(tx, ino, h);
    if (h[sessionId] === 1) tx.put(sessionKey(sessionId, fsId, ino), Buffer.alloc(0));
  });
}

/** Drops one open (or, with all, every open) of the session; purges an orphan left with none. */
async function release(core: Core, fsId: number, ino: number, sessionId: string, all: boolean): Promise<boolean> {
  return core.run(fsId, all ? 'expireSession' : 'releaseInode', async (tx) => {
    const h = await readHolders(tx, ino);
    const n = h[sessionId];
    if (!n) return false; // not held: releasing twice is harmless
    if (all || n <= 1) {
      delete h[sessionId];
      tx.del(sessionKey(sessionId, fsId, ino));
    } else h[sessionId] = n - 1;
    writeHolders(tx, ino, h);
    if (Object.keys(h).length === 0) {
      const rec = await tx.inode(ino);
      if (rec && rec.nlink === 0) purgeInode(core, tx, rec);
    }
    return true;
  });
}

export async function releaseInode(core: Core, fsId: number, ino: number, sessionId: string): Promise<void> {
  checkSession(sessionId);
  await core.fs(fsId);
  await release(core, fsId, ino, sessionId, false);
}

export async function expireSession(core: Core, sessionId: string): Promise<number> {
  checkSession(sessionId);
  let released = 0;
  for (;;) {
    const held = await core.engine.range({ prefix: sessionPrefix(sessionId), limit: 256 });
    if (held.length === 0) return released;
    for (const e of held) {
      const { fsId, ino } = decodeSessionKey(e.key);
      let done = false;
      try {
        done = await release(core, fsId, ino, sessionId, true);
      } catch (err) {
        // Only a vanished file system makes the entry stale; anything else is retried by the caller.
        if (!(err instanceof FsError && err.errno === Errno.ENOENT)) throw err;
      }
      if (done) released++;
      else await core.engine.txn({ deletes: [e.key] }); // stale index entry
    }
  }
}
