// Input checks for the MDS, each throwing EINVAL (gRPC INVALID_ARGUMENT) with a reason.
import { fsError } from '../common/errno';
import { parseHostPort } from '../common/metrics';
import { ServerKind } from './api';

export const MIN_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
export const SERVER_KINDS: readonly ServerKind[] = ['metaserver', 'datastore', 'mds'];

const FS_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const SERVER_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const SESSION_ID = /^[A-Za-z0-9-]{1,64}$/;

export function validateFsName(name: string): void {
  if (!FS_NAME.test(name)) {
    throw fsError('EINVAL', `invalid file system name "${name.slice(0, 80)}": use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
}

/** Returns the size if it is a power of two in [64 KiB, 64 MiB]. */
export function validateChunkSize(size: number): number {
  if (!Number.isSafeInteger(size) || size < MIN_CHUNK_SIZE || size > MAX_CHUNK_SIZE || (size & (size - 1)) !== 0) {
    throw fsError('EINVAL', `invalid chunk size ${size}: must be a power of two between 64 KiB and 64 MiB`);
  }
  return size;
}

export const MAX_REPLICAS = 5;

/** Returns the count if it is an integer in [1, MAX_REPLICAS]. */
export function validateReplicas(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_REPLICAS) {
    throw fsError('EINVAL', `invalid replica count ${n}: must be an integer from 1 to ${MAX_REPLICAS}`);
  }
  return n;
}

export function validateKind(kind: string): asserts kind is ServerKind {
  if (!SERVER_KINDS.includes(kind as ServerKind)) {
    throw fsError('EINVAL', `invalid server kind "${kind.slice(0, 40)}": expected ${SERVER_KINDS.join(', ')}`);
  }
}

export function validateServerId(id: string): void {
  if (!SERVER_ID.test(id)) throw fsError('EINVAL', `invalid server id "${id.slice(0, 40)}": 1-128 letters, digits, '.', '_', ':' or '-'`);
}

export function validateAddress(address: string): void {
  try {
    const { port } = parseHostPort(address);
    if (port === 0) throw new Error('port 0');
  } catch {
    throw fsError('EINVAL', `invalid server address "${address.slice(0, 80)}": expected HOST:PORT`);
  }
}

export function validateSessionId(id: string): void {
  if (!SESSION_ID.test(id)) throw fsError('EINVAL', `invalid session id "${id.slice(0, 80)}"`);
}
