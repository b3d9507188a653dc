import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Libp2p } from 'libp2p';
import {
  ACL_PROTOCOL,
  encodeHex,
  decodeKeysReply,
  decodeKeysRequest,
  encodeKeysRequest,
  encodeKeysReply,
  isTkmsError,
  KEYS_PROTOCOL,
  MAX_NODE_FRAME_BYTES,
  PARTIAL_BATCH_PROTOCOL,
  PARTIAL_PROTOCOL,
  TkmsError,
} from '../core/index.ts';
import { AclService, joinSyncNeed } from './acl.ts';
import { hasLegacyConfirmations, parseDkgPublicResult, verifyDkgPublicResult, type DkgPublicResult, type ExpectedCommittee } from '../core/dkg/index.ts';
import { committeeFileDigest, type CommitteeMembership } from '../core/committee.ts';
import type { ReshareProposal } from '../core/ceremony/types.ts';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { libp2pCommitteeDecoders, loadCommitteeFile, refusePlaceholderCommitteeId, type Committee } from '../net/committee.ts';
import { resolveKeystorePassword, type NodeConfig } from './config.ts';
import { DkgWithdrawals } from './dkg-withdrawals.ts';
import { handoverPage } from '../core/node-wire.ts';
import { DkgRunner } from './dkg-runner.ts';
import { DKG_PROTOCOL, MAX_DKG_FRAME_BYTES } from './dkg-wire.ts';
import { closeServer, startHttpServer } from '../net/http.ts';
import { loadIdentityFile, type NodeIdentity } from './identity.ts';
import { ServiceRunner, type Service } from '../runtime/lifecycle.ts';
import { Keystore, type StoredKey } from './keystore.ts';
import { installServerCurveBackend } from '../runtime/curve-setup.ts';
import { createLogger, type Logger } from '../runtime/logger.ts';
import { createNodeMetrics } from './metrics.ts';
import { ADMIN_MAX_BODY_BYTES, adminRoutes, healthRoute, listenOrExplain, metricsRoute } from './http-routes.ts';
import { createHost, FrameClient, NODE_PING_INTERVAL_MS, serveFrames, MemberConnections } from '../net/p2p.ts';
import { errorText } from '../core/errors.ts';
import { PartialService, ShareBook } from './partial.ts';
import { SpentRequestIds } from './spent-request-ids.ts';
import { RateLimiter } from '../runtime/rate-limit.ts';
import { ReadBudget } from '../net/read-budget.ts';
import { RevocationStore } from './revocations.ts';
import { statusRoute } from './status.ts';
import { ceremonyIdentity, ceremonySeed } from './ceremony-identity.ts';
import { openEpochStore } from './epoch-store.ts';
import { OriginFetcher } from './key-origins.ts';
import type { EpochStore, NodeEpochStore } from './epoch-types.ts';
import { createReshareService, selfIdIn } from './reshare-service.ts';
import { CEREMONY_PROTOCOL, MAX_CEREMONY_FRAME_BYTES } from './reshare-wire.ts';
import { DkgCeremony, ReshareCeremony } from '../core/ceremony/index.ts';
import type { KeyEpochData } from '../core/ceremony/handover.ts';
import { dkgKeyData } from './epoch-store.ts';
import { DkgStateFiles, dkgStateDir } from './dkg-state.ts';
import { resumeKeyErasures } from './key-erasure.ts';
import { publicResultToJson } from './dkg-runner.ts';
import { openChainAcl } from '../chain/open-chain-acl.ts';
import { holdVoteWhileExists } from './vote-hold.ts';
import { KEY_CHANGES_PROTOCOL } from '../core/keys/key-wire.ts';
import { createKeyServices, type KeyServices } from './key-wiring.ts';
import { SIGN_PROTOCOL } from '../core/signing/sign-wire.ts';
import { heldSigningKey, SignService } from './sign-service.ts';
import { NonceSpentLog } from './sign-nonces.ts';
import { SignValueLedger } from './sign-value-ledger.ts';
import { openNodeKeyRegistry } from './key-registry.ts';

