// Prometheus export of the tcp_tune statistics and settings (per destination prefix) that live in
// the pinned BPF maps `kurve rto` manages: read at scrape time, never created by a scrape.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as prom from 'prom-client';
import { registry as defaultRegistry } from '../common/metrics';
import { moduleLogger } from '../common/logger';
import type { RtoEntry } from '../ebpf/rto-tuner';

const log = moduleLogger('tcp-metrics');

/** Reads the entries once per scrape (every metric's collect() shares one snapshot). */
class Snapshot {
  private at = 0;
  private entries: RtoEntry[] = [];
  private warned = false;

  constructor(private readonly pinRoot: string | undefined) {}

  get(): RtoEntry[] {
    if (Date.now() - this.at < 250) return this.entries;
    this.at = Date.now();
    this.entries = this.read();
    return this.entries;
  }

  private read(): RtoEntry[] {
    // Lazy: loading libbpf through koffi is not free, and most scrapes of an unprivileged
    // process must not try. Only an existing pin is read; a scrape never creates maps.
    const { pinDir } = require('../ebpf/pins') as typeof import('../ebpf/pins');
    const root = pinDir(this.pinRoot);
    if (!fs.existsSync(path.join(root, 'tcp_tune', 'rto_prefixes'))) return [];
    try {
      const { RtoTuner } = require('../ebpf/rto-tuner') as typeof import('../ebpf/rto-tuner');
      const t = RtoTuner.open(root);
      try {
        return t.list();
      } finally {
        t.close();
      }
    } catch (err) {
      if (!this.warned) log.warn({ err: String(err) }, 'cannot read the tcp_tune maps: kurve_tcp_* metrics are empty');
      this.warned = true;
      return [];
    }
  }
}

type Pick = (e: RtoEntry) => number | undefined;

const registered = new WeakSet<prom.Registry>();

/**
 * Registers kurve_tcp_* (settings as gauges, statistics as counters, by prefix) on `reg`.
 * Idempotent per registry. `pinRoot` defaults to KURVE_BPF_PIN_DIR or /sys/fs/bpf/kurve.
 */
export function registerTcpTuneMetrics(reg: prom.Registry = defaultRegistry, pinRoot?: string): void {
  if (registered.has(reg)) return;
  registered.add(reg);
  const snap = new Snapshot(pinRoot);
  const gauge = (name: string, help: string, pick: Pick): void => {
    new prom.Gauge({
      name, help, labelNames: ['prefix'], registers: [reg],
      collect() {
        this.reset();
        for (const e of snap.get()) {
          const v = pick(e);
          if (v !== undefined) this.set({ prefix: e.prefix }, v);
        }
      },
    });
  };
  const counter = (name: string, help: string, pick: Pick): void => {
    new prom.Counter({
      name, help, labelNames: ['prefix'], registers: [reg],
      collect() {
        // The BPF map holds the running totals: expose them as they are.
        this.reset();
        for (const e of snap.get()) this.inc({ prefix: e.prefix }, pick(e) ?? 0);
      },
    });
  };
  gauge('kurve_tcp_syn_rto_seconds', 'Configured initial (SYN) RTO for connections to the prefix (absent: kernel default 1 s)', (e) => (e.synRtoMs === undefined ? undefined : e.synRtoMs / 1000));
  gauge('kurve_tcp_rto_min_seconds', 'Configured minimum RTO on established connections to the prefix (absent: kernel default 200 ms)', (e) => (e.rtoMinMs === undefined ? undefined : e.rtoMinMs / 1000));
  gauge('kurve_tcp_srtt_seconds', 'Smoothed RTT of connections to the prefix (EWMA of the kernel srtt over RTT samples; absent before the first sample)', (e) => (e.stats.rttSamples > 0 ? e.stats.srttUs / 1e6 : undefined));
  counter('kurve_tcp_connections_tuned_total', 'Connections whose SYN RTO was set from the prefix', (e) => e.stats.synTuned);
  counter('kurve_tcp_rto_min_set_total', 'Established connections whose minimum RTO was lowered for the prefix', (e) => e.stats.rtoMinSet);
  counter('kurve_tcp_syn_retransmits_total', 'SYN retransmissions to the prefix (tcp:tcp_retransmit_skb)', (e) => e.stats.synRetrans);
  counter('kurve_tcp_data_retransmits_total', 'Data segment retransmissions to the prefix (tcp:tcp_retransmit_skb)', (e) => e.stats.dataRetrans);
  counter('kurve_tcp_rtt_samples_total', 'RTT samples taken on connections to the prefix (BPF_SOCK_OPS_RTT_CB)', (e) => e.stats.rttSamples);
}
