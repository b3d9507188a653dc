import { sha256 } from '@noble/hashes/sha2.js';
import {
  assertKeyId,
  authorizeDelegation,
  bytesToHex,
  checkGrantTimes,
  decodeAddress,
  decodeBase64,
  decodeHandle,
  decodeHex,
  decodePoint,
  encodeBase64,
  encodePoint,
  encodeHex,
  EPHEMERAL_PROOF_LENGTH,
  NONCE_LENGTH,
  partialAnswerToJson,
  committeeToJson,
  requireOnChainGrant,
  sealToHandle,
  TAG_LENGTH,
  TkmsError,
  verifyEncryptRequest,
  verifyGrant,
  verifyRegisterHandle,
  verifyRevocation,
  isTkmsError,
  type GrantSource,
  type HandleDescriptor,
  DelegationMessage,
  EncryptRequestMessage,
  GrantMessage,
  HandleDescriptorMessage,
  RegisterHandleMessage,
  RevocationMessage,
} from '../core/index.ts';
import type { IncomingMessage } from 'node:http';
import { Type, type Static } from 'typebox';
import { clientIp, reserveResponseBytes, type Route, type RouteHandler } from '../net/http.ts';
import type { RequestSchema } from '../net/http-validation.ts';
import { API_ROUTES, pathParamNames, queryInteger, type ApiRoute } from './api-routes.ts';
import { DelegateBody, EncryptBody, PathParams, RegisterHandleBody } from './api-schemas.ts';
import type { GatewayConfig } from './config.ts';
import { keyToJson, secp256k1PublicKey, type KeyDirectory } from './keys.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { NodePool } from './node-pool.ts';
import { keyDestruction } from './key-receipts.ts';
import { DecryptApprovalMessage } from '../core/keys/decrypt-approval.ts';
import { keyVersionsAt, materialKeyId, requireUsable, requireUsage } from '../core/keys/key-model.ts';
import { buildOpenApiDocument } from './openapi.ts';
import { shortfallError } from './shortfall.ts';
import type { RateLimiter } from '../runtime/rate-limit.ts';
import type { GatewayStore, StoredGrant, StoredHandle } from './store.ts';
import { RequesterKeys } from './requester-keys.ts';
import type { GatewayKeyRegistry } from './key-registry.ts';
import { derivedPublicKey, deriveKeyTweak } from '../core/keys/derive.ts';
import { encryptionMaterial, keyRouteHandlers, keyView, managedListing } from './key-routes.ts';
import type { SignCoordinator } from './sign-coordinator.ts';
import { signRouteHandlers } from './sign-routes.ts';
import { MAX_LISTED_GRANTS, type ChainAcl } from '../chain/chain-acl.ts';

const routeNamed = (operationId: string): ApiRoute => API_ROUTES.find((r) => r.operationId === operationId)!;

/**
 * The gateway's HTTP API. The gateway checks signatures, windows, handle commitments, grants,
 * revocations and RSA keys before it asks any node (so bad requests fail early and cheaply),
 * but it is not trusted for them: every node repeats every check and keeps its own spent request ids.
 * Per-account rate limits are charged only after the account's signature verified, so nobody
 * can spend another account's budget; a per-IP limit in front bounds the signature checks.
 */
/** The on-chain ACL as the gateway reads it: its reader and acl.chain.confirmations. */
interface GatewayChain {
  reader: ChainAcl;
  confirmations: number;
  /** acl.chain.fromBlock: the contract's deployment block; no B before it is named. */
  fromBlock: number;
}

export interface GatewayContext {
  config: GatewayConfig;
  store: GatewayStore;
  keys: KeyDirectory;
  pool: NodePool;
  limiter: RateLimiter;
  /** Charged per client IP before a request's body is read (every route but the probes). */
  ipLimiter: RateLimiter;
  metrics: GatewayMetrics;
  now?: () => number;
  /** The gateway's own reader of the on-chain ACL, started; required unless config acl.mode is signed. */
  chainAcl?: ChainAcl;
  /** The gateway's copy of the managed keys; start-up always opens one (absent: a context that serves none). */
  keyRegistry?: GatewayKeyRegistry;
  /** The FROST coordinator with its supply of members' nonce commitments; start-up always makes one (absent: no signing). */
  signer?: SignCoordinator;
}

