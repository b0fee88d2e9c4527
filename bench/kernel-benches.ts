// eBPF benchmarks (issue 4): FUSE throughput with fuse_trace attached vs not, and time to connect
// through one lost SYN with the default vs a tuned initial RTO.
import type { Benchmark } from './harness';

export const kernelBenchmarks: Benchmark[] = [];
