import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { tkmsVersion } from '../runtime/version.ts';
import { createChainMetrics, type ChainMetrics } from '../runtime/chain-metrics.ts';

/** The node's own Prometheus registry (no global state shared with other components). */
export interface NodeMetrics {
  registry: Registry;
  peersConnected: Gauge;
  dkgSessions: Counter<'outcome'>;
  dkgPhaseSeconds: Histogram<'phase'>;
  dkgDurationSeconds: Histogram<'outcome'>;
  keysHeld: Gauge;
  /**
   * kind: refused_store (a second session or a different result seen before storing), withdrawn (a
   * different valid result of the same session for a held key: a proven split), same_session (a
   * member announced a different result of a session held or pending here), other_session (a member
   * announced another session for a held key: refused, the key is kept).
   */
  dkgConflicts: Counter<'kind'>;
  partialRequests: Counter<'outcome'>;
  partialSeconds: Histogram<'outcome'>;
  partialBatchSize: Histogram;
  /** /tkms/sign/1 frames: kind commit or sign, outcome ok or the refusal code. */
  signRequests: Counter<'kind' | 'outcome'>;
  signSeconds: Histogram<'kind' | 'outcome'>;
  /** Unspent FROST nonces held in memory (preprocessing). */
  signNoncesHeld: Gauge;
  p2pStreamsRefused: Counter<'protocol' | 'reason'>;
  p2pFrameBytesHeld: Gauge<'peers'>;
  aclMessages: Counter<'outcome'>;
  keyChanges: Counter<'outcome'>;
  managedKeys: Gauge;
  revocationsHeld: Gauge;
  spentRequestIds: Gauge;
  /** The on-chain ACL reader (acl.mode chain or either): tkms_chain_*. */
  chain: ChainMetrics;
  /** The committee epoch this node serves (0 until its first reshare or refresh). */
  committeeEpoch: Gauge;
  reshareCeremonies: Counter<'kind' | 'outcome'>;
  reshareDurationSeconds: Histogram<'kind' | 'outcome'>;
  /** Ceremony frames refused, by the error code answered (not_approved, bad_request, rate_limited, …). */
  reshareFramesRefused: Counter<'code'>;
  /** Ceremony frames this node sent: which ceremony, the message kind, and why (first send, retry after a failure, retransmit round). */
  ceremonyFramesSent: Counter<'ceremony' | 'kind' | 'cause'>;
  /** Always 1; the labels carry the versions (dashboards show what runs where during an upgrade). */
  buildInfo: Gauge<'version' | 'node_version'>;
}

/** Sizes read when Prometheus scrapes, so the gauges never go stale (pruning, compaction). */
export interface NodeMetricSources {
  revocationsHeld: () => number;
  /** Managed keys held (absent until the key registry is open). */
  managedKeys?: () => number;
  spentRequestIdsHeld: () => number;
  /** Request frame bytes held by the libp2p protocols: members and gateways ("trusted") or everyone else ("others"). */
  frameBytesHeld?: (peers: 'trusted' | 'others') => number;
}

