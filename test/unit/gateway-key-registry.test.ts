import { secp256k1Group } from '../../core/group.ts';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateAccount, type Account } from '../../client/account.ts';
import {
  decodeHex,
  decodePoint,
  encodeBase64,
  encodeHex,
  EncryptRequestMessage,
  randomBytes,
  signEncryptRequest,
  TkmsError,
  utf8ToBytes,
} from '../../core/index.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { parseDkgPublicResult } from '../../core/dkg/index.ts';
import { derivedPublicKey, deriveKeyTweak } from '../../core/keys/derive.ts';
import { KeyBook, type KeyBookOptions } from '../../core/keys/key-book.ts';
import { keyChangeDigest, KeyChangeMessage, signKeyChange, ZERO_DIGEST, type KeyAction, type KeyChange } from '../../core/keys/key-change.ts';
import { decodeKeyChangeRequest, encodeKeyChangeReply, KEY_CHANGE_PAGE_BYTES, KEY_CHANGES_PROTOCOL, type KeyChangeReply, type KeyChangeRequest } from '../../core/keys/key-wire.ts';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Libp2p } from 'libp2p';
import { NodePool } from '../../gateway/node-pool.ts';
import { parseCommittee } from '../../net/committee.ts';
import { createHost, serveFrames } from '../../net/p2p.ts';
import { keyBookOptions, type KeyRegistryConfig } from '../../config/key-registry.ts';
import { parseStoredKeyPolicy } from '../../core/keys/policy.ts';
import { KEY_LIMITS } from '../../core/keys/key-model.ts';
import { gatewayRoutes, type GatewayContext } from '../../gateway/api.ts';
import { EX, EXAMPLE_KEY_CHANGES, EXAMPLE_KEY_VIEWS } from '../../gateway/api-examples.ts';
import type { GatewayConfig } from '../../gateway/config.ts';
import { GatewayKeyRegistry, type KeyChangeMembers } from '../../gateway/key-registry.ts';
import { encryptionMaterial, keyView, managedListing } from '../../gateway/key-routes.ts';
import { MAX_LISTED_MANAGED_KEYS, MAX_LISTED_VIEW_BYTES } from '../../gateway/key-schemas.ts';
import { parseGatewayConfig } from '../../gateway/config.ts';
import type { PublishedKey } from '../../gateway/keys.ts';
import { createGatewayMetrics } from '../../gateway/metrics.ts';
import type { KeyChangeAck, NodeFailure } from '../../gateway/node-pool.ts';
import { GatewayStore } from '../../gateway/store.ts';
import { closeServer, startHttpServer } from '../../net/http.ts';
import { createLogger } from '../../runtime/logger.ts';
import { RateLimiter } from '../../runtime/rate-limit.ts';
import { postKeyChange, submitKeyChange } from '../support/keys.ts';
import { freePorts, makeTempDir, removeDir, waitFor } from '../support/processes.ts';
import { expectRefusal } from '../support/refusal.ts';

/**
 * The gateway's managed-key registry (gateway/key-registry.ts) with a real KeyBook and change log in
 * a temporary directory, and its HTTP routes on the real router. The committee is a fake: each member
 * is a real KeyBook that applies what it is sent (or is down, or refuses), so what the gateway counts
 * as acknowledged is what a member applied.
 */
const DEPLOYMENT = { committeeId: 'devnet' };
const MEMBER_IDS = [1, 2, 3];
const now = (): number => Math.floor(Date.now() / 1000);

class FakeMembers {
  readonly committee = { committeeId: DEPLOYMENT.committeeId, epoch: 0, t: 2, members: MEMBER_IDS.map((id) => ({ id, peerId: `peer-${id}`, multiaddrs: [] })) };
  readonly books = new Map<number, KeyBook>();
  readonly down = new Set<number>();
  /** Members that refuse every change with this error. */
  readonly refusing = new Map<number, TkmsError>();
  /** Member id → changes its sync pages add in front of what its book holds (changes that do not apply). */
  readonly junk = new Map<number, KeyChange[]>();
  sent: KeyChange[] = [];
  pagesAsked = 0;

  constructor(options: KeyBookOptions) {
    for (const id of MEMBER_IDS) this.books.set(id, new KeyBook(options));
  }

  /** Applies the change at the member's own book, as a node does. */
  applyAt(id: number, change: KeyChange): void {
    const book = this.books.get(id)!;
    if (!book.isApplied(change)) book.commit(change, book.check(change));
  }

  async broadcastKeyChange(change: KeyChange): Promise<{ acked: KeyChangeAck[]; failures: NodeFailure[] }> {
    this.sent.push(change);
    const acked: KeyChangeAck[] = [];
    const failures: NodeFailure[] = [];
    for (const id of MEMBER_IDS) {
      if (this.down.has(id)) {
        failures.push({ nodeId: id, code: 'unavailable', message: 'connection refused' });
        continue;
      }
      const refusal = this.refusing.get(id);
      if (refusal !== undefined) {
        failures.push({ nodeId: id, code: refusal.code, message: refusal.message });
        continue;
      }
      const book = this.books.get(id)!;
      try {
        const known = book.isApplied(change);
        if (!known) book.commit(change, book.check(change));
        acked.push({ nodeId: id, known });
      } catch (e) {
        const err = e as TkmsError;
        failures.push({ nodeId: id, code: err.code, message: err.message });
      }
    }
    return { acked, failures };
  }