/** Bytes `count` whole client frames take, length prefixes (at most 4 bytes) included. */
const clientFrames = (count: number): number => count * (MAX_NODE_FRAME_BYTES + 4);

/**
 * Streams one connection may keep open per protocol. A member's DKG sends one frame per message
 * and reuses idle streams, so at most one stream per message in flight (n ≤ 256); a gateway keeps
 * up to 64 idle streams per protocol and at most 64 batch frames in flight; revocations are pushed
 * one per revoke; the key list is read now and then.
 */
const PROTOCOL_STREAMS = { dkg: 256, partial: 256, partialBatch: 128, acl: 64, keys: 16, ceremony: 32, keyChanges: 64, sign: 128 } as const;
/** Streams per protocol for a peer that is neither member nor gateway: a client asking directly needs a few. */
const OTHER_PEER_STREAMS = 32;

/**
 * Request frame bytes held at once (being read, or read and not yet answered). A member has at
 * most a few DKG frames (≤ 4 MiB) in flight to one node; a gateway at most 64 batch frames
 * (≤ 1 MiB) plus single requests: 64 MiB each, 256 MiB for all members and gateways together.
 * Anyone else asks directly with small requests: four full-size frames each, 32 MiB together, so
 * outsiders can neither take the memory nor the budget members and gateways need.
 */
function readBudgets(): { trusted: ReadBudget; others: ReadBudget } {
  return { trusted: new ReadBudget(clientFrames(64), clientFrames(256)), others: new ReadBudget(clientFrames(4), clientFrames(32)) };
}

export interface RunningNode {
  selfId: number;
  peerId: string;
  libp2p: Libp2p;
  httpServer: Server;
  adminServer: Server;
  runner: DkgRunner;
  log: Logger;
  stop(): Promise<void>;
}


/**
 * Starts the node: committee, identity, keystore (fails loudly on a wrong password or
 * damaged files), libp2p host and protocols, then the HTTP and admin listeners. Each is a
 * service of one runner, so a failure half-way stops what had started, and stop() closes
 * everything in reverse, the keystore (its master key wiped) last.
 */
export async function startNode(config: NodeConfig, env: Record<string, string | undefined> = process.env): Promise<RunningNode> {
  const committee = await loadCommitteeFile(config.committeeFile);
  refusePlaceholderCommitteeId(committee.committeeId);
  const identity = await loadIdentityFile(config.identityFile);
  const self = committee.members.find((m) => m.peerId === identity.peerId);
  if (self === undefined) {
    throw new TkmsError('bad_request', `this node's peer id ${identity.peerId} is not a member of committee ${committee.committeeId}`);
  }
  const log = createLogger(config.logLevel, { node: self.id });
  if (config.testFaults !== undefined || config.partialFault !== undefined || config.signFault !== undefined) {
    log.warn(
      { testFaults: config.testFaults, partialFault: config.partialFault, signFault: config.signFault, voteHoldFile: config.voteHoldFile },
      '!!! TEST FAULTS ENABLED: this node will MISBEHAVE on purpose. Never use this in production. !!!',
    );
  }
  const curveBackendName = installServerCurveBackend(log, env);
  const password = await resolveKeystorePassword(config, env);
  const services = new ServiceRunner({ log });
  return services.startOrStop(() => startServices({ config, committee, selfId: self.id, identity, password, log, curveBackendName, services }));
}

interface NodeStart {
  config: NodeConfig;
  committee: Committee;
  selfId: number;
  identity: NodeIdentity;
  password: string;
  log: Logger;
  curveBackendName: string;
  services: ServiceRunner;
}

