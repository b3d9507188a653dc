import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DkgPublicResult } from '../core/dkg/index.ts';
import type { Committee } from '../net/committee.ts';
import type { Route } from '../net/http.ts';
import { tkmsVersion } from '../runtime/version.ts';
import type { DkgStatus } from './dkg-runner.ts';
import type { ReshareStatus } from './epoch-types.ts';
import { keyFileName } from './keystore-format.ts';
import type { NodeMetrics } from './metrics.ts';
import type { GrantSource } from '../core/authz.ts';

/**
 * `GET /admin/status` (admin listener), what `tkms node status` prints: version, committee,
 * which members this node is connected to, the keys it holds and the last DKG it completed.
 */

/**
 * SHA-256 over the committee's canonical form (ids, peer ids, addresses, t): every member and
 * the gateway must load the same committee file, and operators compare this value to check.
 */
export function committeeFingerprint(committee: Committee): string {
  const canonical = JSON.stringify({
    committeeId: committee.committeeId,
    t: committee.t,
    members: [...committee.members].sort((a, b) => a.id - b.id).map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: m.multiaddrs })),
  });
  return createHash('sha256').update(canonical).digest('hex');
}

export interface StatusSources {
  committee: Committee;
  selfId: number;
  peerId: string;
  keystoreDir: string;
  startedAt: number;
  metrics: NodeMetrics;
  connectedMembers: () => number[];
  listenAddrs: () => string[];
  heldKeys: () => DkgPublicResult[];
  dkgStatus: (keyId: string) => DkgStatus;
  /** Where grants come from (config acl.mode) and, unless signed, the chain head as the reader sees it. */
  acl?: { mode: GrantSource; head?: () => Promise<{ block: number; ageSeconds: number }> };
  /** The committee served now (after a reshare it differs from the committee file); default: the committee file. */
  served?: () => Committee;
  /** This node's id in the committee served (undefined once it left); default: selfId. */
  servedSelfId?: () => number | undefined;
  /** The reshare or refresh ceremony running now, if any. */
  ceremony?: () => ReshareStatus | undefined;
}

/** `acl` of the status: the mode, and with a chain the head (or why it cannot be read now). */
export type AclStatus = { mode: GrantSource; head?: { block: number; ageSeconds: number } | null; headError?: string };

export interface NodeStatus {
  version: string;
  nodeVersion: string;
  startedAt: string;
  uptimeSeconds: number;
  selfId: number;
  peerId: string;
  listen: string[];
  committee: { committeeId: string; t: number; n: number; fingerprint: string };
  peers: { connected: number; members: { id: number; peerId: string; connected: boolean }[] };
  keys: { keyId: string; publicKey: string; t: number; n: number; storedAt: string | null }[];
  /**
   * The most recent key this node stored. `source` says where the time comes from: `session` (a DKG
   * that finished while this process ran: completion time and duration) or `keyFile` (a key loaded at
   * start: when its file was written — the DKG, or a restore).
   */
  lastDkg: { keyId: string; completedAt: string | null; durationMs: number | null; source: 'session' | 'keyFile' } | null;
  dkgSessionsSinceStart: Record<string, number>;
  acl: AclStatus;
  /** The committee epoch served, with that committee's size and threshold (they change with a reshare). */
  epoch: { epoch: number; n: number; t: number };
  /** The ceremony running now (GET /admin/reshare lists them all). */
  ceremony: { proposalId: string; kind: string; phase: string; attempt: number; startedAt: string | null } | null;
}

async function storedAt(keystoreDir: string, keyId: string): Promise<string | null> {
  try {
    return (await stat(join(keystoreDir, keyFileName(keyId)))).mtime.toISOString();
  } catch {
    return null;
  }
}

async function aclStatus(acl: StatusSources['acl']): Promise<AclStatus> {
  if (acl === undefined) return { mode: 'signed' };
  if (acl.head === undefined) return { mode: acl.mode };
  try {
    return { mode: acl.mode, head: await acl.head() };
  } catch (e) {
    // The reader's errors are typed and name no secret (RPC URLs may carry keys: it keeps them out).
    return { mode: acl.mode, head: null, headError: e instanceof Error ? e.message : 'unreadable' };
  }
}

export async function nodeStatus(src: StatusSources): Promise<NodeStatus> {
  // The committee served and this node's id in it: a reshare changes both (the file keeps the first).
  const committee = src.served?.() ?? src.committee;
  const selfId = src.servedSelfId === undefined ? src.selfId : src.servedSelfId();
  const connected = new Set(src.connectedMembers());
  const keys = await Promise.all(
    src.heldKeys().map(async (k) => ({ keyId: k.keyId, publicKey: k.groupPublicKey, t: k.t, n: k.n, storedAt: await storedAt(src.keystoreDir, k.keyId) })),
  );
  // The last DKG that produced a key here: its finish time from this run, else the key file's time.
  let lastDkg: NodeStatus['lastDkg'] = null;
  let lastAt = -Infinity;
  for (const k of keys) {
    let completedAt = k.storedAt;
    let durationMs: number | null = null;
    let source: 'session' | 'keyFile' = 'keyFile';
    try {
      const s = src.dkgStatus(k.keyId);
      if (s.startedAt !== null && s.durationMs !== undefined) {
        completedAt = new Date(Date.parse(s.startedAt) + s.durationMs).toISOString();
        durationMs = s.durationMs;
        source = 'session';
      }
    } catch {
      // held but unknown to the runner: keep the file time
    }
    const at = completedAt === null ? -1 : Date.parse(completedAt);
    if (at > lastAt) {
      lastAt = at;
      lastDkg = { keyId: k.keyId, completedAt, durationMs, source };
    }
  }
  const sessions: Record<string, number> = { done: 0, aborted: 0 };
  for (const v of (await src.metrics.dkgSessions.get()).values) {
    const outcome = v.labels.outcome;
    if (typeof outcome === 'string') sessions[outcome] = v.value;
  }
  return {
    version: tkmsVersion(),
    nodeVersion: process.version,
    startedAt: new Date(src.startedAt).toISOString(),
    uptimeSeconds: Math.floor((Date.now() - src.startedAt) / 1000),
    selfId: selfId ?? src.selfId,
    peerId: src.peerId,
    listen: src.listenAddrs(),
    committee: { committeeId: committee.committeeId, t: committee.t, n: committee.members.length, fingerprint: committeeFingerprint(committee) },
    peers: {
      connected: connected.size,
      members: committee.members.filter((m) => m.id !== selfId).map((m) => ({ id: m.id, peerId: m.peerId, connected: connected.has(m.id) })),
    },
    keys,
    lastDkg,
    dkgSessionsSinceStart: sessions,
    acl: await aclStatus(src.acl),
    epoch: servedEpoch(committee),
    ceremony: runningCeremony(src.ceremony?.()),
  };
}

function servedEpoch(c: Committee): NodeStatus['epoch'] {
  return { epoch: c.epoch, n: c.members.length, t: c.t };
}

function runningCeremony(s: ReshareStatus | undefined): NodeStatus['ceremony'] {
  return s === undefined ? null : { proposalId: s.proposalId, kind: s.kind, phase: s.phase, attempt: s.attempt, startedAt: s.startedAt };
}

export function statusRoute(src: StatusSources): Route {
  return { method: 'GET', path: '/admin/status', handler: async () => ({ status: 200, json: await nodeStatus(src) }) };
}
