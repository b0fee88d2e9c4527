// Conversions between the MetaService types (api.ts) and the generated protobuf messages, shared
// by the gRPC service and MetaClient so both sides agree field by field.
import type { Attr, ChangeEvent, ChunkRef, DataMap, DirEntry, StatFs, Timespec } from './api';
import * as pb from '../gen/metaserver';

export function tsToPb(t: Timespec): pb.Timespec {
  return { sec: t.sec, nsec: t.nsec };
}
export function tsFromPb(t: pb.Timespec | undefined): Timespec {
  return { sec: t?.sec ?? 0, nsec: t?.nsec ?? 0 };
}

export function attrToPb(a: Attr): pb.Attr {
  return {
    ino: a.ino, generation: a.generation, mode: a.mode, nlink: a.nlink, uid: a.uid, gid: a.gid, rdev: a.rdev,
    size: a.size, atime: tsToPb(a.atime), mtime: tsToPb(a.mtime), ctime: tsToPb(a.ctime), dataVersion: a.dataVersion,
    blocks: a.blocks,
  };
}
export function attrFromPb(a: pb.Attr): Attr {
  const out: Attr = {
    ino: a.ino, generation: a.generation, mode: a.mode, nlink: a.nlink, uid: a.uid, gid: a.gid, rdev: a.rdev,
    size: a.size, atime: tsFromPb(a.atime), mtime: tsFromPb(a.mtime), ctime: tsFromPb(a.ctime), dataVersion: a.dataVersion,
  };
  return a.blocks === undefined ? out : { ...out, blocks: a.blocks };
}

export function statfsToPb(s: StatFs): pb.StatFsResponse {
  return { ...s };
}

export function direntToPb(e: DirEntry): pb.DirEntry {
  return { name: e.name, ino: e.ino, type: e.type, cookie: e.cookie, attr: e.attr ? attrToPb(e.attr) : undefined };
}
export function direntFromPb(e: pb.DirEntry): DirEntry {
  const base = { name: Buffer.from(e.name), ino: e.ino, type: e.type, cookie: e.cookie };
  return e.attr ? { ...base, attr: attrFromPb(e.attr) } : base;
}

export function chunkFromPb(c: pb.ChunkRef): ChunkRef {
  return { index: c.index, version: c.version, length: c.length };
}

export function dataMapToPb(m: DataMap): pb.DataMap {
  return { ino: m.ino, size: m.size, dataVersion: m.dataVersion, chunkSize: m.chunkSize, chunks: m.chunks.map((c) => ({ ...c })) };
}
export function dataMapFromPb(m: pb.DataMap): DataMap {
  return { ino: m.ino, size: m.size, dataVersion: m.dataVersion, chunkSize: m.chunkSize, chunks: m.chunks.map(chunkFromPb) };
}

export function eventToPb(e: ChangeEvent): pb.ChangeEvent {
  const out: pb.ChangeEvent = { seq: e.seq, kind: pb.ChangeEvent_Kind.RESET, parent: 0, name: Buffer.alloc(0), ino: 0, dataVersion: 0 };
  switch (e.kind) {
    case 'entry': return { ...out, kind: pb.ChangeEvent_Kind.ENTRY, parent: e.parent, name: e.name };
    case 'attr': return { ...out, kind: pb.ChangeEvent_Kind.ATTR, ino: e.ino };
    case 'data': return { ...out, kind: pb.ChangeEvent_Kind.DATA, ino: e.ino, dataVersion: e.dataVersion };
    default: return out;
  }
}
export function eventFromPb(e: pb.ChangeEvent): ChangeEvent {
  switch (e.kind) {
    case pb.ChangeEvent_Kind.ENTRY: return { seq: e.seq, kind: 'entry', parent: e.parent, name: Buffer.from(e.name) };
    case pb.ChangeEvent_Kind.ATTR: return { seq: e.seq, kind: 'attr', ino: e.ino };
    case pb.ChangeEvent_Kind.DATA: return { seq: e.seq, kind: 'data', ino: e.ino, dataVersion: e.dataVersion };
    default: return { seq: e.seq, kind: 'reset' };
  }
}
