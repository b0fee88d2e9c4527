// Consistency checker for a namespace store (any KvEngine; offline, or on a quiet store): dangling
// and half-written dentries, link counts, directory nlink and '..' pointers, orphans versus nlink 0,
// unreachable inodes, chunk maps past the file size, stale xattrs/holders. Optionally repairs
// what has one obvious fix. Loads one file system at a time into memory.
import type { KvEngine } from './engine';
import type { GcItem } from './gc';
import {
  decodeChunk, decodeDentry, decodeFs, decodeInode, decodeReaddirEntry, encodeInode,
  encodeReaddirEntry, InodeRec, isDir, readU64Value, S_IFMT, u64Value,
} from './inode';
import {
  ALLOC_INO, ALLOC_VERSION, allFsPrefix, allocKey, chunkKey, chunkPrefix, dentryKey, dentryPrefix, gcKey, gcPrefix, holdPrefix, inodeKey,
  inodePrefix, keyName, keyU64, keyU64b, orphanKey, orphanPrefix, readdirKey, readdirPrefix, xattrPrefix,
} from './keys';
import { ROOT_INO } from './api';

export interface FsckIssue {
  readonly fsId: number;
  readonly kind: string;
  readonly ino?: number;
  readonly detail: string;
  /** Whether --repair fixed it. */
  repaired?: boolean;
}

export interface FsckReport {
  readonly fileSystems: number;
  readonly inodes: number;
  readonly dentries: number;
  readonly orphans: number;
  readonly gcQueued: number;
  readonly issues: FsckIssue[];
}

export interface FsckOptions {
  readonly repair?: boolean;
}

interface Repairs {
  puts: Array<{ key: Buffer; value: Buffer }>;
  deletes: Buffer[];
}

/** Checks every file system in the store; with repair, applies the fixes in one transaction per fs. */
export async function fsck(engine: KvEngine, opts: FsckOptions = {}): Promise<FsckReport> {
  const gcEntries = await engine.range({ prefix: gcPrefix() });
  const purging = new Set<string>();
  for (const e of gcEntries) {
    const item = JSON.parse(e.value.toString()) as GcItem;
    if (!item.chunk) purging.add(`${item.fsId}:${item.ino}`);
  }
  const report = { fileSystems: 0, inodes: 0, dentries: 0, orphans: 0, gcQueued: gcEntries.length, issues: [] as FsckIssue[] };
  for (const fsEntry of await engine.range({ prefix: allFsPrefix() })) {
    const fsRec = decodeFs(fsEntry.value);
    report.fileSystems++;
    await checkFs(engine, fsRec.fsId, fsRec.chunkSize, purging, report, opts);
  }
  return report;
}

