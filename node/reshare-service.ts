import type { Logger } from 'pino';
import type { Libp2p } from 'libp2p';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import { Type } from 'typebox';
import { decodeKeysReply, encodeKeysRequest, equalBytes, KEYS_PROTOCOL, TkmsError } from '../core/index.ts';
import type { CeremonyFaults, CeremonyIdentity, ReshareProposal } from '../core/ceremony/types.ts';
import type { KeyEpochData } from '../core/ceremony/handover.ts';
import type { Committee } from '../core/committee.ts';
import { type FrameClient } from '../net/p2p.ts';
import { errorText } from '../core/errors.ts';
import type { Route } from '../net/http.ts';
import type { EpochStore, ServedEpoch } from './epoch-types.ts';
import type { NodeMetrics } from './metrics.ts';
import type { ShareBook } from './partial.ts';
import { RefreshSchedule } from './refresh-schedule.ts';
import { agreedKeyData, keyDataFromReply } from './reshare-keys.ts';
import { ReshareRunner, type CeremonyFactory } from './reshare-runner.ts';
import { CEREMONY_PROTOCOL } from './reshare-wire.ts';

/**
 * The node's committee-change service, wired to libp2p and the admin API: the runner, the refresh
 * schedule, who may speak /tkms/ceremony/2, and the routes. The daemon starts it with the epoch
 * store and the engine.
 */
export interface ReshareServiceOptions {
  store: EpochStore;
  /** Every key of the served epoch, with or without a share here (NodeEpochStore.epochKeys). */
  epochKeys?: () => KeyEpochData[];
  createCeremony: CeremonyFactory;
  identity: CeremonyIdentity;
  seed: Uint8Array;
  selfPeerId: string;
  libp2p: Libp2p;
  frames: FrameClient;
  shares: ShareBook;
  metrics: NodeMetrics;
  log: Logger;
  phaseMs: number;
  minRefreshSpacingSeconds?: number;
  helloWaitMs?: number;
  faults: CeremonyFaults | undefined;
  /** ReshareRunnerOptions.beforeVoteWrite (a test fault only). */
  beforeVoteWrite?: () => Promise<void>;
  /** Member ids (of the committee served) this node is connected to. */
  connectedMembers: () => number[];
  /** A joining member's last step before it serves (ReshareRunnerOptions.beforeJoining): sync the revocations. */
  beforeJoining?: (proposal: ReshareProposal) => Promise<void>;
  /** When the epoch served was committed (NodeEpochStore.committedAt), so a restart does not delay a due refresh. */
  committedAt?: number;
  /** After the new epoch is served here: the rest of the node follows the committee served (connections, DKG, ACL). */
  onServedChanged?: (served: ServedEpoch, selfId: number | undefined) => void;
}

export interface ReshareService {
  runner: ReshareRunner;
  schedule: RefreshSchedule;
  routes: Route[];
  /** Who may open /tkms/ceremony/2 streams: members of the committee served and of every approved proposal. */
  isParticipant: (peer: string) => boolean;
  /** This node's id in the committee it serves (undefined once it left). */
  servedSelfId: () => number | undefined;
}

const KEYS_TIMEOUT_MS = 5_000;
/** Replies to a ceremony frame are short (ok, or an error). */
const MAX_REPLY_BYTES = 64 * 1024;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export function selfIdIn(committee: Committee, publicKey: Uint8Array): number | undefined {
  return committee.members.find((m) => equalBytes(m.publicKey, publicKey))?.id;
}

const PROPOSAL_ID_BODY = Type.Object(
  { proposalId: Type.String({ pattern: '^(0x)?[0-9a-fA-F]{64}$', description: 'the proposal id GET /admin/reshare lists' }) },
  { additionalProperties: false },
);
const EMPTY_BODY = Type.Object({}, { additionalProperties: false });