  async keyChangePage(memberId: number, request: Extract<KeyChangeRequest, { type: 'sync' | 'history' }>): Promise<{ changes: KeyChange[]; next: number | null }> {
    this.pagesAsked++;
    if (this.down.has(memberId)) throw new TkmsError('unavailable', 'connection refused');
    const book = this.books.get(memberId)!;
    if (request.type === 'history') {
      const changes = book.history(request.keyId, request.after, 256);
      return { changes, next: null };
    }
    const junk = this.junk.get(memberId) ?? [];
    const all = [...junk, ...book.page(0, 1_000_000).changes];
    const changes = all.slice(request.after, request.after + 2);
    const end = request.after + changes.length;
    return { changes, next: end < all.length ? end : null };
  }
}

const policyConfig = (creators: KeyRegistryConfig['creators'], perCreatorQuota = 1000, maxKeys = 100): KeyRegistryConfig => ({ creators, perCreatorQuota, maxKeys, maxBytes: 256 * 1024 * 1024, allowShortDeletionWindow: false });

function sign(account: Account, keyId: string, sequence: number, previous: Uint8Array, action: KeyAction, body: Record<string, unknown>, issuedAt = now()): KeyChange {
  return signKeyChange(account.secretKey, { keyId, sequence, previous, action, body: JSON.stringify(body), issuedAt, admin: account.addressBytes }, DEPLOYMENT);
}
const digestOf = (change: KeyChange): Uint8Array => keyChangeDigest(change, DEPLOYMENT);
const createBody = (admin: Account, extra: Record<string, unknown> = {}) => ({ origin: { type: 'dkg' }, admins: [admin.address], ...extra });

