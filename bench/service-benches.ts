// Service benchmarks (issues 2 and 5): metaserver operations over gRPC and in-process, the etcd
// engine next to lmdb with 1 and 4 clients, MDS failover time.
import type { Benchmark } from './harness';

export const serviceBenchmarks: Benchmark[] = [];