export function createReshareService(o: ReshareServiceOptions): ReshareService {
  const { store, log } = o;
  let participants = new Set<string>();
  const refreshParticipants = (): void => {
    const members = runner.participantMembers();
    participants = new Set([...store.served().committee.members, ...members].map((m) => m.peerId).filter((p) => p !== o.selfPeerId));
    // The addresses of members not in the committee file, so this node can dial them.
    for (const m of members) {
      if (m.peerId === o.selfPeerId) continue;
      o.libp2p.peerStore.merge(peerIdFromString(m.peerId), { multiaddrs: m.multiaddrs.map((a) => multiaddr(a)) }).catch((e: unknown) => log.debug({ member: m.id, err: errorText(e) }, 'could not record a participant address'));
    }
  };

  const fetchKeys = async (proposal: ReshareProposal): Promise<KeyEpochData[]> => {
    const others = proposal.from.members.filter((m) => m.peerId !== o.selfPeerId);
    let last: unknown;
    // A member joining must start (and send its hello) before the dealers deal, one phase after they start: ask again soon.
    for (let round = 0; round < 40; round++) {
      const answers = await Promise.all(
        others.map(async (m) => {
          try {
            const reply = decodeKeysReply(await o.frames.request(peerIdFromString(m.peerId), KEYS_PROTOCOL, encodeKeysRequest(Math.max(0, proposal.from.epoch - 1)), { timeoutMs: KEYS_TIMEOUT_MS }));
            return reply.ok ? keyDataFromReply(reply, proposal.from) : undefined;
          } catch {
            return undefined;
          }
        }),
      );
      try {
        return agreedKeyData(answers, proposal.keyIds, proposal.from.t);
      } catch (e) {
        last = e;
        log.debug({ round, answered: answers.filter((a) => a !== undefined).length, err: errorText(e) }, 'key data of the committee leaving not agreed yet');
        await sleep(250);
      }
    }
    throw last instanceof TkmsError ? last : new TkmsError('unavailable', 'the keys could not be read from the committee leaving');
  };

  const runner = new ReshareRunner({
    store,
    identity: o.identity,
    seed: o.seed,
    createCeremony: o.createCeremony,
    transport: { send: (to, frame, timeoutMs) => o.frames.request(peerIdFromString(to.peerId), CEREMONY_PROTOCOL, frame, { timeoutMs, maxReplyBytes: MAX_REPLY_BYTES }) },
    log,
    metrics: o.metrics,
    phaseMs: o.phaseMs,
    minRefreshSpacingSeconds: o.minRefreshSpacingSeconds,
    helloWaitMs: o.helloWaitMs,
    ...(o.faults === undefined ? {} : { faults: o.faults }),
    ...(o.beforeVoteWrite === undefined ? {} : { beforeVoteWrite: o.beforeVoteWrite }),
    ...(o.epochKeys === undefined ? {} : { epochKeys: o.epochKeys }),
    fetchKeys,
    ...(o.beforeJoining === undefined ? {} : { beforeJoining: o.beforeJoining }),
    ...(o.committedAt === undefined ? {} : { committedAt: o.committedAt }),
    onCommitted: (served, shares) => {
      const selfId = selfIdIn(served.committee, o.identity.publicKey);
      o.shares.serveEpoch(selfId, served.committee.epoch, shares);
      refreshParticipants();
      o.onServedChanged?.(served, selfId);
    },
    onParticipantsChanged: refreshParticipants,
  });
  const servedSelfId = (): number | undefined => selfIdIn(store.served().committee, o.identity.publicKey);
  const schedule = new RefreshSchedule({
    served: () => store.served().committee,
    selfId: servedSelfId,
    connected: o.connectedMembers,
    lastCommitAt: () => runner.lastCommitTime,
    busy: () => runner.busy(),
    holdsKeys: () => (o.epochKeys?.() ?? store.shares()).length > 0,
    startRefresh: () => runner.refresh(),
    log,
  });
  const routes: Route[] = [
    { method: 'POST', path: '/admin/reshare/approve', handler: async (_req, _url, body) => ({ status: 202, json: await runner.approve(body) }) },
    {
      method: 'POST',
      path: '/admin/reshare/cancel',
      schema: { body: PROPOSAL_ID_BODY },
      handler: async (_req, _url, body) => {
        const id = (body as { proposalId: string }).proposalId.toLowerCase();
        return { status: 200, json: await runner.cancel(id.startsWith('0x') ? id : `0x${id}`) };
      },
    },
    { method: 'POST', path: '/admin/refresh', schema: { body: EMPTY_BODY }, handler: async () => ({ status: 202, json: await runner.refresh() }) },
    { method: 'GET', path: '/admin/reshare', handler: () => ({ status: 200, json: runner.list() }) },
  ];
  refreshParticipants();
  return { runner, schedule, routes, isParticipant: (peer) => participants.has(peer), servedSelfId };
}
