import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { tkmsVersion } from '../runtime/version.ts';
import { createChainMetrics, type ChainMetrics } from '../runtime/chain-metrics.ts';

export interface GatewayMetrics {
  registry: Registry;
  httpRequests: Counter<'route' | 'method' | 'status'>;
  httpSeconds: Histogram<'route'>;
  delegations: Counter<'outcome'>;
  delegationSeconds: Histogram;
  nodeAnswers: Counter<'node' | 'outcome'>;
  nodesConnected: Gauge;
  handlesStored: Gauge;
  /** Requests and connections refused by an HTTP limit before their body was read, by reason. */
  httpRefused: Counter<'reason'>;
  /** Requester RSA keys checked on the delegate path, by outcome (accepted, refused, refused_cached). */
  requesterKeyChecks: Counter<'outcome'>;
  /** DKG results members reported that were not published, by reason (invalid, conflict). */
  keyDisagreements: Counter<'reason'>;
  /** Key changes sent through the gateway, by action and outcome (effective, pending, or the refusal's code). */
  keyChanges: Counter<'action' | 'outcome'>;
  /** Threshold signatures asked for, by algorithm and outcome (ok or the refusal's code). */
  signatures: Counter<'algorithm' | 'outcome'>;
  /** Time to answer a successful signing request (checks, one round trip to t members, aggregation). */
  signatureSeconds: Histogram<'algorithm'>;
  /** Members named for a signature share that did not verify. */
  signatureSharesBlamed: Counter<'node'>;
  /** The committee epoch the gateway serves (followed through handover certificates). */
  committeeEpoch: Gauge;
  /** The gateway's own on-chain ACL reader (acl.mode chain or either): tkms_gateway_chain_*. */
  chain: ChainMetrics;
  /** Always 1; the labels carry the versions. */
  buildInfo: Gauge<'version' | 'node_version'>;
}

export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tkms_gateway_' });
  const buildInfo = new Gauge({ name: 'tkms_gateway_build_info', help: 'tkms and Node.js versions of this gateway (value 1)', labelNames: ['version', 'node_version'], registers: [registry] });
  buildInfo.set({ version: tkmsVersion(), node_version: process.version }, 1);
  return {
    registry,
    buildInfo,
    chain: createChainMetrics(registry, 'tkms_gateway_chain'),
    httpRequests: new Counter({ name: 'tkms_gateway_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [registry] }),
    httpSeconds: new Histogram({
      name: 'tkms_gateway_http_duration_seconds',
      help: 'HTTP request duration by route',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    delegations: new Counter({ name: 'tkms_gateway_delegations_total', help: 'Delegation requests by outcome', labelNames: ['outcome'], registers: [registry] }),
    delegationSeconds: new Histogram({
      name: 'tkms_gateway_delegation_fanout_seconds',
      help: 'Time to answer a successful delegation request (ACL checks, fan-out, t partials)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    nodeAnswers: new Counter({ name: 'tkms_gateway_node_answers_total', help: 'Partial answers by node and outcome', labelNames: ['node', 'outcome'], registers: [registry] }),
    signatures: new Counter({ name: 'tkms_gateway_signatures_total', help: 'Threshold signing requests by algorithm and outcome (ok or the refusal code)', labelNames: ['algorithm', 'outcome'], registers: [registry] }),
    signatureSeconds: new Histogram({
      name: 'tkms_gateway_signature_seconds',
      help: 'Time to answer a successful threshold signing request (checks, one round trip to t members, aggregation)',
      labelNames: ['algorithm'],
      buckets: [0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    signatureSharesBlamed: new Counter({ name: 'tkms_gateway_signature_shares_blamed_total', help: 'Members named for a signature share that did not verify (identifiable abort)', labelNames: ['node'], registers: [registry] }),
    keyChanges: new Counter({
      name: 'tkms_gateway_key_changes_total',
      help: 'Key changes sent through the gateway, by action and outcome: "effective" (n − t + 1 members applied it), "pending" (fewer), or the code of the refusal',
      labelNames: ['action', 'outcome'],
      registers: [registry],
    }),
    nodesConnected: new Gauge({ name: 'tkms_gateway_nodes_connected', help: 'Committee members the gateway is connected to', registers: [registry] }),
    committeeEpoch: new Gauge({ name: 'tkms_gateway_committee_epoch', help: 'The committee epoch the gateway serves: its committee file\'s, or the latest a verified handover certificate reached', registers: [registry] }),
    handlesStored: new Gauge({ name: 'tkms_gateway_handles_stored', help: 'Handles in the gateway store', registers: [registry] }),
    httpRefused: new Counter({ name: 'tkms_gateway_http_refused_total', help: 'Requests and connections refused by an HTTP limit, by reason', labelNames: ['reason'], registers: [registry] }),
    requesterKeyChecks: new Counter({
      name: 'tkms_gateway_requester_key_checks_total',
      help: 'Requester RSA keys checked after a delegation was authorized, by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    keyDisagreements: new Counter({
      name: 'tkms_gateway_key_disagreements_total',
      help: 'DKG results members reported that were not published: reason="invalid" (does not verify), "conflict" (different valid results of one session: the key is withdrawn; or two sessions each held by t members: not published), "other_session" (a valid result of another session for a published key: ignored, the key is kept)',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}
