import { decodeHex, encodeHex, isTkmsError, TkmsError, utf8ToBytes } from '../core/index.ts';
import { derivedPublicKey, deriveKeyTweak } from '../core/keys/derive.ts';
import { KeyChangeMessage, type KeyChange } from '../core/keys/key-change.ts';
import { KEY_STATES, currentVersionAt, keyStateAt, keyVersionsAt, materialKeyId, requireUsable, requireUsage, versionStateAt, type KeyState, type ManagedKey } from '../core/keys/key-model.ts';
import type { KeyFilter } from '../core/keys/key-book.ts';
import { describeSigningKey, suiteOfKey, type SigningKeyDescription } from '../core/signing/suites.ts';
import { KEY_CHANGE_PAGE_BYTES, KEY_CHANGE_PAGE_SIZE } from '../core/keys/key-wire.ts';
import { reserveResponseBytes, type RouteHandler } from '../net/http.ts';
import { API_ROUTES, queryInteger, queryText, type ApiRoute } from './api-routes.ts';
import { MAX_LISTED_MANAGED_KEYS, MAX_LISTED_VIEW_BYTES } from './key-schemas.ts';
import type { GatewayKeyRegistry } from './key-registry.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { NodePool } from './node-pool.ts';
import type { RateLimiter } from '../runtime/rate-limit.ts';

/**
 * The managed-key side of the gateway API: sending signed key changes to the committee, and the
 * gateway's copy of the keys as KeyViews (listing, description, history, policy), and which key
 * material an encryption to a managed key uses.
 */
export interface KeyRouteContext {
  /** Absent: a gateway context built without managed keys (tests of other routes); it holds none. */
  keyRegistry?: GatewayKeyRegistry;
  pool: Pick<NodePool, 'committee'>;
  limiter: RateLimiter;
  metrics: Pick<GatewayMetrics, 'keyChanges'>;
}

const routeNamed = (operationId: string): ApiRoute => API_ROUTES.find((r) => r.operationId === operationId)!;

/** A managed key as the API shows it, at `nowSeconds`; `publicKeyOf` gives a material key id's published group key. */
export function keyView(key: ManagedKey, nowSeconds: number, publicKeyOf: (materialId: string) => string | undefined): Record<string, unknown> {
  const current = encryptionVersion(key, nowSeconds, publicKeyOf);
  return {
    keyId: key.keyId,
    spec: key.spec,
    usage: key.usage,
    origin: key.origin,
    description: key.description,
    aliases: key.aliases,
    tags: key.tags,
    admins: key.admins,
    policy: key.policy,
    rotationPeriodDays: key.rotationPeriodDays,
    state: keyStateAt(key, nowSeconds),
    deletionDate: key.deletionDate,
    versions: keyVersionsAt(key, nowSeconds).map((v) => {
      const material = materialKeyId(key.keyId, v.version);
      const publicKey = versionPublicKey(key, v.version, publicKeyOf);
      const signing = publicKey === undefined || key.usage !== 'SIGN_VERIFY' ? undefined : signingView(key, publicKey);
      return {
        version: v.version,
        materialKeyId: material,
        createdAt: v.createdAt,
        deletionDate: v.deletionDate,
        state: versionStateAt(v, nowSeconds),
        ...(publicKey === undefined ? {} : { publicKey }),
        ...(signing === undefined ? {} : { signing }),
      };
    }),
    currentVersion: current ?? null,
    createdAt: key.createdAt,
    creator: key.creator,
    sequence: key.sequence,
    head: key.head,
  };
}

/**
 * A signing key version's public key as verifiers take it (raw and DER SPKI), from its DKG group key;
 * undefined when the published key is not of the spec's group (members made it so; the view shows it without).
 */
function signingView(key: ManagedKey, groupPublicKey: string): Record<string, string> | undefined {
  let d: SigningKeyDescription;
  try {
    d = describeSigningKey(suiteOfKey(key.keyId, key.spec, key.usage), decodeHex(groupPublicKey, { name: 'group public key' }));
  } catch {
    return undefined;
  }
  return {
    algorithm: d.algorithm,
    publicKey: encodeHex(d.publicKey),
    spki: encodeHex(d.spki),
    ...(d.taprootInternalKey === undefined ? {} : { taprootInternalKey: encodeHex(d.taprootInternalKey) }),
  };
}

/**
 * A version's public key (0x hex), when the gateway holds the published result it comes from: a DKG
 * version's own, or a derived key's root, moved by the version's tweak (core/keys/derive.ts).
 */
