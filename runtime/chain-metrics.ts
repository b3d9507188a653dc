import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ChainMetricsSink } from '../chain/chain-acl.ts';

/** The on-chain ACL reader's series, as one process (node or gateway) exposes them. */
export interface ChainMetrics {
  calls: Counter<'method' | 'outcome'>;
  callSeconds: Histogram<'method'>;
  headBlock: Gauge;
  headAgeSeconds: Gauge;
  cacheLookups: Counter<'result'>;
  /** What the reader reports into (chain/chain-acl.ts). */
  sink: ChainMetricsSink;
}

/**
 * Registers `<prefix>_calls_total{method,outcome}`, `<prefix>_call_duration_seconds{method}`,
 * `<prefix>_head_block`, `<prefix>_head_age_seconds` and `<prefix>_cache_lookups_total{result}`
 * (hit or miss) on `registry`. `nowMs` is the clock the head's age is measured with.
 */
export function createChainMetrics(registry: Registry, prefix: string, nowMs: () => number = Date.now): ChainMetrics {
  const calls = new Counter({
    name: `${prefix}_calls_total`,
    help: 'JSON-RPC calls to the chain by method and outcome (ok or the error code)',
    labelNames: ['method', 'outcome'],
    registers: [registry],
  });
  const callSeconds = new Histogram({
    name: `${prefix}_call_duration_seconds`,
    help: 'JSON-RPC call latency by method',
    labelNames: ['method'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const headBlock = new Gauge({ name: `${prefix}_head_block`, help: 'The newest block a quorum of RPC providers reached', registers: [registry] });
  // The head block's timestamp (ms), derived from the age the reader saw. The age is computed at
  // scrape time so that it keeps growing while no provider answers: a frozen age would hide an outage.
  let headTimestampMs: number | undefined;
  const headAgeSeconds = new Gauge({
    name: `${prefix}_head_age_seconds`,
    help: 'Age of the newest head block\'s timestamp, now (it keeps growing while the head cannot be read)',
    registers: [registry],
    collect() {
      if (headTimestampMs !== undefined) this.set(Math.max(0, (nowMs() - headTimestampMs) / 1000));
    },
  });
  const cacheLookups = new Counter({
    name: `${prefix}_cache_lookups_total`,
    help: 'On-chain grant lookups answered from the (handle, owner, grantee, block) cache (hit) or by a call (miss)',
    labelNames: ['result'],
    registers: [registry],
  });
  return {
    calls,
    callSeconds,
    headBlock,
    headAgeSeconds,
    cacheLookups,
    sink: {
      call(method, outcome, seconds) {
        calls.inc({ method, outcome });
        callSeconds.observe({ method }, seconds);
      },
      head(block, ageSeconds) {
        headBlock.set(block);
        headTimestampMs = nowMs() - ageSeconds * 1000;
      },
      cache(hit) {
        cacheLookups.inc({ result: hit ? 'hit' : 'miss' });
      },
    },
  };
}