/** The stored handle's descriptor: the store wrote it from a checked one, so it is decoded without re-validation. */
function descriptorOf(h: StoredHandle): HandleDescriptor {
  return HandleDescriptorMessage.decodeValid({ keyId: h.keyId, K: h.K, nonce: h.nonce, ciphertextHash: h.ciphertextHash, owner: h.owner, kProof: h.kProof } as never);
}

function handleJson(h: StoredHandle): Record<string, unknown> {
  return {
    handle: h.handle,
    keyId: h.keyId,
    K: h.K,
    nonce: h.nonce,
    ciphertextHash: h.ciphertextHash,
    owner: h.owner,
    kProof: h.kProof,
    createdAt: new Date(h.createdAt).toISOString(),
  };
}

/**
 * What an answer carrying a ciphertext of `ciphertextBytes` may take: its base64 and the JSON
 * around it (metadata, and for a delegation t partials); charged before the ciphertext is read.
 */
export function handleResponseBytes(ciphertextBytes: number): number {
  return Math.ceil(ciphertextBytes / 3) * 4 + 64 * 1024;
}

/**
 * What a handle's grant listing of `count` grants may take: each entry's fields have fixed sizes
 * (hex handle, address, 65-byte signature, safe integers, a status word), under 400 bytes of JSON.
 */
export function grantsResponseBytes(count: number): number {
  return count * 400 + 64 * 1024;
}

/** The store's record of a grant: its wire JSON, as core encodes it. */
function storedGrant(json: Record<string, unknown>): StoredGrant {
  return { handle: json.handle as string, grantee: json.grantee as string, notAfter: json.notAfter as number, issuedAt: json.issuedAt as number, signature: json.signature as string };
}

/**
 * Spent encrypt request ids, until their window closes: a replayed encrypt would only
 * duplicate, but it is refused all the same. Bounded like the nodes' spent request ids.
 */
const MAX_SPENT_IDS = 1_000_000;
class SpentIds {
  private readonly until = new Map<string, number>();
  claim(id: string, untilSeconds: number, nowSeconds: number): void {
    if ((this.until.get(id) ?? -1) >= nowSeconds) throw new TkmsError('replayed', `request id ${id} was already used`);
    if (this.until.size >= MAX_SPENT_IDS) for (const [k, v] of this.until) if (v < nowSeconds) this.until.delete(k);
    if (this.until.size >= MAX_SPENT_IDS) throw new TkmsError('unavailable', 'too many encrypt requests in flight; try again later');
    this.until.set(id, untilSeconds);
  }
}