export function versionPublicKey(key: ManagedKey, version: number, publicKeyOf: (materialId: string) => string | undefined): string | undefined {
  if (key.origin.type === 'dkg') return publicKeyOf(materialKeyId(key.keyId, version));
  const root = publicKeyOf(key.origin.root);
  if (root === undefined) return undefined;
  const rootBytes = decodeHex(root, { name: 'root public key', length: 33 });
  return encodeHex(derivedPublicKey(rootBytes, deriveKeyTweak(rootBytes, key.origin.path, version)));
}

/**
 * The version new encryptions use: the newest not scheduled for deletion whose material exists. A DKG
 * version whose ceremony has not finished (a rotation moments ago, automatic or on demand) is
 * skipped until the gateway has its published result, so encryption goes on with the version
 * before; with none ready (a key just created) it is the newest, and encrypting waits (key_not_ready).
 */
export function encryptionVersion(key: ManagedKey, nowSeconds: number, publicKeyOf: (materialId: string) => string | undefined): number | undefined {
  const live = keyVersionsAt(key, nowSeconds).filter((v) => v.deletionDate === null);
  for (let i = live.length - 1; i >= 0; i--) if (key.origin.type === 'derived' || versionPublicKey(key, live[i]!.version, publicKeyOf) !== undefined) return live[i]!.version;
  return currentVersionAt(key, nowSeconds)?.version;
}

/** What an encryption to a managed key's version uses: its material key id (the handle's keyId) and where its public key comes from. */
export interface EncryptionTarget {
  materialId: string;
  /** A managed key's version: its material may not be published yet (key_not_ready). */
  managed: boolean;
  /** A derived key's version: the root's published key, moved by the tweak of (path, version). */
  derived?: { root: string; path: string; version: number };
}

/**
 * The material key id an encryption to `keyId` uses, after refusing a managed key that is not
 * usable (key_disabled, key_pending_deletion, key_destroyed): a managed key id means its current
 * version; a version's own material id (`<keyId>.v<n>`) means that version. Any other id is a DKG key
 * outside the registry, used as it is.
 */
export function encryptionMaterial(registry: GatewayKeyRegistry | undefined, keyId: string, nowSeconds: number, publicKeyOf: (materialId: string) => string | undefined): EncryptionTarget {
  const book = registry?.book;
  if (book === undefined) return { materialId: keyId, managed: false };
  const key = book.get(keyId);
  let target: { key: ManagedKey; version: number } | undefined;
  if (key !== undefined) {
    const versions = keyVersionsAt(key, nowSeconds);
    target = { key, version: encryptionVersion(key, nowSeconds, publicKeyOf) ?? versions[versions.length - 1]!.version };
  } else {
    const named = book.byMaterial(keyId);
    if (named !== undefined && named.version >= 2) target = named;
  }
  if (target === undefined) return { materialId: keyId, managed: false };
  requireUsage(target.key, 'ENCRYPT_DECRYPT');
  requireUsable(target.key, target.version, nowSeconds);
  const { origin } = target.key;
  return {
    materialId: materialKeyId(target.key.keyId, target.version),
    managed: true,
    ...(origin.type === 'derived' ? { derived: { root: origin.root, path: origin.path, version: target.version } } : {}),
  };
}

/** A `tag` query: `key` or `key=value`, split at the first `=`. */
function tagFilter(text: string): KeyFilter['tag'] {
  const at = text.indexOf('=');
  return at < 0 ? { key: text } : { key: text.slice(0, at), value: text.slice(at + 1) };
}

/** The managed part of GET /v1/keys: the filtered keys after `after`, bounded in count and bytes. */
export function managedListing(
  registry: GatewayKeyRegistry | undefined,
  url: URL,
  nowSeconds: number,
  publicKeyOf: (materialId: string) => string | undefined,
): { managed: Record<string, unknown>[]; managedNext: string | null } {
  const route = routeNamed('listKeys');
  const tag = queryText(route, url, 'tag');
  const alias = queryText(route, url, 'alias');
  const state = queryText(route, url, 'state') as KeyState | undefined;
  const after = queryText(route, url, 'after');
  if (state !== undefined && !KEY_STATES.includes(state)) throw new TkmsError('bad_request', `state must be one of ${KEY_STATES.join(', ')}`);
  if (registry === undefined) return { managed: [], managedNext: null };
  const filter: KeyFilter = { ...(tag === undefined ? {} : { tag: tagFilter(tag) }), ...(alias === undefined ? {} : { alias }), ...(state === undefined ? {} : { state }) };
  const keys = registry.book.list(filter, nowSeconds).filter((k) => after === undefined || k.keyId > after);
  const managed: Record<string, unknown>[] = [];
  let bytes = 0;
  for (const key of keys) {
    if (managed.length >= MAX_LISTED_MANAGED_KEYS) break;
    const view = keyView(key, nowSeconds, publicKeyOf);
    bytes += JSON.stringify(view).length;
    if (managed.length > 0 && bytes > MAX_LISTED_VIEW_BYTES) break;
    managed.push(view);
  }
  const more = managed.length < keys.length;
  return { managed, managedNext: more ? (managed[managed.length - 1]!.keyId as string) : null };
}