export function createNodeMetrics(sources?: NodeMetricSources): NodeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tkms_node_' });
  const buildInfo = new Gauge({ name: 'tkms_build_info', help: 'tkms and Node.js versions of this node (value 1)', labelNames: ['version', 'node_version'], registers: [registry] });
  buildInfo.set({ version: tkmsVersion(), node_version: process.version }, 1);
  return {
    registry,
    buildInfo,
    chain: createChainMetrics(registry, 'tkms_chain'),
    peersConnected: new Gauge({ name: 'tkms_peers_connected', help: 'Committee members this node is connected to', registers: [registry] }),
    dkgSessions: new Counter({
      name: 'tkms_dkg_sessions_total',
      help: 'DKG sessions that finished on this node, by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    dkgPhaseSeconds: new Histogram({
      name: 'tkms_dkg_phase_duration_seconds',
      help: 'Time spent in each DKG phase',
      labelNames: ['phase'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
    dkgDurationSeconds: new Histogram({
      name: 'tkms_dkg_duration_seconds',
      help: 'Wall time of whole DKG sessions, by outcome',
      labelNames: ['outcome'],
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers: [registry],
    }),
    committeeEpoch: new Gauge({ name: 'tkms_node_committee_epoch', help: 'The committee epoch this node serves (0 until its first reshare or refresh)', registers: [registry] }),
    reshareCeremonies: new Counter({
      name: 'tkms_reshare_ceremonies_total',
      help: 'Reshare and refresh ceremonies that ended on this node, by kind (reshare, refresh) and outcome (done, failed)',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
    }),
    reshareDurationSeconds: new Histogram({
      name: 'tkms_reshare_duration_seconds',
      help: 'Wall time of reshare and refresh ceremonies, from start to commit or failure',
      labelNames: ['kind', 'outcome'],
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300],
      registers: [registry],
    }),
    reshareFramesRefused: new Counter({
      name: 'tkms_reshare_frames_refused_total',
      help: 'Ceremony frames (/tkms/ceremony/2) this node refused, by the error code answered',
      labelNames: ['code'],
      registers: [registry],
    }),
    ceremonyFramesSent: new Counter({
      name: 'tkms_ceremony_frames_sent_total',
      help: 'Ceremony frames this node sent, by ceremony (dkg, reshare), message kind (hello, dealing, proposal, echo, vote, certificate, announce) and cause (first, retry: the send before failed, again: a retransmit round or a laggard answered)',
      labelNames: ['ceremony', 'kind', 'cause'],
      registers: [registry],
    }),
    keysHeld: new Gauge({ name: 'tkms_keys_held', help: 'Key shares held in the keystore', registers: [registry] }),
    dkgConflicts: new Counter({
      name: 'tkms_dkg_conflicts_total',
      help: 'Key ids this node saw two DKG sessions or results for: refused_store (nothing stored), withdrawn (a proven split: a held key no longer served), same_session (a different result of one session announced), other_session (another session for a held key: refused, the key kept)',
      labelNames: ['kind'],
      registers: [registry],
    }),
    partialRequests: new Counter({
      name: 'tkms_partial_requests_total',
      help: 'Partial decryption requests, by outcome (ok or the refusal code)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    partialSeconds: new Histogram({
      name: 'tkms_partial_duration_seconds',
      help: 'Time to answer a partial decryption request (checks, K·share, proof, RSA wrap)',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    signRequests: new Counter({
      name: 'tkms_sign_requests_total',
      help: 'Threshold signing frames (kind commit: nonce commitments made; kind sign: signature shares), by outcome (ok or the refusal code)',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
    }),
    signSeconds: new Histogram({
      name: 'tkms_sign_duration_seconds',
      help: 'Time to answer a threshold signing frame (checks, policy, durable nonce spend, FROST share)',
      labelNames: ['kind', 'outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    signNoncesHeld: new Gauge({ name: 'tkms_sign_nonces_held', help: 'Unspent FROST nonces this node holds in memory for coordinators', registers: [registry] }),
    partialBatchSize: new Histogram({
      name: 'tkms_partial_batch_size',
      help: 'Requests per frame on the batched partial protocol (the gateway batches under load)',
      buckets: [1, 2, 4, 8, 16, 32],
      registers: [registry],
    }),
    p2pStreamsRefused: new Counter({
      name: 'tkms_p2p_streams_refused_total',
      help: 'Inbound libp2p streams reset by this node, by protocol and reason (not_allowed, streams, budget, busy)',
      labelNames: ['protocol', 'reason'],
      registers: [registry],
    }),
    p2pFrameBytesHeld: new Gauge({
      name: 'tkms_p2p_frame_bytes_held',
      help: 'Request frame bytes held (being read or being answered), for members and gateways (trusted) and everyone else (others)',
      labelNames: ['peers'],
      registers: [registry],
      collect() {
        if (sources?.frameBytesHeld === undefined) return;
        for (const peers of ['trusted', 'others'] as const) this.set({ peers }, sources.frameBytesHeld(peers));
      },
    }),
    aclMessages: new Counter({
      name: 'tkms_acl_messages_total',
      help: 'Revocation messages received, by outcome (stored, known or the refusal code)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    keyChanges: new Counter({
      name: 'tkms_key_changes_total',
      help: 'Signed key changes received, by outcome (applied, known or the refusal code)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    managedKeys: new Gauge({
      name: 'tkms_managed_keys',
      help: 'Managed keys this node holds (created by signed key changes)',
      registers: [registry],
      collect() {
        if (sources?.managedKeys !== undefined) this.set(sources.managedKeys());
      },
    }),
    revocationsHeld: new Gauge({
      name: 'tkms_revocations_held',
      help: 'Revocations this node holds',
      registers: [registry],
      collect() {
        if (sources) this.set(sources.revocationsHeld());
      },
    }),
    spentRequestIds: new Gauge({
      name: 'tkms_replay_cache_entries',
      help: 'Delegation request ids remembered against replay (spent request ids)',
      registers: [registry],
      collect() {
        if (sources) this.set(sources.spentRequestIdsHeld());
      },
    }),
  };
}