async function checkFs(
  engine: KvEngine, fsId: number, chunkSize: number, purging: Set<string>,
  report: { inodes: number; dentries: number; orphans: number; issues: FsckIssue[] }, opts: FsckOptions,
): Promise<void> {
  const fix: Repairs = { puts: [], deletes: [] };
  const issue = (kind: string, detail: string, ino?: number, repair?: () => void) => {
    const i: FsckIssue = { fsId, kind, ino, detail };
    if (opts.repair && repair) {
      repair();
      i.repaired = true;
    }
    report.issues.push(i);
  };
  const purge = (ino: number) => {
    fix.deletes.push(inodeKey(fsId, ino), orphanKey(fsId, ino));
    const item: GcItem = { fsId, ino };
    fix.puts.push({ key: gcKey(Date.now(), Math.floor(Math.random() * 2 ** 47)), value: Buffer.from(JSON.stringify(item)) });
  };

  const inodes = new Map<number, InodeRec>();
  for (const e of await engine.range({ prefix: inodePrefix(fsId) })) inodes.set(keyU64(e.key), decodeInode(keyU64(e.key), e.value));
  report.inodes += inodes.size;
  if (!inodes.has(ROOT_INO)) issue('missing-root', 'the root directory inode is missing');

  const links = new Map<number, number>();
  const subdirs = new Map<number, number>();
  const dirParent = new Map<number, number>();
  const maxCookie = new Map<number, number>();
  const children = new Map<number, number[]>();
  const dentries = await engine.range({ prefix: dentryPrefix(fsId) });
  report.dentries += dentries.length;
  const readdir = new Map<string, { ino: number; type: number; name: Buffer }>();
  for (const e of await engine.range({ prefix: readdirPrefix(fsId) })) {
    readdir.set(`${keyU64(e.key)}:${keyU64b(e.key)}`, decodeReaddirEntry(e.value));
  }
  for (const e of dentries) {
    const parent = keyU64(e.key);
    const name = Buffer.from(keyName(e.key));
    const d = decodeDentry(e.value);
    const label = `'${name.toString()}' in ${parent}`;
    const p = inodes.get(parent);
    const child = inodes.get(d.ino);
    const drop = () => fix.deletes.push(dentryKey(fsId, parent, name), readdirKey(fsId, parent, d.cookie));
    if (!p || !isDir(p.mode)) {
      issue('dangling-dentry', `${label}: parent ${p ? 'is not a directory' : 'does not exist'}`, d.ino, drop);
      continue;
    }
    if (!child) {
      issue('dangling-dentry', `${label} -> inode ${d.ino} which does not exist`, d.ino, drop);
      continue;
    }
    if ((child.mode & S_IFMT) !== d.type) issue('dentry-type', `${label}: type 0o${d.type.toString(8)} but inode is 0o${(child.mode & S_IFMT).toString(8)}`, d.ino);
    const rkey = `${parent}:${d.cookie}`;
    const r = readdir.get(rkey);
    if (!r || r.ino !== d.ino || !r.name.equals(name)) {
      issue('readdir-index', `${label}: readdir entry at cookie ${d.cookie} missing or different`, d.ino, () =>
        fix.puts.push({ key: readdirKey(fsId, parent, d.cookie), value: encodeReaddirEntry(d.ino, d.type, name) }));
    }
    readdir.delete(rkey);
    maxCookie.set(parent, Math.max(maxCookie.get(parent) ?? 0, d.cookie));
    links.set(d.ino, (links.get(d.ino) ?? 0) + 1);
    let kids = children.get(parent);
    if (!kids) children.set(parent, (kids = []));
    kids.push(d.ino);
    if (isDir(child.mode)) {
      subdirs.set(parent, (subdirs.get(parent) ?? 0) + 1);
      dirParent.set(d.ino, parent);
    }
  }
  for (const [k, r] of readdir) {
    const [parent, cookie] = k.split(':').map(Number);
    issue('stale-readdir-entry', `readdir entry '${r.name.toString()}' at cookie ${cookie} in ${parent} has no dentry`, r.ino, () =>
      fix.deletes.push(readdirKey(fsId, parent, cookie)));
  }

  const orphanSet = new Set((await engine.range({ prefix: orphanPrefix(fsId) })).map((e) => keyU64(e.key)));
  report.orphans += orphanSet.size;
  const held = new Map<number, number>();
  for (const e of await engine.range({ prefix: holdPrefix(fsId) })) {
    const h = JSON.parse(e.value.toString()) as Record<string, number>;
    held.set(keyU64(e.key), Object.keys(h).length);
  }
  // Everything linked must hang off the root: a directory cycle has link counts that look fine.
  const reachable = new Set<number>([ROOT_INO]);
  for (const queue = [ROOT_INO]; queue.length > 0;) {
    for (const c of children.get(queue.pop()!) ?? []) {
      if (!reachable.has(c)) {
        reachable.add(c);
        queue.push(c);
      }
    }
  }
  for (const ino of links.keys()) {
    if (!reachable.has(ino) && inodes.has(ino)) issue('detached', `inode ${ino} is linked but not reachable from the root (directory cycle?)`, ino);
  }

  let maxIno = 0;
  for (const [ino, rec] of inodes) {
    maxIno = Math.max(maxIno, ino);
    const n = links.get(ino) ?? 0;
    const save = (edit: (r: InodeRec) => void) => () => {
      edit(rec);
      fix.puts.push({ key: inodeKey(fsId, ino), value: encodeInode(rec) });
    };
    if (isDir(rec.mode)) {
      const want = 2 + (subdirs.get(ino) ?? 0);
      if (ino !== ROOT_INO && n === 0) {
        issue('unreachable-inode', `directory ${ino} has no entry in any directory`, ino, () => purge(ino));
        continue;
      }
      if (n > 1) issue('dir-links', `directory ${ino} has ${n} entries pointing to it (one allowed)`, ino);
      if (rec.nlink !== want) issue('dir-nlink', `directory ${ino}: nlink ${rec.nlink}, expected ${want}`, ino, save((r) => (r.nlink = want)));
      const parent = ino === ROOT_INO ? ROOT_INO : dirParent.get(ino);
      if (parent !== undefined && rec.parent !== parent) issue('dir-parent', `directory ${ino}: '..' is ${rec.parent}, expected ${parent}`, ino, save((r) => (r.parent = parent)));
      const mc = maxCookie.get(ino) ?? 0;
      if (rec.nextCookie <= mc) issue('dir-cookie', `directory ${ino}: next cookie ${rec.nextCookie} not above ${mc}`, ino, save((r) => (r.nextCookie = mc + 1)));
      continue;
    }
    if (n === 0) {
      if (rec.nlink !== 0) {
        issue('unreachable-inode', `inode ${ino} (nlink ${rec.nlink}) has no entry in any directory`, ino, () => purge(ino));
      } else if (!held.get(ino) && !purging.has(`${fsId}:${ino}`)) {
        issue('orphan-not-held', `inode ${ino} has nlink 0 and no open handles: should have been purged`, ino, () => purge(ino));
      } else if (!orphanSet.has(ino)) {
        issue('orphan-unlisted', `inode ${ino} has nlink 0 and is held open but is not in the orphan list`, ino, () =>
          fix.puts.push({ key: orphanKey(fsId, ino), value: Buffer.from(String(Date.now())) }));
      }
    } else if (rec.nlink !== n) {
      issue('nlink', `inode ${ino}: nlink ${rec.nlink}, but ${n} entries point to it`, ino, save((r) => (r.nlink = n)));
    }
  }
  for (const ino of orphanSet) {
    const rec = inodes.get(ino);
    if (!rec || rec.nlink !== 0) {
      issue('stale-orphan', `orphan list names inode ${ino}, which ${rec ? `has nlink ${rec.nlink}` : 'does not exist'}`, ino, () => fix.deletes.push(orphanKey(fsId, ino)));
    }
  }
  for (const ino of held.keys()) {
    if (!inodes.has(ino)) issue('stale-holders', `open handles recorded for missing inode ${ino}`, ino);
  }

  let maxVersion = 0;
  for (const e of await engine.range({ prefix: chunkPrefix(fsId) })) {
    const ino = keyU64(e.key);
    const c = decodeChunk(keyU64b(e.key), e.value);
    maxVersion = Math.max(maxVersion, c.version);
    const rec = inodes.get(ino);
    if (!rec) {
      if (!purging.has(`${fsId}:${ino}`)) issue('stale-chunk', `chunk ${c.index} of missing inode ${ino}`, ino, () => fix.deletes.push(e.key));
      continue;
    }
    if (c.index * chunkSize >= rec.size) {
      issue('chunk-past-size', `inode ${ino}: chunk ${c.index} starts at ${c.index * chunkSize}, past size ${rec.size}`, ino, () => {
        fix.deletes.push(chunkKey(fsId, ino, c.index));
        const item: GcItem = { fsId, ino, chunk: { index: c.index, version: c.version } };
        fix.puts.push({ key: gcKey(Date.now(), Math.floor(Math.random() * 2 ** 47)), value: Buffer.from(JSON.stringify(item)) });
      });
    }
  }
  for (const e of await engine.range({ prefix: xattrPrefix(fsId) })) {
    const ino = keyU64(e.key);
    if (!inodes.has(ino) && !purging.has(`${fsId}:${ino}`)) issue('stale-xattr', `xattr '${keyName(e.key).toString()}' of missing inode ${ino}`, ino, () => fix.deletes.push(e.key));
  }
  const hw = await engine.get(allocKey(fsId, ALLOC_INO));
  if (!hw || readU64Value(hw.value) <= maxIno) {
    issue('allocator', `inode allocator at ${hw ? readU64Value(hw.value) : 'missing'}, but inode ${maxIno} exists`, undefined, () =>
      fix.puts.push({ key: allocKey(fsId, ALLOC_INO), value: u64Value(maxIno + 1024) }));
  }

  // A version at or above the allocator would be handed out again and overwrite a live object.
  const vhw = await engine.get(allocKey(fsId, ALLOC_VERSION));
  if (!vhw || readU64Value(vhw.value) <= maxVersion) {
    issue('allocator', `chunk version allocator at ${vhw ? readU64Value(vhw.value) : 'missing'}, but version ${maxVersion} is in use`, undefined, () =>
      fix.puts.push({ key: allocKey(fsId, ALLOC_VERSION), value: u64Value(maxVersion + 1024) }));
  }

  if (fix.puts.length || fix.deletes.length) {
    const putKeys = new Set(fix.puts.map((p) => p.key.toString('latin1')));
    const deletes = fix.deletes.filter((k) => !putKeys.has(k.toString('latin1')));
    const res = await engine.txn({ puts: fix.puts, deletes });
    if (!res.succeeded) throw new Error('fsck repair: the store changed while checking; run it again offline');
  }
}

/** One line per issue plus a summary, for the CLI. */
export function formatReport(r: FsckReport): string {
  const lines = r.issues.map((i) => `fs ${i.fsId}: ${i.kind}: ${i.detail}${i.repaired ? ' [repaired]' : ''}`);
  lines.push(
    `${r.fileSystems} file system(s), ${r.inodes} inodes, ${r.dentries} entries, ${r.orphans} orphans, ` +
    `${r.gcQueued} queued for GC: ${r.issues.length === 0 ? 'clean' : `${r.issues.length} issue(s)`}`,
  );
  return lines.join('\n');
}