export function gatewayRoutes(ctx: GatewayContext): Route[] {
  // A requester reuses its RSA key across decrypts; importing and checking one costs ~1 ms.
  const requesterKeys = new RequesterKeys({ capacity: 4096, refusedCapacity: 1024, refusedForMs: 10 * 60_000 }, (outcome) => ctx.metrics.requesterKeyChecks.inc({ outcome }), () => nowMs());
  const nowMs = (): number => ctx.now?.() ?? Date.now();
  const nowSeconds = (): number => Math.floor(nowMs() / 1000);
  const time = (): { nowSeconds: number; clockSkewSeconds: number } => ({ nowSeconds: nowSeconds(), clockSkewSeconds: ctx.config.clockSkewSeconds });
  const spentEncryptIds = new SpentIds();
  // Read at use, not here: the route table is also built without a context (the API description).
  // A context built without an acl group (tests of other routes) reads no chain.
  const aclMode = (): GrantSource => ctx.config.acl?.mode ?? 'signed';
  /** The chain reader and the confirmations block B is taken with, unless the deployment reads no chain (mode signed). */
  const chainReader = (): GatewayChain | undefined => {
    if (aclMode() === 'signed') return undefined;
    const chain = ctx.config.acl.chain;
    // Start-up refuses both; a context built without them is a wiring bug, never a reason to read at the head.
    if (ctx.chainAcl === undefined || chain === undefined) throw new TkmsError('internal', `acl.mode is ${aclMode()} but the gateway has no chain reader or no acl.chain`);
    return { reader: ctx.chainAcl, confirmations: chain.confirmations, fromBlock: chain.fromBlock };
  };
  /**
   * The block every node reads the ACL at: the gateway's head minus acl.chain.confirmations, so a
   * grant or revocation counts once it is that deep, and every node decides on the same state.
   */
  const aclBlock = async (chain: GatewayChain): Promise<number> => {
    const head = await chain.reader.head();
    const block = head.block - chain.confirmations;
    // Naming the deployment block instead would count a grant with fewer confirmations than configured.
    if (block < chain.fromBlock) {
      throw new TkmsError('unavailable', `the TkmsAcl contract (deployed at block ${chain.fromBlock}) has fewer than ${chain.confirmations} confirmations at head ${head.block}: retry in a few blocks`);
    }
    return block;
  };
  // The gateway's own committee file names the deployment, never a request.
  const deployment = (): { committeeId: string } => ({ committeeId: ctx.pool.committee.committeeId });

  const getHandle = (raw: string | undefined): StoredHandle => {
    const handle = encodeHex(decodeHandle(raw));
    const h = ctx.store.getHandle(handle);
    if (h === undefined) throw new TkmsError('not_found', `no handle ${handle}`);
    return h;
  };

  const storeHandle = async (meta: StoredHandle, ciphertext: Uint8Array): Promise<{ status: number; json: unknown }> => {
    const { created } = await ctx.store.putHandle(meta, ciphertext);
    ctx.metrics.handlesStored.set(ctx.store.stats().handles);
    return { status: created ? 201 : 200, json: { ...handleJson(ctx.store.getHandle(meta.handle) ?? meta), created } };
  };

  /** Published group keys by key id, for the managed keys' versions. */
  const publicKeyOf = (): ((materialId: string) => string | undefined) => {
    const published = new Map(ctx.keys.list().map((k) => [k.result.keyId, k.result.groupPublicKey]));
    return (materialId) => published.get(materialId);
  };

  const handlers: Record<string, RouteHandler> = {
    ...keyRouteHandlers(ctx, nowSeconds, publicKeyOf),
    // Read at use, as the rest: the route table is also built without a context.
    ...signRouteHandlers(
      {
        keyRegistry: () => ctx.keyRegistry,
        keys: () => ctx.keys,
        coordinator: () => {
          if (ctx.signer === undefined) throw new TkmsError('internal', 'this gateway was built without a signing coordinator');
          return ctx.signer;
        },
        members: (kind) => (kind === 'psbt' ? ctx.pool.membersBestFirst() : ctx.pool.membersInTurn()),
        limiter: () => ctx.limiter,
        metrics: () => ctx.metrics,
        deployment,
      },
      time,
    ),
    getOpenApiDocument: () => ({ status: 200, json: buildOpenApiDocument() }),
    getHealth: () => {
      const connected = ctx.pool.connectedMembers();
      const t = ctx.pool.committee.t;
      const ready = connected.length >= t;
      return {
        status: ready ? 200 : 503,
        json: { status: ready ? 'ready' : 'not_ready', committeeId: ctx.pool.committee.committeeId, t, n: ctx.pool.committee.members.length, nodesConnected: connected, keys: ctx.keys.list().map((k) => k.result.keyId) },
      };
    },
    getMetrics: async () => ({ status: 200, text: await ctx.metrics.registry.metrics(), contentType: ctx.metrics.registry.contentType }),
    listKeys: async (req, url) => {
      await ctx.keys.refresh();
      const { managed, managedNext } = managedListing(ctx.keyRegistry, url, nowSeconds(), publicKeyOf());
      reserveResponseBytes(req, JSON.stringify(managed).length);
      return { status: 200, json: { keys: ctx.keys.list().map((k) => keyToJson(k, ctx.keys.madeBy(k))), managed, managedNext } };
    },
    getKey: async (_req, _url, _body, params) => {
      const id = params.keyId!;
      const managed = ctx.keyRegistry?.book.resolve(id);
      // An alias names a managed key only; its version 1 is the DKG key of the managed key's id.
      if (id.startsWith('alias/') && managed === undefined) throw new TkmsError('unknown_key', `no managed key has the alias ${id}`);
      const dkgKeyId = managed?.keyId ?? id;
      assertKeyId(dkgKeyId);
      let key: Awaited<ReturnType<KeyDirectory['get']>> | undefined;
      try {
        key = await ctx.keys.get(dkgKeyId);
      } catch (e) {
        if (managed === undefined || !isTkmsError(e, 'unknown_key')) throw e;
      }
      // A DKG version whose result the gateway has not read yet (a create or rotate moments ago): read
      // the members' keys once (at most one read a second for every caller), so describe shows it when ready.
      if (managed !== undefined && managed.origin.type === 'dkg') {
        const newest = materialKeyId(managed.keyId, keyVersionsAt(managed, nowSeconds()).length);
        if (publicKeyOf()(newest) === undefined) await ctx.keys.get(newest).catch(() => undefined);
      }
      const destruction = managed === undefined ? undefined : await keyDestruction(managed, nowSeconds(), ctx.pool.committee, (id, protocol, frame, timeoutMs) => ctx.pool.sendRaw(id, protocol, frame, timeoutMs), ctx.config.partialTimeoutMs);
      const view = managed === undefined ? {} : { managed: { ...keyView(managed, nowSeconds(), publicKeyOf()), ...(destruction === undefined ? {} : { destruction }) } };
      return { status: 200, json: key === undefined ? view : { ...keyToJson(key, ctx.keys.madeBy(key)), ...view } };
    },
    getCommittee: async (_req, url) => {
      const since = queryInteger(routeNamed('getCommittee'), url, 'since') ?? 0;
      await ctx.keys.refresh();
      const epochs = ctx.keys.epochs;
      const page = epochs.page(since);
      return { status: 200, json: { committeeId: epochs.current.committeeId, epoch: epochs.epoch, committee: committeeToJson(epochs.current), handovers: page.handovers, next: page.next } };
    },
    encrypt: async (_req, _url, body) => {
      const o = body as Static<typeof EncryptBody>;
      const request = EncryptRequestMessage.decodeValid(o.request as never);
      const plaintext = decodeBase64(o.plaintext, { name: 'plaintext', maxLength: ctx.config.maxPlaintextBytes });
      const owner = encodeHex(request.owner);
      verifyEncryptRequest(request, plaintext, time(), deployment());
      ctx.limiter.take(owner);
      const target = encryptionMaterial(ctx.keyRegistry, request.keyId, nowSeconds(), publicKeyOf());
      const published = target.derived?.root ?? target.materialId;
      const key = await ctx.keys.get(published).catch((e: unknown) => {
        // A managed version without a published result (its own, or its root's) is one whose DKG has not finished.
        if (target.managed && isTkmsError(e, 'unknown_key')) throw new TkmsError('key_not_ready', `key ${request.keyId}: the DKG of ${published} has not finished (${e.message})`);
        throw e;
      });
      const groupKey = secp256k1PublicKey(key);
      const publicKey =
        target.derived === undefined ? groupKey : decodePoint(derivedPublicKey(encodePoint(groupKey), deriveKeyTweak(encodePoint(groupKey), target.derived.path, target.derived.version)), 'derived public key');
      spentEncryptIds.claim(bytesToHex(request.requestId), request.notAfter + ctx.config.clockSkewSeconds, nowSeconds());
      const sealed = await sealToHandle({ publicKey, keyId: target.materialId, owner: request.owner, plaintext });
      return storeHandle(
        {
          handle: encodeHex(sealed.handle),
          keyId: target.materialId,
          K: encodeHex(sealed.K),
          nonce: encodeHex(sealed.nonce),
          ciphertextHash: encodeHex(sealed.ciphertextHash),
          owner,
          kProof: encodeHex(sealed.kProof),
          createdAt: nowMs(),
        },
        sealed.ciphertext,
      );
    },
    registerHandle: async (_req, _url, body) => {
      const o = body as Static<typeof RegisterHandleBody>;
      const registration = RegisterHandleMessage.decodeValid(o.registration as never);
      const K = decodeHex(o.K, { name: 'K', length: 33 });
      decodePoint(K, 'K');
      const nonce = decodeHex(o.nonce, { name: 'nonce', length: NONCE_LENGTH });
      const ciphertext = decodeBase64(o.ciphertext, { name: 'ciphertext', maxLength: ctx.config.maxPlaintextBytes + TAG_LENGTH });
      if (ciphertext.length < TAG_LENGTH) throw new TkmsError('bad_length', `ciphertext must hold at least the ${TAG_LENGTH}-byte tag`);
      const kProof = decodeHex(o.kProof, { name: 'kProof', length: EPHEMERAL_PROOF_LENGTH });
      const descriptor: HandleDescriptor = { keyId: registration.keyId, K, nonce, ciphertextHash: sha256(ciphertext), owner: registration.owner, kProof };
      verifyRegisterHandle(registration, descriptor, deployment());
      ctx.limiter.take(encodeHex(registration.owner));
      // A managed key's version must be usable (as for gateway encryption); a derived key's material is its root's.
      const managed = ctx.keyRegistry?.book.byMaterial(registration.keyId);
      if (managed !== undefined) {
        requireUsage(managed.key, 'ENCRYPT_DECRYPT');
        requireUsable(managed.key, managed.version, nowSeconds());
      }
      await ctx.keys.get(managed?.key.origin.type === 'derived' ? managed.key.origin.root : registration.keyId);
      return storeHandle(
        {
          handle: encodeHex(registration.handle),
          keyId: registration.keyId,
          K: encodeHex(K),
          nonce: encodeHex(nonce),
          ciphertextHash: encodeHex(descriptor.ciphertextHash),
          owner: encodeHex(registration.owner),
          kProof: encodeHex(kProof),
          createdAt: nowMs(),
        },
        ciphertext,
      );
    },
    getHandle: async (req, _url, _body, params) => {
      const h = getHandle(params.handle);
      reserveResponseBytes(req, handleResponseBytes(ctx.store.ciphertextLength(h.handle) ?? 0));
      const ciphertext = await ctx.store.readCiphertext(h.handle);
      if (ciphertext === undefined) throw new TkmsError('internal', 'handle metadata without ciphertext');
      return { status: 200, json: { ...handleJson(h), ciphertext: encodeBase64(ciphertext) } };
    },
    listGrants: async (req, _url, _body, params) => {
      const h = getHandle(params.handle);
      const chainAcl = chainReader();
      // In mode chain stored signed grants count for nothing: listing them would mislead.
      const signedListed = aclMode() !== 'chain';
      reserveResponseBytes(req, grantsResponseBytes((signedListed ? ctx.store.grantCount(h.handle) : 0) + (chainAcl === undefined ? 0 : MAX_LISTED_GRANTS)));
      const now = nowSeconds();
      const signed = signedListed
        ? ctx.store.listGrants(h.handle).map((g) => {
            const revokedAt = ctx.store.revokedAt(h.handle, g.grantee);
            const status = revokedAt !== undefined && revokedAt >= g.issuedAt ? 'revoked' : g.notAfter + ctx.config.clockSkewSeconds < now ? 'expired' : 'active';
            const entry = { handle: g.handle, grantee: g.grantee, notAfter: g.notAfter, issuedAt: g.issuedAt, signature: g.signature, status };
            return chainAcl === undefined ? entry : { source: 'signed' as const, ...entry };
          })
        : [];
      if (chainAcl === undefined) return { status: 200, json: { handle: h.handle, grants: signed } };
      let listing: Awaited<ReturnType<ChainAcl['listGrants']>>;
      try {
        listing = await chainAcl.reader.listGrants(decodeHandle(h.handle), decodeAddress(h.owner, 'owner'), MAX_LISTED_GRANTS);
      } catch (e) {
        // The signed grants are the gateway's own: a chain that cannot be read now hides only its part.
        if (!isTkmsError(e)) throw e;
        return { status: 200, json: { handle: h.handle, grants: signed, chainUnavailable: { code: e.code, message: e.message } } };
      }
      const onChain = listing.grants.map((g) => ({ source: 'chain' as const, handle: h.handle, grantee: encodeHex(g.grantee), notAfter: g.notAfter, live: g.live, block: listing.block }));
      return { status: 200, json: { handle: h.handle, grants: [...signed, ...onChain], ...(listing.truncated ? { chainTruncated: true } : {}) } };
    },
    putGrant: async (_req, _url, body, params) => {
      if (aclMode() === 'chain') {
        throw new TkmsError('signed_grants_refused', 'this deployment takes on-chain grants only (acl.mode = chain): grant on the TkmsAcl contract instead (tkms grant --chain)');
      }
      const h = getHandle(params.handle);
      const grant = GrantMessage.decodeValid(body as never);
      if (encodeHex(grant.handle) !== h.handle) throw new TkmsError('bad_request', 'grant.handle does not match the URL');
      verifyGrant(grant, descriptorOf(h), deployment());
      // Nodes refuse it at use: a future issuedAt would outlive revocations, and the store keeps the latest.
      checkGrantTimes(grant, time(), ctx.config.maxGrantLifetimeSeconds);
      ctx.limiter.take(h.owner);
      const json = GrantMessage.encode(grant);
      const stored = await ctx.store.putGrant(storedGrant(json));
      return { status: stored ? 201 : 200, json: { grant: json, stored } };
    },
    revokeGrant: async (_req, _url, body, params) => {
      const h = getHandle(params.handle);
      const grantee = encodeHex(decodeAddress(params.grantee, 'grantee'));
      const revocation = RevocationMessage.decodeValid(body as never);
      if (encodeHex(revocation.handle) !== h.handle || encodeHex(revocation.grantee) !== grantee) {
        throw new TkmsError('bad_request', 'revocation.handle and revocation.grantee must match the URL');
      }
      const descriptor = descriptorOf(h);
      if (revocation.revokedAt > nowSeconds() + ctx.config.clockSkewSeconds) {
        throw new TkmsError('bad_request', `revokedAt ${revocation.revokedAt} is in the future; nodes refuse it`);
      }
      verifyRevocation(revocation, descriptor, deployment());
      ctx.limiter.take(h.owner);
      const json = RevocationMessage.encode(revocation);
      await ctx.store.putRevocation({ handle: h.handle, grantee, revokedAt: revocation.revokedAt, signature: json.signature as string });
      const { acked, failures } = await ctx.pool.broadcastRevocation({ descriptor, revocation }, ctx.config.partialTimeoutMs);
      const n = ctx.pool.committee.members.length;
      // Effective once fewer than t nodes can lack it: then no t nodes will answer for the grant.
      const needed = n - ctx.pool.committee.t + 1;
      const effective = acked.length >= needed;
      return {
        status: effective ? 200 : 202,
        json: { revocation: json, acknowledgedBy: acked, needed, effective, failures },
      };
    },
    delegate: async (req, _url, body, params) => {
      // A derived key's handles are served with its root's shares: the root's committee, t and epoch.
      const publishedKeyIdOf = (materialId: string): string => {
        const origin = ctx.keyRegistry?.book.byMaterial(materialId)?.key.origin;
        return origin?.type === 'derived' ? origin.root : materialId;
      };
      const started = performance.now();
      let outcome = 'error';
      try {
        const h = getHandle(params.handle);
        const o = body as Static<typeof DelegateBody>;
        const delegation = DelegationMessage.decodeValid(o.delegation as never);
        if (encodeHex(delegation.handle) !== h.handle) throw new TkmsError('bad_request', 'delegation.handle does not match the URL');
        const exclude = new Set<number>(o.exclude);
        const descriptor = descriptorOf(h);
        let key = await ctx.keys.get(publishedKeyIdOf(h.keyId));
        // In mode chain a stored signed grant counts for nothing, and nodes would refuse one sent along.
        const chainAcl = chainReader();
        const stored = aclMode() === 'chain' ? undefined : ctx.store.getGrant(h.handle, encodeHex(delegation.requester));
        const grant =
          stored === undefined
            ? undefined
            : GrantMessage.decodeValid({ handle: stored.handle, grantee: stored.grantee, notAfter: stored.notAfter, issuedAt: stored.issuedAt, signature: stored.signature } as never);
        const auth = authorizeDelegation({
          deployment: deployment(),
          delegation,
          descriptor,
          grant,
          revokedAt: (handle, grantee) => ctx.store.revokedAt(encodeHex(handle), encodeHex(grantee)),
          ...time(),
          maxGrantLifetimeSeconds: ctx.config.maxGrantLifetimeSeconds,
          onRequester: (requester) => ctx.limiter.take(encodeHex(requester)),
          grantSource: aclMode(),
        });
        // Named for every grantee's request once the chain is read: a node holding a revocation of
        // the signed grant that the gateway lacks falls back to the chain (mode either) at this block.
        let block: number | undefined;
        if (chainAcl !== undefined && auth.viaGrant) {
          if (auth.onChain !== undefined) block = await aclBlock(chainAcl);
          else block = await aclBlock(chainAcl).catch(() => undefined);
        }
        // The gateway's own lookup fails fast; every node looks again at the same block.
        if (chainAcl !== undefined) await requireOnChainGrant(auth, { delegation, descriptor, block, isGrantedAt: (q) => chainAcl.reader.isGrantedAt(q) });
        // Only for an authorized requester (as at the nodes): nobody makes the gateway parse keys for free.
        // Nodes check the key too; checking here refuses a bad one before any fan-out.
        await requesterKeys.import(delegation.rsaSpki);
        // Passed on as sent: each node checks the approvals against the key's policy itself.
        const approvals = (o.approvals as unknown[] | undefined)?.map((a) => DecryptApprovalMessage.decodeValid(a as never));
        const request = { delegation, descriptor, grant, ...(block === undefined ? {} : { aclBlock: block }), ...(approvals === undefined ? {} : { approvals }) };
        const ask = async (skip: ReadonlySet<number>, need: number) => {
          if (ctx.pool.committee.members.length - skip.size < need) {
            throw new TkmsError('bad_request', `exclude leaves ${ctx.pool.committee.members.length - skip.size} nodes, fewer than t = ${key.t}`);
          }
          const fan = await ctx.pool.requestPartials(request, { t: need, exclude: skip, timeoutMs: ctx.config.partialTimeoutMs, hedgeDelayMs: ctx.config.hedgeDelayMs });
          for (const a of fan.answers) ctx.metrics.nodeAnswers.inc({ node: String(a.nodeId), outcome: 'ok' });
          for (const f of fan.failures) ctx.metrics.nodeAnswers.inc({ node: String(f.nodeId), outcome: f.code });
          return fan;
        };
        let fan = await ask(exclude, key.t);
        const epochBefore = key.epoch;
        // A member moved on (it refuses stale_epoch, or answers at a later epoch, whose t may be larger):
        // learn the new committee (at most once a second) and ask it for what is missing. Members that
        // answered already spent this request id, so they are not asked again; answers at the epoch
        // reached are kept.
        const ahead = fan.answers.some((a) => (a.epoch ?? 0) > epochBefore);
        if ((fan.answers.length < key.t && fan.failures.some((f) => f.code === 'stale_epoch')) || ahead) {
          await ctx.keys.refreshEpoch(Date.now());
          if (ctx.keys.epochs.epoch !== epochBefore) {
            key = await ctx.keys.get(publishedKeyIdOf(h.keyId));
            const earlier = fan;
            const kept = earlier.answers.filter((a) => (a.epoch ?? 0) === key.epoch);
            if (kept.length < key.t) {
              fan = await ask(new Set([...exclude, ...earlier.answers.map((a) => a.nodeId)]), key.t - kept.length);
              fan = { ...fan, answers: [...kept, ...fan.answers], failures: [...earlier.failures, ...fan.failures] };
            }
          }
        }
        const t = key.t;
        if (fan.answers.length < t) throw shortfallError(fan, t, ctx.pool.committee.members.length);
        reserveResponseBytes(req, handleResponseBytes(ctx.store.ciphertextLength(h.handle) ?? 0));
        const ciphertext = await ctx.store.readCiphertext(h.handle);
        if (ciphertext === undefined) throw new TkmsError('internal', 'handle metadata without ciphertext');
        outcome = 'ok';
        return {
          status: 200,
          json: {
            ...handleJson(h),
            ciphertext: encodeBase64(ciphertext),
            t,
            epoch: key.epoch,
            requestId: encodeHex(delegation.requestId),
            partials: oneEpoch(fan.answers, t, key.epoch).map(partialAnswerToJson),
            failures: fan.failures,
          },
        };
      } catch (e) {
        if (e instanceof TkmsError) outcome = e.code;
        throw e;
      } finally {
        ctx.metrics.delegations.inc({ outcome });
        if (outcome === 'ok') ctx.metrics.delegationSeconds.observe((performance.now() - started) / 1000);
      }
    },
  };
  // Every write costs a signature check and every read of a handle up to a MiB: bound them per
  // client address, before any body is read. /metrics too: it serializes every series, and on the
  // public port anyone can ask for it. The readiness probe and the API description stay free.
  const admit = (req: IncomingMessage): void => ctx.ipLimiter.take(`ip:${clientIp(req)}`);
  return API_ROUTES.map((route) => {
    const handler = handlers[route.operationId];
    if (handler === undefined) throw new TkmsError('internal', `route ${route.method} ${route.path} has no handler ${route.operationId}`);
    return { method: route.method, path: route.path, schema: ROUTE_SCHEMAS.get(route)!, handler, ...(route.free ? {} : { admit }) };
  });
}

