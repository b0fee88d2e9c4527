// Write-ahead journal of the lmdb engine's 'written' durability mode: each accepted txn is
// appended with write(2) (no fsync) before it is acknowledged, so a process crash (kill -9) never
// loses it — the bytes are in the page cache — while lmdb itself keeps committing with fsync in
// the background. On open, records newer than lmdb's stored revision are replayed.
//
// Two files take turns: appends go to the active one; once lmdb's synced revision covers every
// record of a file, it is truncated. A record: u32 payload length, u32 crc32c(payload), payload =
// u64 rev, u32 writes, then per write u16 key length, key, u32 value length (0xffffffff = delete),
// value. Replay takes records in revision order from the first one after lmdb's revision and stops
// at the first gap or torn/corrupt record (after a machine crash the unsynced tail may be garbage).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';

export interface JournalWrite {
  readonly key: Buffer;
  readonly value: Buffer | undefined; // undefined = delete
}

export interface JournalRecord {
  readonly rev: number;
  readonly writes: JournalWrite[];
}

const HEADER = 8;
const DELETED = 0xffffffff;
/** A file this large switches appends to the other file (when that one is empty). */
const ROTATE_BYTES = 8 * 1024 * 1024;

export function encodeRecord(rev: number, writes: readonly JournalWrite[]): Buffer {
  let len = 12;
  for (const w of writes) len += 2 + w.key.length + 4 + (w.value?.length ?? 0);
  const buf = Buffer.allocUnsafe(HEADER + len);
  buf.writeUInt32LE(len, 0);
  let o = HEADER;
  buf.writeUInt32LE(Math.floor(rev / 0x1_0000_0000), o);
  buf.writeUInt32LE(rev >>> 0, o + 4);
  buf.writeUInt32LE(writes.length, o + 8);
  o += 12;
  for (const w of writes) {
    buf.writeUInt16LE(w.key.length, o);
    o += 2 + w.key.copy(buf, o + 2);
    buf.writeUInt32LE(w.value ? w.value.length : DELETED, o);
    o += 4;
    if (w.value) o += w.value.copy(buf, o);
  }
  buf.writeUInt32LE(crc32c(buf.subarray(HEADER)), 4);
  return buf;
}

/** The valid records at the start of a journal file (stops at the first torn or corrupt one). */
export function decodeRecords(buf: Buffer): JournalRecord[] {
  const out: JournalRecord[] = [];
  let o = 0;
  while (o + HEADER <= buf.length) {
    const len = buf.readUInt32LE(o);
    if (len < 12 || o + HEADER + len > buf.length) break;
    const payload = buf.subarray(o + HEADER, o + HEADER + len);
    if (crc32c(payload) !== buf.readUInt32LE(o + 4)) break;
    const rev = payload.readUInt32LE(0) * 0x1_0000_0000 + payload.readUInt32LE(4);
    const n = payload.readUInt32LE(8);
    const writes: JournalWrite[] = [];
    let p = 12;
    for (let i = 0; i < n; i++) {
      const kl = payload.readUInt16LE(p);
      const key = Buffer.from(payload.subarray(p + 2, p + 2 + kl));
      p += 2 + kl;
      const vl = payload.readUInt32LE(p);
      p += 4;
      if (vl === DELETED) writes.push({ key, value: undefined });
      else {
        writes.push({ key, value: Buffer.from(payload.subarray(p, p + vl)) });
        p += vl;
      }
    }
    out.push({ rev, writes });
    o += HEADER + len;
  }
  return out;
}

export class Journal {
  private readonly files: [string, string];
  private readonly fds: [number, number];
  private readonly sizes: [number, number] = [0, 0];
  private readonly lastRevs: [number, number] = [0, 0];
  private active: 0 | 1 = 0;

  constructor(dir: string) {
    this.files = [path.join(dir, 'kurve-journal-0'), path.join(dir, 'kurve-journal-1')];
    // O_APPEND: after a truncate, the next record goes to offset 0.
    this.fds = [fs.openSync(this.files[0], 'a+'), fs.openSync(this.files[1], 'a+')];
    this.sizes = [fs.fstatSync(this.fds[0]).size, fs.fstatSync(this.fds[1]).size];
  }

  /** Whether a journal is in `dir` (a 'sync'-mode open still replays a 'written'-mode one). */
  static exists(dir: string): boolean {
    return fs.existsSync(path.join(dir, 'kurve-journal-0')) || fs.existsSync(path.join(dir, 'kurve-journal-1'));
  }

  /** Records after `fromRev`, contiguous (rev fromRev+1, +2, ...), from both files. */
  replayable(fromRev: number): JournalRecord[] {
    const byRev = new Map<number, JournalRecord>();
    for (const f of this.files) for (const r of decodeRecords(fs.readFileSync(f))) if (r.rev > fromRev) byRev.set(r.rev, r);
    const out: JournalRecord[] = [];
    for (let rev = fromRev + 1; byRev.has(rev); rev++) out.push(byRev.get(rev)!);
    return out;
  }

  /**
   * Appends one txn's record to the page cache. A failed or short write (ENOSPC) is cut off again,
   * so the journal ends with the previous record and later ones still replay: the error is
   * thrown with `.recovered` true then, false if even the cut failed (the journal may be torn).
   */
  append(rev: number, writes: readonly JournalWrite[]): void {
    const buf = encodeRecord(rev, writes);
    const fd = this.fds[this.active];
    let n: number;
    try {
      n = fs.writeSync(fd, buf);
      if (n !== buf.length) throw Object.assign(new Error(`journal: short write (${n} of ${buf.length} bytes)`), { code: 'ENOSPC' });
    } catch (err) {
      let recovered = false;
      try {
        fs.ftruncateSync(fd, this.sizes[this.active]);
        recovered = true;
      } catch {
        // recovered stays false
      }
      throw Object.assign(err as Error, { recovered });
    }
    this.sizes[this.active] += n;
    this.lastRevs[this.active] = rev;
  }

  /** lmdb durably holds every revision ≤ durableRev: drop files it covers, rotate a large one. */
  covered(durableRev: number): void {
    const other = this.active === 0 ? 1 : 0;
    if (this.sizes[other] > 0 && this.lastRevs[other] <= durableRev) this.truncate(other);
    if (this.sizes[this.active] >= ROTATE_BYTES) {
      if (this.lastRevs[this.active] <= durableRev) this.truncate(this.active);
      else if (this.sizes[other] === 0) this.active = other;
    }
  }

  /** Every record is in lmdb (synced): empty both files. */
  clear(): void {
    this.truncate(0);
    this.truncate(1);
  }

  private truncate(i: 0 | 1): void {
    fs.ftruncateSync(this.fds[i], 0);
    this.sizes[i] = 0;
    this.lastRevs[i] = 0;
  }

  close(): void {
    for (const fd of this.fds) fs.closeSync(fd);
  }

  /** Closes and deletes both files (after clear(), when the engine no longer journals). */
  remove(): void {
    this.close();
    for (const f of this.files) fs.rmSync(f, { force: true });
  }
}