describe('gateway key registry', function () {
  this.timeout(60_000);
  let dir: string | undefined;
  const log = createLogger('silent');
  let admin: Account;
  let stranger: Account;
  const open: GatewayKeyRegistry[] = [];

  beforeEach(async () => {
    dir = await makeTempDir('tkms-gw-keys');
    admin = generateAccount();
    stranger = generateAccount();
  });
  afterEach(async () => {
    for (const r of open.splice(0)) await r.close();
    await removeDir(dir);
  });

  async function registry(members: FakeMembers, config = policyConfig([admin.address])): Promise<GatewayKeyRegistry> {
    const r = await GatewayKeyRegistry.open({ storeDir: dir!, book: keyBookOptions(config, DEPLOYMENT, parseStoredKeyPolicy), members: members as unknown as KeyChangeMembers, log, timeoutMs: 1000 });
    open.push(r);
    return r;
  }
  const membersFor = (config = policyConfig([admin.address])): FakeMembers => new FakeMembers(keyBookOptions(config, DEPLOYMENT, parseStoredKeyPolicy));

  it('takes a change every member applied, and holds it after a restart', async () => {
    const members = membersFor();
    const r = await registry(members);
    const create = sign(admin, 'payroll', 1, ZERO_DIGEST, 'create', createBody(admin, { aliases: ['alias/payroll'], tags: { team: 'finance' } }));
    const first = await r.submit(create);
    assert.deepEqual(first.acked.map((a) => a.nodeId), [1, 2, 3]);
    assert.equal(first.knownHere, false);
    const disable = sign(admin, 'payroll', 2, digestOf(create), 'disable', {});
    await r.submit(disable);
    assert.equal(r.book.get('payroll')?.state, 'Disabled');
    await r.close();
    open.splice(open.indexOf(r), 1);

    const reopened = await registry(members);
    const key = reopened.book.resolve('alias/payroll');
    assert.equal(key?.keyId, 'payroll');
    assert.equal(key?.state, 'Disabled');
    assert.equal(key?.head, encodeHex(digestOf(disable)));
    assert.deepEqual(reopened.book.history('payroll', 0, 10).map((c) => c.action), ['create', 'disable']);
  });

  it('refuses what its own book refuses and sends nothing: a non-admin, a creator not allowed, a gap, a stale signature time', async () => {
    const members = membersFor();
    const r = await registry(members);
    await expectRefusal(r.submit(sign(stranger, 'k1', 1, ZERO_DIGEST, 'create', createBody(stranger))), 'not_key_admin');
    const create = sign(admin, 'k1', 1, ZERO_DIGEST, 'create', createBody(admin));
    await r.submit(create);
    members.sent = [];
    await expectRefusal(r.submit(sign(stranger, 'k1', 2, digestOf(create), 'disable', {})), 'not_key_admin');
    await expectRefusal(r.submit(sign(admin, 'k1', 2, new Uint8Array(32).fill(7), 'disable', {})), 'key_change_conflict');
    await expectRefusal(r.submit(sign(admin, 'k1', 1, ZERO_DIGEST, 'create', createBody(admin, { description: 'another create' }))), 'key_change_conflict');
    await expectRefusal(r.submit(sign(admin, 'k1', 2, digestOf(create), 'disable', {}, now() - 7200)), 'expired');
    // A gap the members cannot fill either (they lack change 2 too).
    await expectRefusal(r.submit(sign(admin, 'k1', 3, new Uint8Array(32), 'enable', {})), 'key_change_out_of_order');
    const forged = { ...KeyChangeMessage.decode(KeyChangeMessage.encode(create)), signature: sign(stranger, 'k1', 1, ZERO_DIGEST, 'create', createBody(admin)).signature };
    await expectRefusal(r.submit(forged), 'unauthorized');
    assert.deepEqual(members.sent, [], 'nothing reached the members');
  });

  it('keeps the per-creator quota and the registry bound', async () => {
    const members = membersFor(policyConfig('open', 1, 2));
    const r = await registry(members, policyConfig('open', 1, 2));
    await r.submit(sign(admin, 'a1', 1, ZERO_DIGEST, 'create', createBody(admin)));
    await expectRefusal(r.submit(sign(admin, 'a2', 1, ZERO_DIGEST, 'create', createBody(admin))), 'key_limit_exceeded');
    await r.submit(sign(stranger, 's1', 1, ZERO_DIGEST, 'create', createBody(stranger)));
    await expectRefusal(r.submit(sign(generateAccount(), 'x1', 1, ZERO_DIGEST, 'create', createBody(admin))), 'key_limit_exceeded');
  });

  it('re-sending a held change sends it again (members that lack it apply it) and counts those that know it', async () => {
    const members = membersFor();
    members.down.add(3);
    const r = await registry(members);
    const create = sign(admin, 'k2', 1, ZERO_DIGEST, 'create', createBody(admin));
    const first = await r.submit(create);
    assert.deepEqual(first.acked.map((a) => a.nodeId), [1, 2]);
    assert.deepEqual(first.failures.map((f) => [f.nodeId, f.code]), [[3, 'unavailable']]);
    members.down.clear();
    const again = await r.submit(create);
    assert.equal(again.knownHere, true);
    assert.deepEqual(again.acked, [
      { nodeId: 1, known: true },
      { nodeId: 2, known: true },
      { nodeId: 3, known: false },
    ]);
  });

  it('takes nothing that no member applied; one refusal from every member is answered as such', async () => {
    const members = membersFor();
    for (const id of MEMBER_IDS) members.down.add(id);
    const r = await registry(members);
    const create = sign(admin, 'k3', 1, ZERO_DIGEST, 'create', createBody(admin));
    const outcome = await r.submit(create);
    assert.deepEqual(outcome.acked, []);
    assert.equal(outcome.failures.length, 3);
    assert.equal(r.book.get('k3'), undefined, 'the gateway never holds a change no member has');
    assert.equal(outcome.applied?.key.keyId, 'k3', 'the answer still shows the key the change makes');

    members.down.clear();
    for (const id of MEMBER_IDS) members.refusing.set(id, new TkmsError('alias_taken', 'alias/x is held by another key'));
    const refused = await expectRefusal(r.submit(create), 'alias_taken');
    assert.equal((refused.details?.failures as unknown[]).length, 3);
    assert.equal(r.book.get('k3'), undefined);
  });

  it('catches up from the members: changes made elsewhere, past a member whose changes do not apply, one page at a time', async () => {
    const members = membersFor();
    const create = sign(admin, 'k4', 1, ZERO_DIGEST, 'create', createBody(admin));
    const tag = sign(admin, 'k4', 2, digestOf(create), 'tag', { tags: { env: 'prod' } });
    const other = sign(admin, 'k5', 1, ZERO_DIGEST, 'create', createBody(admin));
    for (const c of [create, tag, other]) members.applyAt(2, c);
    members.applyAt(1, other);
    // Member 1 also serves a change with a forged signature: refused, logged, and the rest still taken.
    members.junk.set(1, [{ ...sign(stranger, 'k9', 1, ZERO_DIGEST, 'create', createBody(stranger)), admin: admin.addressBytes }]);
    members.down.add(3);
    const r = await registry(members);
    await r.catchUp();
    assert.deepEqual(r.book.get('k4')?.tags, { env: 'prod' });
    assert.equal(r.book.get('k5')?.sequence, 1);
    assert.equal(r.book.get('k9'), undefined);
    // Pages continue where they stopped: a second round asks from the end, and takes what is new.
    const untag = sign(admin, 'k4', 3, digestOf(tag), 'untag', { keys: ['env'] });
    members.applyAt(2, untag);
    await r.catchUp();
    assert.deepEqual(r.book.get('k4')?.tags, {});
  });

  it('a member whose pages never move on cannot keep the gateway reading', async () => {
    const members = membersFor();
    members.keyChangePage = async () => {
      members.pagesAsked++;
      return { changes: [], next: 0 };
    };
    const r = await registry(members);
    await r.catchUp();
    assert.equal(members.pagesAsked, 3, 'one page per member');
  });

  it('a member whose pages move on without end is read at most 400 pages a round', async () => {
    const members = membersFor();
    const asked = new Map<number, number>();
    members.keyChangePage = async (memberId, request) => {
      asked.set(memberId, (asked.get(memberId) ?? 0) + 1);
      return { changes: [], next: request.after + 1 };
    };
    const r = await registry(members);
    await r.catchUp();
    assert.deepEqual([...asked.values()], [400, 400, 400]);
  });

  it('listing pages: at most MAX_LISTED_MANAGED_KEYS views, and at most MAX_LISTED_VIEW_BYTES of them, with the next page\'s cursor', () => {
    const options = keyBookOptions(policyConfig('open', 10_000, 10_000), DEPLOYMENT, parseStoredKeyPolicy);
    const many = new KeyBook(options);
    const t = now();
    for (let i = 0; i <= MAX_LISTED_MANAGED_KEYS; i++) {
      const c = sign(admin, `k${String(i).padStart(5, '0')}`, 1, ZERO_DIGEST, 'create', createBody(admin), t);
      many.commit(c, many.check(c));
    }
    const listing = (book: KeyBook, after?: string) => managedListing({ book } as GatewayKeyRegistry, new URL(`http://x/v1/keys${after === undefined ? '' : `?after=${after}`}`), t, () => undefined);
    const first = listing(many);
    assert.equal(first.managed.length, MAX_LISTED_MANAGED_KEYS);
    assert.equal(first.managedNext, `k${String(MAX_LISTED_MANAGED_KEYS - 1).padStart(5, '0')}`);
    const second = listing(many, first.managedNext!);
    assert.deepEqual(second.managed.map((k) => k.keyId), [`k${String(MAX_LISTED_MANAGED_KEYS).padStart(5, '0')}`]);
    assert.equal(second.managedNext, null);

    const big = new KeyBook(options);
    const count = Math.ceil(MAX_LISTED_VIEW_BYTES / 8192) + 2;
    for (let i = 0; i < count; i++) {
      const c = sign(admin, `b${String(i).padStart(4, '0')}`, 1, ZERO_DIGEST, 'create', createBody(admin, { description: 'd'.repeat(8192) }), t);
      big.commit(c, big.check(c));
    }
    const page = listing(big);
    assert.ok(page.managed.length < count && page.managedNext !== null);
    assert.ok(JSON.stringify(page.managed).length <= MAX_LISTED_VIEW_BYTES);
    let seen = page.managed.length;
    for (let next: string | null = page.managedNext; next !== null; ) {
      const more = listing(big, next);
      seen += more.managed.length;
      next = more.managedNext;
    }
    assert.equal(seen, count);
  });

  it('a change after ones the gateway missed: the key\'s history from the members first, then the change', async () => {
    const members = membersFor();
    const create = sign(admin, 'k6', 1, ZERO_DIGEST, 'create', createBody(admin));
    for (const id of MEMBER_IDS) members.applyAt(id, create);
    const r = await registry(members);
    const disable = sign(admin, 'k6', 2, digestOf(create), 'disable', {});
    const outcome = await r.submit(disable);
    assert.equal(outcome.acked.length, 3);
    assert.equal(r.book.get('k6')?.state, 'Disabled');
  });

  it('the API examples are real: they apply in order for the example committee, and the views are what the gateway shows', () => {
    const creator = EXAMPLE_KEY_CHANGES.create.admin;
    const book = new KeyBook(keyBookOptions(policyConfig([creator]), DEPLOYMENT, parseStoredKeyPolicy));
    const publicKeyOf = (id: string): string | undefined => (id === EX.key.keyId ? EX.key.publicKey : undefined);
    const at = EXAMPLE_KEY_CHANGES.disable.issuedAt + 60;
    const create = KeyChangeMessage.decode(EXAMPLE_KEY_CHANGES.create);
    book.commit(create, book.check(create));
    assert.deepEqual(keyView(book.get('demo')!, at, publicKeyOf), EXAMPLE_KEY_VIEWS.created);
    const disable = KeyChangeMessage.decode(EXAMPLE_KEY_CHANGES.disable);
    book.commit(disable, book.check(disable));
    assert.deepEqual(keyView(book.get('demo')!, at, publicKeyOf), EXAMPLE_KEY_VIEWS.disabled);
  });

  it('encryption material: the current version of an Enabled key, refusals naming the state, a derived key\'s root and tweak', async () => {
    const members = membersFor();
    const r = await registry(members);
    // The material ids whose DKG result the gateway holds (publicKeyOf reads the key directory).
    const published = new Set(['rot']);
    const pk = (id: string): string | undefined => (published.has(id) ? `0x02${'11'.repeat(32)}` : undefined);
    assert.deepEqual(encryptionMaterial(r, 'not-managed', now(), pk), { materialId: 'not-managed', managed: false });
    const create = sign(admin, 'rot', 1, ZERO_DIGEST, 'create', createBody(admin));
    await r.submit(create);
    assert.deepEqual(encryptionMaterial(r, 'rot', now(), pk), { materialId: 'rot', managed: true });
    const rotate = sign(admin, 'rot', 2, digestOf(create), 'rotate', {});
    await r.submit(rotate);
    // Until version 2's DKG is published, new encryptions stay on version 1.
    assert.deepEqual(encryptionMaterial(r, 'rot', now(), pk), { materialId: 'rot', managed: true });
    published.add('rot.v2');
    assert.deepEqual(encryptionMaterial(r, 'rot', now(), pk), { materialId: 'rot.v2', managed: true });
    assert.deepEqual(encryptionMaterial(r, 'rot.v2', now(), pk), { materialId: 'rot.v2', managed: true });
    const disable = sign(admin, 'rot', 3, digestOf(rotate), 'disable', {});
    await r.submit(disable);
    assert.throws(() => encryptionMaterial(r, 'rot', now(), pk), { code: 'key_disabled' });
    assert.throws(() => encryptionMaterial(r, 'rot.v2', now(), pk), { code: 'key_disabled' });
    const schedule = sign(admin, 'rot', 4, digestOf(disable), 'scheduleDeletion', { pendingWindowDays: 7 });
    await r.submit(schedule);
    assert.throws(() => encryptionMaterial(r, 'rot', now(), pk), { code: 'key_pending_deletion' });
    assert.throws(() => encryptionMaterial(r, 'rot', now() + 8 * 86_400, pk), { code: 'key_destroyed' });

    await r.submit(sign(admin, 'user-1', 1, ZERO_DIGEST, 'create', { origin: { type: 'derived', root: 'demo', path: 'users/1' }, admins: [admin.address] }));
    assert.deepEqual(encryptionMaterial(r, 'user-1', now(), pk), { materialId: 'user-1', managed: true, derived: { root: 'demo', path: 'users/1', version: 1 } });
  });
});