export function keyRouteHandlers(ctx: KeyRouteContext, nowSeconds: () => number, publicKeyOf: () => (materialId: string) => string | undefined): Record<string, RouteHandler> {
  const registry = (): GatewayKeyRegistry => {
    // Start-up always opens one; a context without it serves no managed keys.
    if (ctx.keyRegistry === undefined) throw new TkmsError('internal', 'this gateway holds no managed keys');
    return ctx.keyRegistry;
  };
  const resolve = (keyIdOrAlias: string | undefined): ManagedKey => {
    const key = ctx.keyRegistry?.book.resolve(keyIdOrAlias ?? '');
    if (key === undefined) throw new TkmsError('unknown_key', `no managed key ${keyIdOrAlias}`);
    return key;
  };

  const send = async (body: unknown, expect: (change: KeyChange) => void): Promise<{ status: number; json: unknown }> => {
    const change = KeyChangeMessage.decode((body as { change: unknown }).change);
    let outcome = 'error';
    try {
      expect(change);
      const result = await registry().submit(change, (signer) => ctx.limiter.take(signer));
      const key = result.applied?.key ?? registry().book.get(change.keyId);
      if (key === undefined) throw new TkmsError('internal', `key ${change.keyId} is neither held nor made by its change`);
      const { committee } = ctx.pool;
      // Effective once fewer than t members can lack it: then no t members act on the key as it was.
      const needed = committee.members.length - committee.t + 1;
      const acknowledgedBy = result.acked.map((a) => a.nodeId);
      const effective = acknowledgedBy.length >= needed;
      outcome = effective ? 'effective' : 'pending';
      return { status: effective ? 200 : 202, json: { key: keyView(key, nowSeconds(), publicKeyOf()), acknowledgedBy, needed, effective, failures: result.failures } };
    } catch (e) {
      if (isTkmsError(e)) outcome = e.code;
      throw e;
    } finally {
      ctx.metrics.keyChanges.inc({ action: change.action, outcome });
    }
  };

  return {
    createKey: (_req, _url, body) =>
      send(body, (change) => {
        if (change.action !== 'create') throw new TkmsError('bad_request', `POST /v1/keys takes a create change, not ${change.action}: send it to POST /v1/keys/${change.keyId}/changes`);
      }),
    changeKey: (_req, _url, body, params) =>
      send(body, (change) => {
        if (change.keyId !== params.keyId) throw new TkmsError('bad_request', `the change is for key ${change.keyId}, not ${params.keyId} (the path names the key id, not an alias)`);
        if (change.action === 'create') throw new TkmsError('bad_request', 'a create goes to POST /v1/keys');
      }),
    listKeyChanges: (req, url, _body, params) => {
      const key = resolve(params.keyId);
      const after = queryInteger(routeNamed('listKeyChanges'), url, 'after') ?? 0;
      reserveResponseBytes(req, KEY_CHANGE_PAGE_BYTES + 64 * 1024);
      const changes: Record<string, unknown>[] = [];
      let bytes = 0;
      for (const change of registry().book.history(key.keyId, after, KEY_CHANGE_PAGE_SIZE)) {
        bytes += utf8ToBytes(change.body).length;
        if (changes.length > 0 && bytes > KEY_CHANGE_PAGE_BYTES) break;
        changes.push(KeyChangeMessage.encode(change));
      }
      const end = after + changes.length;
      return { status: 200, json: { changes, next: end < key.sequence ? end : null } };
    },
    getKeyPolicy: (_req, _url, _body, params) => {
      const key = resolve(params.keyId);
      return { status: 200, json: { keyId: key.keyId, sequence: key.sequence, policy: key.policy } };
    },
  };
}
