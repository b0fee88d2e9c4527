// MdsStore on an embedded lmdb environment: each record is {v: value, ver: version}; a txn runs
// its compares and writes inside one lmdb write transaction and resolves after the commit is
// flushed to disk, so an acknowledged change survives a crash.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, RootDatabase } from 'lmdb';
import { commitFailure, settled } from '../common/lmdb-commit';
import { MdsStore, StoreCompare, StoreEntry, StoreOp } from './store';

interface Stored {
  readonly v: unknown;
  readonly ver: number;
}

export class LmdbMdsStore implements MdsStore {
  private constructor(private readonly db: RootDatabase<Stored, string>) {}

  /** Opens (creating) the store in the lmdb file `file` (its directory is created if needed). */
  static open(file: string): LmdbMdsStore {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // No event-turn batching: its hidden batch-start write rejects unhandled when a commit fails.
    const db = open<Stored, string>({ path: file, encoding: 'msgpack', eventTurnBatching: false });
    return new LmdbMdsStore(db);
  }

  async get<T>(key: string): Promise<StoreEntry<T> | undefined> {
    const s = this.db.get(key);
    return s ? { key, value: s.v as T, version: s.ver } : undefined;
  }

  async list<T>(prefix: string): Promise<StoreEntry<T>[]> {
    const out: StoreEntry<T>[] = [];
    // Keys are strings; '\uffff' sorts after any key that starts with the prefix.
    for (const { key, value } of this.db.getRange({ start: prefix, end: `${prefix}\uffff` })) {
      if (!key.startsWith(prefix)) break;
      out.push({ key, value: value.v as T, version: value.ver });
    }
    return out;
  }

  async txn(compares: readonly StoreCompare[], ops: readonly StoreOp[]): Promise<boolean> {
    // A failed commit (a full disk) is this txn's error, with its errno (ENOSPC).
    const ok = await this.db.transaction(() => {
      for (const c of compares) {
        if ((this.db.get(c.key)?.ver ?? 0) !== c.version) return false;
      }
      for (const op of ops) {
        if (op.type === 'put') {
          const ver = (this.db.get(op.key)?.ver ?? 0) + 1;
          settled(this.db.put(op.key, { v: op.value, ver }));
        } else {
          settled(this.db.remove(op.key));
        }
      }
      return true;
    }).catch(async (err: unknown) => {
      throw await commitFailure(err, 'mds store commit failed');
    });
    if (ok) await this.db.flushed;
    return ok;
  }

  async close(): Promise<void> {
    await this.db.flushed;
    await this.db.close();
  }
}