/** A published key from the example DKG result (the routes need its group key and result). */
function examplePublishedKey(): PublishedKey {
  const { publicKey, publicKeySpki: _spki, members: _members, epoch, ...rest } = EX.key;
  const result = parseDkgPublicResult({ ...rest, groupPublicKey: publicKey });
  return { result, group: secp256k1Group, groupPublicKey: decodePoint(publicKey), epoch, t: EX.key.t, verificationShares: new Map() };
}

describe('gateway key routes (the real router)', function () {
  this.timeout(60_000);
  let dir: string | undefined;
  let store: GatewayStore | undefined;
  let server: Server | undefined;
  let registry: GatewayKeyRegistry | undefined;
  let url = '';
  let members: FakeMembers;
  let admin: Account;
  let owner: Account;
  let metrics: ReturnType<typeof createGatewayMetrics>;

  before(async () => {
    admin = generateAccount();
    owner = generateAccount();
    dir = await makeTempDir('tkms-gw-key-routes');
    store = await GatewayStore.open(dir);
    const config = policyConfig([admin.address]);
    members = new FakeMembers(keyBookOptions(config, DEPLOYMENT, parseStoredKeyPolicy));
    registry = await GatewayKeyRegistry.open({ storeDir: dir, book: keyBookOptions(config, DEPLOYMENT, parseStoredKeyPolicy), members: members as unknown as KeyChangeMembers, log: createLogger('silent'), timeoutMs: 1000 });
    const published = examplePublishedKey();
    const keys = {
      list: () => [published],
      get: async (keyId: string) => {
        if (keyId !== published.result.keyId) throw new TkmsError('unknown_key', `no key ${keyId} in committee devnet`);
        return published;
      },
      madeBy: () => ({ members: EX.key.members.map((m) => ({ id: m.id, peerId: m.peerId, publicKey: decodeHex(m.publicKey) })) }),
      refresh: async () => undefined,
    };
    const gatewayConfig = { clockSkewSeconds: 30, maxGrantLifetimeSeconds: 86_400, partialTimeoutMs: 1000, hedgeDelayMs: 0, maxPlaintextBytes: 1024, acl: { mode: 'signed' } } as unknown as GatewayConfig;
    metrics = createGatewayMetrics();
    const ctx = { config: gatewayConfig, store, keys, pool: members, limiter: new RateLimiter(1e6, 1e6), ipLimiter: new RateLimiter(1e6, 1e6), metrics, keyRegistry: registry } as unknown as GatewayContext;
    server = await startHttpServer('127.0.0.1', 0, gatewayRoutes(ctx), createLogger('silent'), 'test');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    if (server !== undefined) await closeServer(server);
    await registry?.close();
    await store?.close();
    await removeDir(dir);
  });

  const get = async (path: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${url}${path}`);
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const errorCode = (json: Record<string, unknown>): string => (json.error as { code: string }).code;

  it('creates and changes keys: 200 once n − t + 1 members applied, 202 with failures before, the same change again is safe', async () => {
    const created = await submitKeyChange(url, DEPLOYMENT, admin, 'demo', 'create', { origin: { type: 'dkg' }, admins: [admin.address], aliases: ['alias/payroll'], tags: { team: 'finance' } });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    assert.deepEqual(created.json.acknowledgedBy, [1, 2, 3]);
    assert.equal(created.json.needed, 2);
    assert.equal(created.json.effective, true);
    const view = created.json.key as Record<string, unknown>;
    assert.equal(view.state, 'Enabled');
    assert.equal((view.versions as Record<string, unknown>[])[0]!.publicKey, EX.key.publicKey, 'version 1 is the published DKG key of the id');

    members.down.add(2);
    members.down.add(3);
    const disabled = await submitKeyChange(url, DEPLOYMENT, admin, 'demo', 'disable');
    assert.equal(disabled.status, 202);
    assert.deepEqual(disabled.json.acknowledgedBy, [1]);
    assert.deepEqual((disabled.json.failures as { nodeId: number }[]).map((f) => f.nodeId), [2, 3]);
    members.down.clear();
    const again = await postKeyChange(url, disabled.change);
    assert.equal(again.status, 200);
    assert.deepEqual(again.json.acknowledgedBy, [1, 2, 3]);
    assert.equal((again.json.key as Record<string, unknown>).state, 'Disabled');
    const counted = await metrics.keyChanges.get();
    const count = (action: string, outcome: string): number => counted.values.find((v) => v.labels.action === action && v.labels.outcome === outcome)?.value ?? 0;
    assert.deepEqual([count('create', 'effective'), count('disable', 'pending'), count('disable', 'effective')], [1, 1, 1]);
  });

  it('refusals: the gateway\'s own book (nothing sent), a change for another key id than the path, a create sent as a change', async () => {
    const sentBefore = members.sent.length;
    const stranger = generateAccount();
    const byStranger = await submitKeyChange(url, DEPLOYMENT, stranger, 'demo', 'enable');
    assert.equal(byStranger.status, 403);
    assert.equal(errorCode(byStranger.json), 'not_key_admin');
    const replay = await submitKeyChange(url, DEPLOYMENT, admin, 'demo', 'enable', {}, { sequence: 1, previous: ZERO_DIGEST });
    assert.equal(replay.status, 409);
    assert.equal(errorCode(replay.json), 'key_change_replayed');
    assert.equal(members.sent.length, sentBefore, 'refused changes are not sent');

    const change = await submitKeyChange(url, DEPLOYMENT, admin, 'demo', 'enable').then((a) => a.change);
    const res = await fetch(`${url}/v1/keys/other/changes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ change: KeyChangeMessage.encode(change) }) });
    assert.equal(res.status, 400);
    const asChange = await fetch(`${url}/v1/keys/x1/changes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ change: KeyChangeMessage.encode(sign(admin, 'x1', 1, ZERO_DIGEST, 'create', createBody(admin))) }),
    });
    assert.equal(asChange.status, 400);
    const notCreate = await fetch(`${url}/v1/keys`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ change: KeyChangeMessage.encode(change) }) });
    assert.equal(notCreate.status, 400);
    const malformed = await fetch(`${url}/v1/keys`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ change: { ...KeyChangeMessage.encode(change), sequence: 0 } }) });
    assert.equal(malformed.status, 400);
  });

  it('describes by id or URL-encoded alias, with `managed` alone for a key without a published result', async () => {
    const byId = await get('/v1/keys/demo');
    assert.equal(byId.status, 200);
    assert.equal(byId.json.publicKey, EX.key.publicKey, 'the DKG key as before');
    assert.equal((byId.json.managed as Record<string, unknown>).keyId, 'demo');
    const byAlias = await get(`/v1/keys/${encodeURIComponent('alias/payroll')}`);
    assert.deepEqual(byAlias.json, byId.json);
    assert.equal((await get('/v1/keys/alias%2Fnobody')).status, 404);
    assert.equal((await get('/v1/keys/alias%2F%3F')).status, 400);

    await submitKeyChange(url, DEPLOYMENT, admin, 'wallet-7', 'create', { origin: { type: 'derived', root: 'demo', path: 'users/7' }, admins: [admin.address] });
    const derived = await get('/v1/keys/wallet-7');
    assert.deepEqual(Object.keys(derived.json), ['managed']);
    const version = ((derived.json.managed as Record<string, unknown>).versions as Record<string, unknown>[])[0]!;
    const root = decodeHex(EX.key.publicKey, { length: 33 });
    assert.equal(version.publicKey, encodeHex(derivedPublicKey(root, deriveKeyTweak(root, 'users/7', 1))));
    assert.equal((await get('/v1/keys/nothing')).status, 404);
  });

  it('lists managed keys filtered by tag, alias and state', async () => {
    await submitKeyChange(url, DEPLOYMENT, admin, 'listed', 'create', { origin: { type: 'dkg' }, admins: [admin.address], tags: { team: 'ops' } });
    const ids = async (query: string): Promise<string[]> => {
      const { status, json } = await get(`/v1/keys${query}`);
      assert.equal(status, 200, JSON.stringify(json));
      assert.equal((json.keys as unknown[]).length, 1);
      return (json.managed as { keyId: string }[]).map((k) => k.keyId);
    };
    assert.deepEqual(await ids(''), ['demo', 'listed', 'wallet-7']);
    assert.deepEqual(await ids('?tag=team'), ['demo', 'listed']);
    assert.deepEqual(await ids('?tag=team%3Dops'), ['listed']);
    assert.deepEqual(await ids('?alias=alias%2Fpayroll'), ['demo']);
    assert.deepEqual(await ids('?state=Enabled&tag=team'), ['demo', 'listed']);
    assert.deepEqual(await ids('?after=demo'), ['listed', 'wallet-7']);
    assert.equal((await get('/v1/keys?state=Gone')).status, 400);
  });

  it('history pages and the policy', async () => {
    const page = await get('/v1/keys/demo/changes');
    assert.equal(page.status, 200);
    const actions = (page.json.changes as { action: string }[]).map((c) => c.action);
    assert.deepEqual(actions.slice(0, 3), ['create', 'disable', 'enable']);
    assert.equal(page.json.next, null);
    const later = await get('/v1/keys/demo/changes?after=1');
    assert.equal((later.json.changes as { sequence: number }[])[0]!.sequence, 2);
    assert.equal((await get('/v1/keys/demo/changes?after=-1')).status, 400);
    const policy = await get('/v1/keys/alias%2Fpayroll/policy');
    assert.deepEqual(policy.json, { keyId: 'demo', sequence: 3, policy: {} });
    assert.equal((await get('/v1/keys/nothing/policy')).status, 404);
  });

  it('a history page stops at KEY_CHANGE_PAGE_BYTES of change bodies; the next page goes on from there', async () => {
    await submitKeyChange(url, DEPLOYMENT, admin, 'heavy', 'create', { origin: { type: 'dkg' }, admins: [admin.address] });
    // The largest body a change has: a description of KEY_LIMITS.descriptionLength characters.
    const bodyBytes = KEY_LIMITS.descriptionLength;
    const changes = Math.ceil(KEY_CHANGE_PAGE_BYTES / bodyBytes) + 2;
    for (let i = 0; i < changes; i++) {
      const answer = await submitKeyChange(url, DEPLOYMENT, admin, 'heavy', 'updateDescription', { description: `${i}`.padEnd(bodyBytes, 'p') });
      assert.equal(answer.status, 200, JSON.stringify(answer.json).slice(0, 300));
    }
    const first = await get('/v1/keys/heavy/changes');
    const firstChanges = first.json.changes as { sequence: number; body: string }[];
    assert.ok(firstChanges.length < changes + 1 && typeof first.json.next === 'number');
    assert.ok(firstChanges.reduce((n, c) => n + c.body.length, 0) <= KEY_CHANGE_PAGE_BYTES);
    const rest = await get(`/v1/keys/heavy/changes?after=${String(first.json.next)}`);
    const all = [...firstChanges, ...(rest.json.changes as { sequence: number }[])].map((c) => c.sequence);
    assert.deepEqual(all, Array.from({ length: changes + 1 }, (_, i) => i + 1));
    assert.equal(rest.json.next, null);
  });

  it('POST /v1/encrypt: a managed key not Enabled is refused with its state; an Enabled one encrypts to its current material', async () => {
    const encrypt = async (keyId: string): Promise<{ status: number; json: Record<string, unknown> }> => {
      const plaintext = utf8ToBytes('managed');
      const t = now();
      const request = signEncryptRequest(owner.secretKey, { keyId, owner: owner.addressBytes, plaintextHash: sha256(plaintext), notBefore: t - 60, notAfter: t + 600, requestId: randomBytes(16) }, DEPLOYMENT);
      const res = await fetch(`${url}/v1/encrypt`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ request: EncryptRequestMessage.encode(request), plaintext: encodeBase64(plaintext) }),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const ok = await encrypt('demo');
    assert.equal(ok.status, 201, JSON.stringify(ok.json));
    assert.equal(ok.json.keyId, 'demo');
    const derived = await encrypt('wallet-7');
    assert.equal(derived.status, 201, JSON.stringify(derived.json));
    assert.equal(derived.json.keyId, 'wallet-7');

    await submitKeyChange(url, DEPLOYMENT, admin, 'demo', 'disable');
    const refused = await encrypt('demo');
    assert.equal(refused.status, 403);
    assert.equal(errorCode(refused.json), 'key_disabled');
    await submitKeyChange(url, DEPLOYMENT, admin, 'demo', 'scheduleDeletion', { pendingWindowDays: 7 });
    const pending = await encrypt('demo');
    assert.equal(errorCode(pending.json), 'key_pending_deletion');

    // A rotated DKG key whose new version's DKG has not finished: key_not_ready.
    await submitKeyChange(url, DEPLOYMENT, admin, 'listed', 'rotate');
    const notReady = await encrypt('listed');
    assert.equal(notReady.status, 503);
    assert.equal(errorCode(notReady.json), 'key_not_ready');
    assert.match((notReady.json.error as { message: string }).message, /listed\.v2/);
  });
});

describe('gateway node pool: key changes on /tkms/key-changes/1 (real libp2p hosts)', function () {
  this.timeout(30_000);
  const hosts: Libp2p[] = [];
  let pool: NodePool | undefined;
  const admin = generateAccount();
  const memberBook = new KeyBook(keyBookOptions(policyConfig([admin.address]), { committeeId: 'pool-keys' }, parseStoredKeyPolicy));
  /** Member 1 answers from a real key book; member 2 answers every change as applied to another key; member 3 does not serve the protocol. */
  before(async () => {
    const keys = await Promise.all([1, 2, 3].map(() => generateKeyPair('Ed25519')));
    const ports = await freePorts(3);
    const committee = parseCommittee({
      committeeId: 'pool-keys',
      t: 2,
      members: keys.map((k, i) => ({ id: i + 1, peerId: peerIdFromPrivateKey(k).toString(), multiaddrs: [`/ip4/127.0.0.1/tcp/${ports[i]}`] })),
    });
    for (const [i, privateKey] of keys.entries()) {
      const host = await createHost({ privateKey }, [`/ip4/127.0.0.1/tcp/${ports[i]}`], committee);
      const opts = { maxRequestBytes: 1 << 20, timeoutMs: 5_000, log: createLogger('silent') };
      if (i < 2) {
        await serveFrames(
          host,
          KEY_CHANGES_PROTOCOL,
          async (_peer, body) => {
            const request = decodeKeyChangeRequest(body);
            let reply: KeyChangeReply;
            if (request.type === 'change' && i === 1) reply = { ok: true, type: 'applied', keyId: 'elsewhere', sequence: 1, head: new Uint8Array(32), known: false };
            else if (request.type === 'change') {
              try {
                const known = memberBook.isApplied(request.change);
                if (!known) memberBook.commit(request.change, memberBook.check(request.change));
                const key = memberBook.get(request.change.keyId)!;
                reply = { ok: true, type: 'applied', keyId: key.keyId, sequence: key.sequence, head: decodeHex(key.head), known };
              } catch (e) {
                reply = { ok: false, code: (e as TkmsError).code, message: (e as TkmsError).message };
              }
            } else if (request.type === 'sync') reply = { ok: true, type: 'page', ...memberBook.page(request.after, 256) };
            else if (request.type === 'history') reply = { ok: true, type: 'page', changes: memberBook.history(request.keyId, request.after, 256), next: null };
            else reply = { ok: true, type: 'receipts', receipts: [] };
            return encodeKeyChangeReply(reply);
          },
          opts,
        );
      }
      await host.start();
      hosts.push(host);
    }
    pool = await NodePool.start(committee, createLogger('silent'));
    await waitFor('the pool to connect to every member', () => (pool!.connectedMembers().length === 3 ? true : undefined), { timeoutMs: 15_000 });
  });
  after(async () => {
    await pool?.stop();
    await Promise.all(hosts.map((h) => h.stop()));
  });

  it('counts only a member that answered the change\'s own application; a refusal and a missing protocol are failures', async () => {
    const deployment = { committeeId: 'pool-keys' };
    const create = signKeyChange(admin.secretKey, { keyId: 'wire', sequence: 1, previous: ZERO_DIGEST, action: 'create', body: JSON.stringify(createBody(admin)), issuedAt: now(), admin: admin.addressBytes }, deployment);
    const first = await pool!.broadcastKeyChange(create, 5_000);
    assert.deepEqual(first.acked, [{ nodeId: 1, known: false }]);
    assert.deepEqual(first.failures.map((f) => [f.nodeId, f.code]), [[2, 'bad_request'], [3, first.failures[1]!.code]]);
    assert.notEqual(first.failures[1]!.code, 'bad_request');
    const again = await pool!.broadcastKeyChange(create, 5_000);
    assert.deepEqual(again.acked, [{ nodeId: 1, known: true }]);
    const stranger = generateAccount();
    const refused = await pool!.broadcastKeyChange(
      signKeyChange(stranger.secretKey, { keyId: 'wire', sequence: 2, previous: keyChangeDigest(create, deployment), action: 'disable', body: '{}', issuedAt: now(), admin: stranger.addressBytes }, deployment),
      5_000,
    );
    assert.deepEqual(refused.failures.find((f) => f.nodeId === 1)?.code, 'not_key_admin');

    const page = await pool!.keyChangePage(1, { type: 'sync', after: 0 }, 5_000);
    assert.deepEqual(page.changes.map((c) => encodeHex(keyChangeDigest(c, deployment))), [encodeHex(keyChangeDigest(create, deployment))]);
    assert.equal(page.next, null);
    const history = await pool!.keyChangePage(1, { type: 'history', keyId: 'wire', after: 1 }, 5_000);
    assert.deepEqual(history.changes, []);
  });
});

describe('config keys.creators', () => {
  const base = { listen: '127.0.0.1:8080', storeDir: 's', committeeFile: 'c' };
  const creators = (value: unknown, env: Record<string, string> = {}) => parseGatewayConfig({ ...base, keys: { creators: value } }, '/tmp', env).keys.creators;
  const address = fc.uint8Array({ minLength: 20, maxLength: 20 }).chain((bytes) => fc.boolean().map((upper) => `0x${Buffer.from(bytes).toString('hex')[upper ? 'toUpperCase' : 'toLowerCase']()}`.replace('0X', '0x')));

  it('"open", or addresses (lower-cased, sorted, unique); never both', () => {
    assert.equal(creators('open'), 'open');
    assert.equal(parseGatewayConfig(base, '/tmp', { TKMS_KEY_CREATORS: 'open' }).keys.creators, 'open');
    assert.deepEqual(parseGatewayConfig(base, '/tmp').keys.creators, []);
    assert.throws(() => creators(['open', `0x${'ab'.repeat(20)}`]), /either "open" or a list/);
    fc.assert(
      fc.property(fc.array(address, { maxLength: 20 }), (list) => {
        assert.deepEqual(creators(list), [...new Set(list.map((a) => a.toLowerCase()))].sort());
      }),
    );
  });

  it('refuses anything else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.string(), { minLength: 1, maxLength: 3 }), fc.integer(), fc.constant(null)), (value) => {
        fc.pre(value !== 'open' && !(Array.isArray(value) && value.every((v) => v === 'open' || /^0x[0-9a-fA-F]{40}$/.test(v))));
        assert.throws(() => creators(value), /keys\.creators/);
      }),
    );
    assert.throws(() => creators(Array.from({ length: 1001 }, (_, i) => `0x${i.toString(16).padStart(40, '0')}`)), /keys\.creators/);
  });
});
