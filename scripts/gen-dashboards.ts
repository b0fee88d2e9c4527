// The Grafana dashboards in dashboards/*.json, as code: `node dist/scripts/gen-dashboards.js`
// rewrites them (a test checks the committed JSON matches). Metric names: docs/metrics.md.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dashboard, heatmap, quantile, rate, row, sel, stat, timeseries } from './dashboard-kit';

const instanceVar = (metric: string) => ({ name: 'instance', label: 'Instance', query: `label_values(${metric}, instance)` });

function client(): Record<string, unknown> {
  const fuseRate = (m: string, by = 'op') => `sum by (${by}) (${rate(m)})`;
  return dashboard('kurve-client', 'Kurve client', 'A Kurve mount (kurve up / kurve mount): FUSE requests from the daemon and the kernel, caches, data, process', [instanceVar('kurve_fuse_requests_total')], [
    row('FUSE requests'),
    timeseries('Requests/s by opcode (daemon)', 'reqps', [{ expr: fuseRate('kurve_fuse_requests_total'), legend: '{{op}}' }], { stack: true, description: 'Requests the daemon read from /dev/fuse (kurve_fuse_requests_total)' }),
    timeseries('Requests/s by opcode (kernel, BPF)', 'reqps', [{ expr: fuseRate('kurve_kernel_fuse_requests_total'), legend: '{{op}}' }], { stack: true, description: 'Requests the kernel sent, counted by fuse_trace on fuse:fuse_request_send' }),
    timeseries('Latency p50 / p99 by opcode (daemon)', 's', [
      { expr: quantile(0.5, 'kurve_fuse_request_duration_seconds', ['op']), legend: 'p50 {{op}}' },
      { expr: quantile(0.99, 'kurve_fuse_request_duration_seconds', ['op']), legend: 'p99 {{op}}' },
    ], { description: 'From reading a request to writing its reply' }),
    timeseries('Latency p50 / p99 by opcode (kernel, BPF)', 's', [
      { expr: quantile(0.5, 'kurve_kernel_fuse_request_duration_seconds', ['op']), legend: 'p50 {{op}}' },
      { expr: quantile(0.99, 'kurve_kernel_fuse_request_duration_seconds', ['op']), legend: 'p99 {{op}}' },
    ], { description: 'fuse_request_send to fuse_request_end as the kernel sees it: daemon time plus queueing and the /dev/fuse hops' }),
    timeseries('Errors/s by opcode and errno (daemon)', 'reqps', [{ expr: fuseRate('kurve_fuse_errors_total', 'op, errno'), legend: '{{op}} {{errno}}' }], { w: 8, description: 'ENOENT from LOOKUP is normal (negative lookups)' }),
    timeseries('Errors/s by opcode (kernel, BPF)', 'reqps', [{ expr: fuseRate('kurve_kernel_fuse_errors_total'), legend: '{{op}}' }], { w: 8 }),
    timeseries('In-flight requests', 'short', [{ expr: `sum(${sel('kurve_fuse_inflight_requests')})`, legend: 'in flight' }], { w: 8 }),
    row('Kernel caches'),
    timeseries('Kernel cache effect: metadata requests reaching the daemon', 'reqps', [
      { expr: `sum by (op) (${rate('kurve_fuse_requests_total', 'op=~"LOOKUP|GETATTR"')})`, legend: '{{op}} (cache misses)' },
      { expr: `sum by (kind) (${rate('kurve_client_invalidations_total')})`, legend: 'invalidated: {{kind}}' },
    ], { description: 'With long entry/attr timeouts, a stat served by the kernel never reaches the daemon: LOOKUP/GETATTR here are the misses, invalidations are what made the kernel forget' }),
    timeseries('Kernel cache effect: opens and READs', 'reqps', [
      { expr: `sum by (mode) (${rate('kurve_client_opens_total')})`, legend: 'opens: {{mode}}' },
      { expr: `sum(${rate('kurve_fuse_requests_total', 'op="READ"')})`, legend: 'READ requests (page cache / passthrough misses)' },
    ], { description: 'Passthrough opens let the kernel read the cached backing file (0 READ requests); daemon opens with an unchanged data version keep the page cache' }),
    stat('Passthrough share of opens', 'percentunit', [{ expr: `sum(${rate('kurve_client_opens_total', 'mode="passthrough"')}) / sum(${rate('kurve_client_opens_total')})`, legend: 'passthrough' }], { min: 0, max: 1 }),
    stat('Chunk-cache hit ratio', 'percentunit', [{ expr: `sum(${rate('kurve_client_cache_hits_total')}) / (sum(${rate('kurve_client_cache_hits_total')}) + sum(${rate('kurve_client_cache_misses_total')}))`, legend: 'hits' }], { min: 0, max: 1, description: 'Chunk reads by the daemon served from the local cache (passthrough reads never reach the daemon)' }),
    stat('Change feed', 'bool_on_off', [{ expr: `min(${sel('kurve_client_feed_connected')})`, legend: 'connected' }], { description: 'Off: the client lost the metaserver change feed and runs with short kernel timeouts' }),
    timeseries('Change-feed events/s by kind', 'ops', [{ expr: `sum by (kind) (${rate('kurve_client_change_events_total')})`, legend: '{{kind}}' }], { w: 6 }),
    row('Data'),
    timeseries('Throughput', 'Bps', [
      { expr: `sum(${rate('kurve_client_read_bytes_total')})`, legend: 'read (daemon-served)' },
      { expr: `sum(${rate('kurve_client_written_bytes_total')})`, legend: 'written' },
      { expr: `sum(${rate('kurve_client_uploaded_bytes_total')})`, legend: 'uploaded to datastores' },
      { expr: `sum(${rate('kurve_client_cache_fetched_bytes_total')})`, legend: 'fetched from datastores' },
    ]),
    timeseries('Chunk cache', 'bytes', [
      { expr: `sum(${sel('kurve_client_cache_used_bytes')})`, legend: 'used' },
      { expr: `sum(${sel('kurve_client_cache_limit_bytes')})`, legend: 'limit' },
    ], { w: 6 }),
    timeseries('Chunk-cache evictions/s', 'ops', [{ expr: `sum(${rate('kurve_client_cache_evictions_total')})`, legend: 'evictions' }], { w: 6 }),
    timeseries('Data commits/s', 'ops', [{ expr: `sum(${rate('kurve_client_commits_total')})`, legend: 'commits' }], { w: 6, description: 'New chunk versions committed to the metaserver (flush, fsync, close)' }),
    timeseries('Upload time p50 / p99', 's', [
      { expr: `histogram_quantile(0.5, sum by (le) (${rate('kurve_client_upload_duration_seconds_bucket')}))`, legend: 'p50' },
      { expr: `histogram_quantile(0.99, sum by (le) (${rate('kurve_client_upload_duration_seconds_bucket')}))`, legend: 'p99' },
    ], { w: 6 }),
    timeseries('Open handles and inodes tracked', 'short', [
      { expr: `sum(${sel('kurve_client_open_handles')})`, legend: 'open handles' },
      { expr: `sum(${sel('kurve_client_inodes_tracked')})`, legend: 'inodes tracked' },
    ]),
    row('Process'),
    timeseries('CPU', 'percentunit', [{ expr: `sum by (instance) (${rate('kurve_process_cpu_seconds_total')})`, legend: '{{instance}}' }], { w: 8 }),
    timeseries('Memory', 'bytes', [
      { expr: `sum by (instance) (${sel('kurve_process_resident_memory_bytes')})`, legend: 'rss {{instance}}' },
      { expr: `sum by (instance) (${sel('kurve_nodejs_heap_size_used_bytes')})`, legend: 'heap used {{instance}}' },
    ], { w: 8 }),
    timeseries('Event-loop lag p99', 's', [{ expr: `max by (instance) (${sel('kurve_nodejs_eventloop_lag_p99_seconds')})`, legend: '{{instance}}' }], { w: 8 }),
  ]);
}