/** Starts the node's services in order on `services` (which stops them if one fails). */
async function startServices({ config, committee, selfId, identity, password, log, curveBackendName, services }: NodeStart): Promise<RunningNode> {
  // Before the keystore lists its keys: a share whose erasure was recorded is never loaded again, even after a crash mid-erasure.
  await resumeKeyErasures({ keystoreDir: config.keystoreDir, stateDir: config.stateDir });
  const keystore = await services.open('keystore', () => Keystore.open(config.keystoreDir, password), (k) => k.close());
  const stored = await keystore.loadAll();
  const nowSeconds = () => Math.floor(Date.now() / 1000);
  const spentIds = await services.open(
    'spent request ids',
    () => SpentRequestIds.open(join(config.stateDir, 'replay.log'), config.clockSkewSeconds, nowSeconds(), config.replayIdsPerRequester),
    (r) => r.close(),
  );
  // Signatures are checked against this node's own committee file, never a committee a request names.
  const deployment = { committeeId: committee.committeeId };
  const revocationLimits = { maxGrantLifetimeSeconds: config.maxGrantLifetimeSeconds, clockSkewSeconds: config.clockSkewSeconds, ...config.revocations };
  const revocations = await services.open(
    'revocations',
    async () => {
      const opened = await RevocationStore.open(join(config.stateDir, 'revocations.log'), deployment, revocationLimits);
      if (opened.tornBytes > 0) log.warn({ tornBytes: opened.tornBytes }, 'revocation log had an incomplete last line (a crash mid-write); it was cut off');
      log.info({ held: opened.store.size, droppedLines: opened.dropped, logBytes: opened.store.logBytes }, 'revocations loaded');
      return opened.store;
    },
    (store) => store.close(),
  );
  // Until the DKG runner exists (below) nothing runs a DKG, and the log's replay checks no material.
  let materialIds = (): Iterable<string> => [];
  const keyRegistry = await services.open('key registry', () => openNodeKeyRegistry(config.stateDir, deployment, config.keys, () => materialIds(), log), (r) => r.close());
  const ceremonyKey = ceremonyIdentity(identity);
  // Files in the keystore directory, nothing held open: nothing to close at stop.
  const epochs = await openEpochStore({ keystore, committee, decoders: libp2pCommitteeDecoders, selfPublicKey: ceremonyKey.publicKey });
  const shares = new ShareBook(selfIdIn(epochs.served().committee, ceremonyKey.publicKey));
  // Everything below follows the committee served, not the committee file: a reshare changes the members and this node's id.
  const servedNow = () => ({ committee: epochs.served().committee, selfId: epochs.memberId() });
  const startServed = servedNow();
  // Set once the reshare service exists (after the host): who else may speak the ceremony protocol.
  let isParticipant = (_peer: string): boolean => false;
  let reshareBusy = (): boolean => false;

  const budgets = readBudgets();
  const metrics = await services.open(
    'metrics',
    () => createNodeMetrics({ revocationsHeld: () => revocations.size, managedKeys: () => keyRegistry.book.size, spentRequestIdsHeld: () => spentIds.size, frameBytesHeld: (peers) => budgets[peers].held }),
    (m) => m.registry.clear(),
  );
  // Created here, listening only once every protocol is handled (the "p2p" service below).
  const libp2p = await services.open(
    'libp2p',
    () => createHost(identity, config.listen, committee, { gatewayPeerIds: config.gatewayPeerIds, gatewayAddresses: config.gatewayAddresses, alsoTrusted: (peer) => isParticipant(peer), pingIntervalMs: NODE_PING_INTERVAL_MS }),
    (host) => host.stop(),
  );
  const conns = new MemberConnections(libp2p, startServed.committee, startServed.selfId, log, () => metrics.peersConnected.set(conns.connectedMembers().length));
  // Kept-alive streams to the other members: a DKG sends n − 1 frames per round, a revocation floods to all.
  const memberFrames = new FrameClient(libp2p);
  const sendToMember = async (memberId: number, protocol: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array> => {
    const peer = conns.peerIdOf(memberId);
    if (peer === undefined) throw new TkmsError('bad_request', `no member ${memberId}`);
    return memberFrames.request(peer, protocol, frame, { timeoutMs });
  };

  const gatewayPeers = new Set(config.gatewayPeerIds);
  if (gatewayPeers.size === 0) log.warn('no gatewayPeerIds configured: revocations pushed by a gateway will be refused');
  // The other members of the committee served (conns follows each commit).
  const isMember = (peer: string): boolean => conns.memberFor(peer) !== undefined;
  const isMemberOrGateway = (peer: string): boolean => isMember(peer) || gatewayPeers.has(peer);
  // Members of an approved reshare's committees get a member's budget and streams too (their frames are large).
  const isTrusted = (peer: string): boolean => isMemberOrGateway(peer) || isParticipant(peer);
  const serve = (maxRequestBytes: number, maxInboundStreams: number, allow?: (peer: string) => boolean) => ({
    maxRequestBytes,
    maxInboundStreams,
    allow,
    timeoutMs: 10_000,
    log,
    trusted: isTrusted,
    budgetFor: (peer: string) => (isTrusted(peer) ? budgets.trusted : budgets.others),
    maxStreamsOf: (peer: string) => (isTrusted(peer) ? maxInboundStreams : OTHER_PEER_STREAMS),
    onRefused: (protocol: string, reason: string) => metrics.p2pStreamsRefused.inc({ protocol, reason }),
  });
  /**
   * A service answering libp2p protocols: handled at start, unhandled at stop (new streams are
   * refused). `prepare` runs first and `release` at stop, also when the start fails.
   */
  const protocolService = (name: string, protocols: [string, Parameters<typeof serveFrames>[2], ReturnType<typeof serve>][], hooks: { prepare?: () => void; release?: () => void } = {}): Service => ({
    name,
    async start() {
      try {
        hooks.prepare?.();
        for (const [protocol, handler, options] of protocols) await serveFrames(libp2p, protocol, handler, options);
      } catch (e) {
        hooks.release?.();
        await libp2p.unhandle(protocols.map(([protocol]) => protocol));
        throw e;
      }
    },
    async stop() {
      hooks.release?.();
      await libp2p.unhandle(protocols.map(([protocol]) => protocol));
    },
  });

  const seed = await ceremonySeed(keystore);
  const runner: DkgRunner = new DkgRunner({
    committee: startServed.committee,
    selfId: startServed.selfId,
    identity: ceremonyKey,
    seed,
    createCeremony: (params, id, options) => new DkgCeremony(params, id, options),
    committeeAt: (epoch) => expectedAt(epochs.committeeAt(epoch)),
    servedKeyIds: () => servedKeys().map((k) => k.keyId),
    keystore,
    state: await DkgStateFiles.open(dkgStateDir(config.stateDir)),
    log,
    metrics,
    phaseMs: config.dkgPhaseTimeoutMs,
    ...(config.testFaults === undefined ? {} : { faults: config.testFaults }),
    onKeyStored: (result, share) => {
      shares.add(result, share);
      // The epoch store serves it from now on too (a reshare moves it).
      epochs.noteDkgKey(result.keyId).catch((e: unknown) => log.error({ keyId: result.keyId, err: errorText(e) }, 'the epoch store could not take the new key; restart the node before a reshare'));
    },
    withdrawals: await DkgWithdrawals.open(join(config.stateDir, 'dkg-withdrawn.json')),
    reshareBusy: () => reshareBusy(),
    admitKeyId: (keyId) => keys.material.admit(keyId),
    curveOf: (keyId) => keys.material.curveOf(keyId),
    beforeProposal: (keyId, proposer) => keys.changes.pullBeforeDkg(keyId, proposer),
    transport: { send: (memberId, frame, timeoutMs) => sendToMember(memberId, DKG_PROTOCOL, frame, timeoutMs) },
  });
  // Every key id with a DKG result (shared or not) or a stored share here.
  materialIds = () => new Set([...runner.heldKeys().map((r) => r.keyId), ...keystore.list(), ...epochs.epochKeys().map((k) => k.keyId)]);
  const keys: KeyServices = createKeyServices({
    registry: keyRegistry,
    runner,
    served: servedNow,
    sendToMember,
    identity: ceremonyKey,
    committeeId: committee.committeeId,
    keystoreDir: config.keystoreDir,
    stateDir: config.stateDir,
    shares,
    epochs,
    allowShortDeletionWindow: config.keys.allowShortDeletionWindow,
    log,
    metrics,
  });
  epochs.setDroppable((keyId) => keys.deletion.isDestroyed(keyId));
  // Keys of the served epoch, also those made by a DKG this node took no share of (a reshare must name them too).
  const servedKeys = (): KeyEpochData[] => withPublicOnlyKeys(epochs.epochKeys(), runner, epochs.served().committee.epoch);
  // Members only, checked when the stream opens: an outsider's frame is never read.
  await services.start(
    protocolService('dkg runner', [[DKG_PROTOCOL, async (remotePeer, body) => runner.answerFrame(conns.memberFor(remotePeer)!.id, body), serve(MAX_DKG_FRAME_BYTES, PROTOCOL_STREAMS.dkg, isMember)]], {
      prepare: () => {
        // After a reshare or refresh the epoch store's shares are the ones served, not the DKG's.
        const served = epochs.served();
        const atDkgEpoch = served.committee.epoch === 0;
        loadHeldKeys(runner, atDkgEpoch ? shares : undefined, stored, (epoch) => expectedAt(epochs.committeeAt(epoch)));
        loadOrigins(runner, epochs);
        runner.loadPublicOnlyResults();
        if (!atDkgEpoch) shares.serveEpoch(selfIdIn(served.committee, ceremonyKey.publicKey), served.committee.epoch, epochs.shares());
        metrics.committeeEpoch.set(served.committee.epoch);
      },
      release: () => runner.stop(),
    }),
  );
  // Before any partial is served: a node that cannot read its chain refuses to start (fail closed).
  const partialAcl = await openChainAcl(config.acl, { services, metrics: metrics.chain.sink, log });
  const chainAcl = partialAcl.chain;
  const partials = new PartialService({
    acl: partialAcl,
    keys: keyRegistry.book,
    deployment,
    shares,
    spentIds,
    revocations,
    metrics,
    log,
    clockSkewSeconds: config.clockSkewSeconds,
    maxGrantLifetimeSeconds: config.maxGrantLifetimeSeconds,
    limiter: new RateLimiter(config.partialRateLimit.perMinute, config.partialRateLimit.burst),
    fault: config.partialFault,
  });
  await services.start(
    protocolService('partial service', [
      [PARTIAL_PROTOCOL, async (_peer, body) => partials.answerFrame(body), serve(MAX_NODE_FRAME_BYTES, PROTOCOL_STREAMS.partial)],
      // The same frame-count bound as the single-request protocol, so the same memory bound (frames are
      // capped in bytes); gateways may each keep up to 64 batch frames in flight to this node.
      [PARTIAL_BATCH_PROTOCOL, async (_peer, body) => partials.answerBatch(body), serve(MAX_NODE_FRAME_BYTES, PROTOCOL_STREAMS.partialBatch)],
    ]),
  );
  // Threshold signing: gateways coordinate, so only they may ask (commitments cost this node memory).
  const spentNonces = await services.open('spent nonces', () => NonceSpentLog.open(join(config.stateDir, 'sign-nonces-spent.log')), (l) => l.close());
  const valueLedger = await services.open('sign value ledger', () => SignValueLedger.open(join(config.stateDir, 'sign-value.log')), (l) => l.close());
  const signer = new SignService({
    keys: keyRegistry.book,
    held: (materialId) => heldSigningKey(shares, epochs, materialId),
    deployment,
    spent: spentNonces,
    ledger: valueLedger,
    limiter: new RateLimiter(config.partialRateLimit.perMinute, config.partialRateLimit.burst),
    metrics,
    log,
    clockSkewSeconds: config.clockSkewSeconds,
    fault: config.signFault,
  });
  await services.start(
    protocolService('sign service', [[SIGN_PROTOCOL, async (_peer, body) => signer.answer(body), serve(MAX_NODE_FRAME_BYTES, PROTOCOL_STREAMS.sign, (peer) => gatewayPeers.has(peer))]]),
  );
  const acl = new AclService(
    revocations,
    {
      members: () => {
        const { committee: c, selfId: self } = servedNow();
        return c.members.map((m) => m.id).filter((id) => id !== self);
      },
      send: (memberId, frame, timeoutMs) => sendToMember(memberId, ACL_PROTOCOL, frame, timeoutMs),
    },
    log,
    metrics,
  );
  // Revocations come from members (flooding, sync) and the gateway(s) only; a member joining by an
  // approved reshare syncs them before it serves (isParticipant), and may send them (each is owner-signed).
  await services.start(
    protocolService('acl', [[ACL_PROTOCOL, async (peer, body) => acl.answer(conns.memberFor(peer)?.id, body), serve(MAX_NODE_FRAME_BYTES, PROTOCOL_STREAMS.acl, (peer) => isMemberOrGateway(peer) || isParticipant(peer))]], { release: () => acl.stop() }),
  );
  // Key changes come from members (flooding, sync) and the gateway(s) only; each is admin-signed.
  await services.start(
    protocolService('key changes', [[KEY_CHANGES_PROTOCOL, async (peer, body) => keys.changes.answer(conns.memberFor(peer)?.id, body), serve(MAX_NODE_FRAME_BYTES, PROTOCOL_STREAMS.keyChanges, isMemberOrGateway)]], {
      release: () => keys.stop(),
    }),
  );
  const joinSyncAttempts = new Map<string, number>();
  const syncBeforeJoining = async (proposal: ReshareProposal): Promise<void> => {
    const sources = proposal.from.members
      .filter((m) => m.peerId !== identity.peerId)
      .map((m) => ({ member: m.id, send: (frame: Uint8Array, timeoutMs: number) => memberFrames.request(peerIdFromString(m.peerId), ACL_PROTOCOL, frame, { timeoutMs }) }));
    const key = encodeHex(committeeFileDigest(proposal.to));
    const attempt = (joinSyncAttempts.get(key) ?? 0) + 1;
    joinSyncAttempts.set(key, attempt);
    const need = joinSyncNeed(proposal.from.t, sources.length, attempt);
    const { synced, added } = await acl.syncUnion(sources, need);
    log.info({ fromEpoch: proposal.from.epoch, synced, of: sources.length, added, held: revocations.size }, 'joining member synced the revocations of the committee leaving');
  };
  // Public (the same results GET /v1/keys serves), so open to anyone.
  await services.start(protocolService('key list', [[KEYS_PROTOCOL, async (_peer, body) => keysReply(runner, epochs, body), serve(MAX_NODE_FRAME_BYTES, PROTOCOL_STREAMS.keys)]]));
  // A member that joined by a reshare asks the others for the DKG results of the keys it serves.
  const origins = new OriginFetcher({
    store: epochs,
    selfPeerId: identity.peerId,
    peerIdOf: (publicKey) => peerIdFromPublicKey(publicKeyFromRaw(publicKey)).toString(),
    askKeys: async (peer) => {
      const reply = decodeKeysReply(await memberFrames.request(peerIdFromString(peer), KEYS_PROTOCOL, encodeKeysRequest(epochs.served().committee.epoch), { timeoutMs: 5_000 }));
      return reply.ok ? reply.keys : undefined;
    },
    onStored: (result) => runner.addHeldKey(result),
    log,
  });
  const reshare = createReshareService({
    store: epochs,
    // A destroyed key is not carried to the next committee: its shares are erased, or about to be.
    epochKeys: () => servedKeys().filter((k) => !keys.deletion.isDestroyed(k.keyId)),
    createCeremony: (params, id, options) => new ReshareCeremony(params, id, options),
    identity: ceremonyKey,
    seed,
    selfPeerId: identity.peerId,
    libp2p,
    frames: memberFrames,
    shares,
    metrics,
    log,
    phaseMs: config.resharePhaseTimeoutMs,
    minRefreshSpacingSeconds: config.minRefreshSpacingSeconds,
    helloWaitMs: config.reshareApprovalWindowSeconds * 1000,
    faults: config.ceremonyFaults,
    ...(config.voteHoldFile === undefined ? {} : { beforeVoteWrite: holdVoteWhileExists(config.voteHoldFile, log) }),
    connectedMembers: () => conns.connectedMembers(),
    beforeJoining: syncBeforeJoining,
    ...(epochs.committedAt() === undefined ? {} : { committedAt: epochs.committedAt()! }),
    onServedChanged: (served, self) => {
      runner.serveCommittee(served.committee, self);
      try {
        loadOrigins(runner, epochs);
      } catch (e) {
        log.error({ err: errorText(e) }, 'a stored origin of a moved key does not verify; it is not published (restart the node to stop on it)');
      }
      origins.kick();
      conns.setCommittee(served.committee, self).catch((e: unknown) => log.error({ err: errorText(e) }, 'could not record the addresses of the committee served'));
      log.info({ epoch: served.committee.epoch, selfId: self ?? null, n: served.committee.members.length, t: served.committee.t }, 'now a member of the committee served at this epoch');
    },
  });
  isParticipant = reshare.isParticipant;
  reshareBusy = () => reshare.runner.busy();
  // Members of the served committee and of approved proposals only: a gateway or outsider is refused at the stream.
  await services.start(
    protocolService('reshare runner', [[CEREMONY_PROTOCOL, async (peer, body) => reshare.runner.answerFrame(peer, body), serve(MAX_CEREMONY_FRAME_BYTES, PROTOCOL_STREAMS.ceremony, reshare.isParticipant)]], {
      release: () => {
        reshare.schedule.stop();
        reshare.runner.stop();
      },
    }),
  );
  conns.onMemberConnected = (memberId) => {
    acl.syncOnConnect(memberId, () => conns.isConnected(memberId)).catch((e: unknown) => log.warn({ member: memberId, err: errorText(e) }, 'revocation sync failed'));
    keys.changes.syncFrom(memberId).catch((e: unknown) => log.debug({ member: memberId, err: errorText(e) }, 'key change sync failed'));
    runner.exchangeResults(memberId);
  };
  await services.start({
    name: 'p2p',
    async start() {
      await libp2p.start();
      await conns.start();
      metrics.peersConnected.set(0);
      reshare.runner.resume();
      reshare.schedule.start();
      await keys.start();
      origins.kick();
    },
    async stop() {
      origins.stop();
      conns.stop();
      await memberFrames.close();
    },
  });

  const httpRoutes = [healthRoute(servedNow, identity.peerId, conns, runner), metricsRoute(metrics)];
  const httpServer = await services.open('http', () => listenOrExplain('HTTP', () => startHttpServer(config.http.host, config.http.port, httpRoutes, log, 'http')), closeServer);
  const status = statusRoute({
    committee,
    selfId,
    servedSelfId: () => epochs.memberId(),
    peerId: identity.peerId,
    keystoreDir: config.keystoreDir,
    startedAt: Date.now(),
    metrics,
    connectedMembers: () => conns.connectedMembers(),
    listenAddrs: () => libp2p.getMultiaddrs().map((m) => m.toString()),
    heldKeys: () => runner.heldKeys(),
    dkgStatus: (keyId) => runner.status(keyId),
    acl: { mode: config.acl.mode, ...(chainAcl ? { head: () => chainAcl.head() } : {}) },
    served: () => epochs.served().committee,
    ceremony: () => reshare.runner.current(),
  });
  const adminServer = await services.open('admin', () => listenOrExplain('HTTP', () => startHttpServer(config.admin.host, config.admin.port, [...adminRoutes(runner), ...reshare.routes, status], log, 'admin', { maxBodyBytes: ADMIN_MAX_BODY_BYTES })), closeServer);

  log.info(
    {
      selfId,
      peerId: identity.peerId,
      committeeId: committee.committeeId,
      t: committee.t,
      n: committee.members.length,
      listen: libp2p.getMultiaddrs().map((m) => m.toString()),
      keys: runner.heldKeys().map((k) => k.keyId),
      curveBackend: curveBackendName,
      aclMode: config.acl.mode,
    },
    'tkms node started',
  );
  const stop = async (): Promise<void> => {
    log.info('stopping');
    await services.stop();
  };
  return { selfId, peerId: identity.peerId, libp2p, httpServer, adminServer, runner, log, stop };
}

/** The public key list with the epoch served and the certificates that lead to it, or a typed refusal, for the keys protocol. */
function keysReply(runner: DkgRunner, epochs: EpochStore, body: Uint8Array): Uint8Array {
  try {
    const { handoversFrom } = decodeKeysRequest(body);
    const served = epochs.served();
    const epoch = served.committee.epoch;
    return encodeKeysReply({ ok: true, keys: runner.publishedKeys(), ...(epoch > 0 ? { epoch, handovers: handoverPage(served.handovers, handoversFrom) } : {}) });
  } catch (e) {
    const err = isTkmsError(e) ? e : new TkmsError('internal', 'internal error');
    return encodeKeysReply({ ok: false, code: err.code, message: err.message });
  }
}

/** The epoch store's keys, and the DKG results of the served epoch this node holds without a share. */
function withPublicOnlyKeys(keys: KeyEpochData[], runner: DkgRunner, epoch: number): KeyEpochData[] {
  const known = new Set(keys.map((k) => k.keyId));
  const extra = runner
    .heldKeys()
    .filter((r) => !runner.holdsShare(r.keyId) && !known.has(r.keyId) && (r.epoch ?? 0) === epoch)
    .map((r) => dkgKeyData(r.keyId, publicResultToJson(r)));
  return extra.length === 0 ? keys : [...keys, ...extra].sort((a, b) => (a.keyId < b.keyId ? -1 : 1));
}

/** What a DKG result of an epoch must verify against: that epoch's committee. */
function expectedAt(c: CommitteeMembership | undefined): ExpectedCommittee | undefined {
  return c === undefined ? undefined : { committeeId: c.committeeId, t: c.t, memberKeys: new Map(c.members.map((m) => [m.id, m.publicKey])) };
}

/**
 * Hands the DKG results of the keys a reshare moved here (their origins, node/epoch-store.ts) to the
 * DKG runner, which publishes them in the keys reply with the certificates: without them a key whose
 * DKG-time file the commit erased would vanish from the keys protocol at the next restart. Checked
 * against the committee of their epoch when the chain stored names it; else the store already tied
 * them to the certified group key (a verifier pinned earlier checks the signatures itself).
 */
function loadOrigins(runner: DkgRunner, epochs: NodeEpochStore): void {
  const held = new Set(runner.heldKeys().map((k) => k.keyId));
  for (const origin of epochs.origins()) {
    try {
      let result = parseDkgPublicResult(origin);
      if (held.has(result.keyId)) continue;
      const expected = expectedAt(epochs.committeeAt(result.epoch ?? 0));
      if (expected !== undefined) result = verifyDkgPublicResult(result, expected);
      runner.addHeldKey(result);
    } catch (e) {
      throw new TkmsError('keystore_corrupt', `stored origin of key ${String(origin['keyId'])} is invalid: ${errorText(e)}`);
    }
  }
}

/** Hands the keystore's keys to the DKG runner and (at the DKG's epoch) the share book, checking each stored public result against its epoch's committee. */
function loadHeldKeys(runner: DkgRunner, shares: ShareBook | undefined, stored: StoredKey[], expectedFor: (epoch: number) => ExpectedCommittee | undefined): void {
  for (const key of stored) {
    let result: DkgPublicResult;
    let legacy = false;
    try {
      // The keystore keeps the result in sorted key order: parse, don't require the canonical bytes.
      result = parseDkgPublicResult(key.publicResult);
      if (result.keyId !== key.keyId) throw new TkmsError('keystore_corrupt', `it carries the public result of ${result.keyId}`);
      const expected = expectedFor(result.epoch ?? 0);
      if (expected === undefined) throw new TkmsError('keystore_corrupt', `it was made at epoch ${result.epoch ?? 0}, whose committee no stored certificate names`);
      try {
        result = verifyDkgPublicResult(result, expected);
      } catch (e) {
        // Stored by 70e9873 or earlier: signatures over the transcript only. Re-signed with the other members.
        if (!hasLegacyConfirmations(result, expected)) throw e;
        legacy = true;
      }
    } catch (e) {
      throw new TkmsError('keystore_corrupt', `stored public result of key ${key.keyId} is invalid: ${errorText(e)}`);
    }
    if (legacy) runner.addLegacyKey(result);
    else runner.addHeldKey(result);
    // A key withdrawn for a split (before results were certified) stays withdrawn.
    if (!runner.isWithdrawn(result.keyId)) shares?.add(result, key.share);
  }
}