/**
 * t answers of one epoch when there are (the current one first): partials of different epochs are
 * shares of different polynomials, and a client combines only one epoch's. Members that had not
 * committed a handover yet answer at the old epoch while others answer at the new one.
 */
function oneEpoch<A extends { epoch?: number }>(answers: readonly A[], t: number, current: number): A[] {
  const byEpoch = new Map<number, A[]>();
  for (const a of answers) byEpoch.set(a.epoch ?? 0, [...(byEpoch.get(a.epoch ?? 0) ?? []), a]);
  const full = [...byEpoch].filter(([, list]) => list.length >= t).sort((a, b) => (a[0] === current ? -1 : b[0] === current ? 1 : b[0] - a[0]));
  return (full[0]?.[1] ?? answers).slice(0, t);
}

/** Each route's compiled-validation schemas: its body and its path parameters (closed objects). */
const ROUTE_SCHEMAS = new Map<ApiRoute, RequestSchema>(
  API_ROUTES.map((route) => {
    const names = pathParamNames(route.path);
    const params = names.length === 0 ? undefined : Type.Object(Object.fromEntries(names.map((n) => [n, PathParams[n].schema])), { additionalProperties: false });
    return [route, { ...(route.body ? { body: route.body.schema } : {}), ...(params ? { params } : {}) }];
  }),
);