function kernel(): Record<string, unknown> {
  const opVar = { name: 'op', label: 'Opcode', query: 'label_values(kurve_kernel_fuse_requests_total, op)' };
  const bucket = 'kurve_kernel_fuse_request_duration_seconds_bucket';
  return dashboard('kurve-kernel', 'Kurve kernel', 'What the kernel sees (eBPF): FUSE request latency per opcode, TCP retransmits, RTT and RTO tuning per destination prefix', [instanceVar('kurve_kernel_fuse_requests_total'), opVar], [
    row('FUSE (fuse_trace)'),
    heatmap('FUSE latency heatmap: $op', { expr: `sum by (le) (increase(${sel(bucket, 'op=~"$op"')}[$__rate_interval]))` }, { repeat: 'op', w: 24, description: 'Kernel-side latency distribution (fuse_request_send → fuse_request_end), log2 buckets; one panel per opcode' }),
    timeseries('Kernel FUSE latency p99 by opcode', 's', [{ expr: quantile(0.99, 'kurve_kernel_fuse_request_duration_seconds', ['op'], 'op=~"$op"'), legend: '{{op}}' }]),
    timeseries('Kernel FUSE requests/s by opcode', 'reqps', [{ expr: `sum by (op) (${rate('kurve_kernel_fuse_requests_total', 'op=~"$op"')})`, legend: '{{op}}' }], { stack: true }),
    timeseries('Kernel minus daemon p99 (queueing and /dev/fuse hops)', 's', [{
      expr: `${quantile(0.99, 'kurve_kernel_fuse_request_duration_seconds', ['op'], 'op=~"$op"')} - on (op) ${quantile(0.99, 'kurve_fuse_request_duration_seconds', ['op'], 'op=~"$op"')}`,
      legend: '{{op}}',
    }], { description: 'Time a request spends between the kernel and the daemon, beyond what the daemon measures' }),
    timeseries('Kernel FUSE errors/s by opcode', 'reqps', [{ expr: `sum by (op) (${rate('kurve_kernel_fuse_errors_total', 'op=~"$op"')})`, legend: '{{op}}' }]),
    row('TCP (tcp_tune)'),
    timeseries('SYN retransmits/s by destination prefix', 'ops', [{ expr: `sum by (prefix) (${rate('kurve_tcp_syn_retransmits_total')})`, legend: '{{prefix}}' }], { w: 8 }),
    timeseries('Data retransmits/s by destination prefix', 'ops', [{ expr: `sum by (prefix) (${rate('kurve_tcp_data_retransmits_total')})`, legend: '{{prefix}}' }], { w: 8 }),
    timeseries('Smoothed RTT by destination prefix', 's', [{ expr: `max by (prefix) (${sel('kurve_tcp_srtt_seconds')})`, legend: '{{prefix}}' }], { w: 8 }),
    timeseries('Active RTO settings by prefix', 's', [
      { expr: `max by (prefix) (${sel('kurve_tcp_syn_rto_seconds')})`, legend: 'SYN RTO {{prefix}}' },
      { expr: `max by (prefix) (${sel('kurve_tcp_rto_min_seconds')})`, legend: 'min RTO {{prefix}}' },
    ], { description: 'Settings in the pinned tcp_tune maps (kurve rto set); a prefix without a value uses the kernel default (1 s SYN RTO, 200 ms min RTO)' }),
    timeseries('Connections tuned/s by prefix', 'ops', [
      { expr: `sum by (prefix) (${rate('kurve_tcp_connections_tuned_total')})`, legend: 'SYN RTO {{prefix}}' },
      { expr: `sum by (prefix) (${rate('kurve_tcp_rto_min_set_total')})`, legend: 'min RTO {{prefix}}' },
    ]),
  ]);
}

function services(): Record<string, unknown> {
  const rpcSel = 'service=~"$service"';
  return dashboard('kurve-services', 'Kurve services', 'MDS, metaserver and datastore: RPCs, namespace and engine, leadership, sessions, capacity', [
    instanceVar('kurve_rpc_requests_total'),
    { name: 'service', label: 'Service', query: 'label_values(kurve_rpc_requests_total, service)' },
  ], [
    row('RPC'),
    timeseries('RPCs/s by service and method', 'reqps', [{ expr: `sum by (service, method) (${rate('kurve_rpc_requests_total', rpcSel)})`, legend: '{{service}}.{{method}}' }], { stack: true }),
    timeseries('RPC latency p99 by method', 's', [{ expr: quantile(0.99, 'kurve_rpc_duration_seconds', ['service', 'method'], rpcSel), legend: '{{service}}.{{method}}' }]),
    timeseries('RPC errors/s by method and code', 'reqps', [{ expr: `sum by (service, method, code) (${rate('kurve_rpc_errors_total', rpcSel)})`, legend: '{{method}} {{code}}' }]),
    timeseries('RPC error ratio by service', 'percentunit', [{ expr: `sum by (service) (${rate('kurve_rpc_errors_total', rpcSel)}) / sum by (service) (${rate('kurve_rpc_requests_total', rpcSel)})`, legend: '{{service}}' }], { min: 0 }),
    row('Metaserver'),
    timeseries('Namespace ops/s by op and result', 'ops', [{ expr: `sum by (op, result) (${rate('kurve_metaserver_ops_total')})`, legend: '{{op}} {{result}}' }], { stack: true }),
    timeseries('Namespace op latency p99', 's', [{ expr: quantile(0.99, 'kurve_metaserver_op_duration_seconds', ['op']), legend: '{{op}}' }]),
    timeseries('Engine ops/s by engine, op and result', 'ops', [{ expr: `sum by (engine, op, result) (${rate('kurve_metaserver_engine_ops_total')})`, legend: '{{engine}} {{op}} {{result}}' }], { w: 8 }),
    timeseries('Engine latency p99', 's', [{ expr: quantile(0.99, 'kurve_metaserver_engine_duration_seconds', ['engine', 'op']), legend: '{{engine}} {{op}}' }], { w: 8 }),
    timeseries('Group commit: txns per batch (mean)', 'short', [{ expr: `sum(${rate('kurve_metaserver_engine_batch_txns_sum')}) / sum(${rate('kurve_metaserver_engine_batch_txns_count')})`, legend: 'txns/batch' }], { w: 8 }),
    timeseries('Namespace records by kind', 'short', [{ expr: `sum by (kind) (${sel('kurve_metaserver_keys')})`, legend: '{{kind}}' }], { w: 8 }),
    timeseries('Change-feed subscribers', 'short', [{ expr: `sum by (instance) (${sel('kurve_metaserver_feed_subscribers')})`, legend: '{{instance}}' }], { w: 8 }),
    timeseries('Garbage collection', 'short', [
      { expr: `sum(${sel('kurve_metaserver_gc_queue_length')})`, legend: 'queue length' },
      { expr: `sum by (kind, result) (${rate('kurve_metaserver_gc_items_total')})`, legend: '{{kind}} {{result}}/s' },
    ], { w: 8 }),
    row('MDS'),
    stat('Leader', 'short', [{ expr: `sum(${sel('kurve_mds_is_leader')})`, legend: 'leaders' }], { description: 'MDS replicas that believe they lead: must be 1' }),
    stat('Leader changes (1h)', 'short', [{ expr: `sum(changes(${sel('kurve_mds_is_leader')}[1h])) / 2`, legend: 'failovers' }], { description: 'Each handover flips the gauge on two replicas' }),
    stat('Client sessions', 'short', [{ expr: `max(${sel('kurve_mds_sessions')})`, legend: 'sessions' }]),
    timeseries('Leader by replica', 'short', [{ expr: `max by (instance) (${sel('kurve_mds_is_leader')})`, legend: '{{instance}}' }], { w: 6, min: 0, max: 1 }),
    timeseries('Registered servers by kind and health', 'short', [{ expr: `sum by (kind, healthy) (${sel('kurve_mds_servers')})`, legend: '{{kind}} healthy={{healthy}}' }]),
    timeseries('etcd calls/s by op and result', 'ops', [{ expr: `sum by (op, result) (${rate('kurve_etcd_requests_total')})`, legend: '{{op}} {{result}}' }], { w: 12 }),
    row('Datastore'),
    timeseries('Capacity', 'bytes', [{ expr: `sum by (instance) (${sel('kurve_datastore_used_bytes')})`, legend: 'used {{instance}}' }], { w: 8 }),
    timeseries('Chunk objects', 'short', [{ expr: `sum by (instance) (${sel('kurve_datastore_objects')})`, legend: '{{instance}}' }], { w: 8 }),
    timeseries('Chunk bytes/s by op', 'Bps', [{ expr: `sum by (op) (${rate('kurve_datastore_bytes_total')})`, legend: '{{op}}' }], { w: 8 }),
  ]);
}

export function allDashboards(): Record<string, Record<string, unknown>> {
  return { 'kurve-client.json': client(), 'kurve-kernel.json': kernel(), 'kurve-services.json': services() };
}

if (require.main === module) {
  const dir = process.argv[2] ?? path.resolve(__dirname, '..', '..', 'dashboards');
  for (const [file, d] of Object.entries(allDashboards())) {
    fs.writeFileSync(path.join(dir, file), JSON.stringify(d, null, 2) + '\n');
    process.stdout.write(`wrote ${path.join(dir, file)}\n`);
  }
}
