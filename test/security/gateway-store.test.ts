import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { decodeHandle, generateRsaKeyPair, GrantMessage, RevocationMessage, signGrant, signRevocation, type RsaKeyPair } from '../../core/index.ts';
import { Devnet, getJson } from '../../deploy/devnet.ts';
import { GatewayStore } from '../../gateway/store.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * Attacks on the gateway's durable store (gateway/store.ts), against a real gateway process in
 * a devnet (3 nodes, t = 2) configured with small bounds: PER_OWNER live grants (and
 * revocations) per handle owner, MAX in all, grants valid for at most LIFETIME seconds.
 */
const nowS = (): number => Math.floor(Date.now() / 1000);
const PER_OWNER = 3;
const MAX = 6;
const LIFETIME = 3_600;
/** The store's default compaction slack (gateway/store.ts). */
const SLACK_BYTES = 256 * 1024;

describe("attack: grow the gateway's log by re-sending revocations (and grants) with later times", function () {
  this.timeout(240_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let rsa: RsaKeyPair;
  const alice = generateAccount();
  const grantees = [generateAccount(), generateAccount(), generateAccount()];
  let aliceHandle: string;

  const storeDir = (): string => join(dir!, 'gateway', 'store');
  const logBytes = async (): Promise<number> => (await stat(join(storeDir(), 'store.log'))).size;
  const hexOf = (a: Account): string => a.address.toLowerCase();

  async function ownHandle(owner: Account): Promise<string> {
    const c = new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: owner, trustedMemberKeys: await devnet!.memberKeys(), rsaKey: rsa });
    const { handle } = await c.encrypt(new TextEncoder().encode(`gateway store ${Math.random()}`), { keyId: devnet!.keyId });
    return handle;
  }

  function grantVia(owner: Account, handle: string, grantee: Account, issuedAt = nowS(), notAfter = issuedAt + 600): Promise<{ status: number; json: any }> {
    const grant = signGrant(owner.secretKey, { handle: decodeHandle(handle), grantee: grantee.addressBytes, issuedAt, notAfter }, devnet!.deployment);
    return getJson(`${devnet!.gatewayUrl}/v1/handles/${handle}/grants`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(GrantMessage.encode(grant)) });
  }

  function revokeVia(owner: Account, handle: string, grantee: Account, revokedAt = nowS()): Promise<{ status: number; json: any }> {
    const revocation = signRevocation(owner.secretKey, { handle: decodeHandle(handle), grantee: grantee.addressBytes, revokedAt }, devnet!.deployment);
    return getJson(`${devnet!.gatewayUrl}/v1/handles/${handle}/grants/${hexOf(grantee)}`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(RevocationMessage.encode(revocation)),
    });
  }

  async function restartGateway(): Promise<void> {
    const gateway = devnet!.gatewayProcess!;
    const exited = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGTERM');
    await exited;
    await devnet!.startGateway();
  }

  /** The refusal is the gateway's JSON error with this status and code. */
  function refused(r: { status: number; json: any }, status: number, code: string): void {
    assert.equal(r.status, status, JSON.stringify(r.json));
    assert.equal(r.json?.error?.code, code, JSON.stringify(r.json));
    assert.equal(typeof r.json.error.message, 'string');
  }

  before(async function () {
    this.timeout(180_000);
    dir = await makeTempDir('tkms-gateway-store-attack');
    devnet = await Devnet.start({
      dir,
      n: 3,
      t: 2,
      gatewayPort: 0,
      gatewayConfig: {
        rateLimit: { perMinute: 1_000_000, burst: 100_000 },
        maxGrantLifetimeSeconds: LIFETIME,
        grants: { perOwner: PER_OWNER, max: MAX },
        revocations: { perOwner: PER_OWNER, max: MAX },
      },
    });
    rsa = await generateRsaKeyPair();
    aliceHandle = await ownHandle(alice);
  });

  after(async function () {
    this.timeout(60_000);
    await devnet?.stop();
    await removeDir(dir);
  });

  it('keeps the log within about twice its live records however often grants and revocations are re-sent, and restarts fine', async () => {
    const start = await logBytes();
    const t0 = nowS();
    const GRANTS = 1_000; // per grantee, each with a later issuedAt than the last
    const REVOCATIONS = 300;
    let maxLog = 0;
    let sentBytes = 0;
    const watch = async (): Promise<void> => {
      maxLog = Math.max(maxLog, await logBytes());
    };
    await Promise.all([
      ...grantees.map(async (grantee) => {
        for (let i = 0; i < GRANTS; i++) {
          const issuedAt = t0 - GRANTS + i + 1;
          const r = await grantVia(alice, aliceHandle, grantee, issuedAt, issuedAt + LIFETIME - 60);
          assert.equal(r.status, 201, JSON.stringify(r.json));
          sentBytes += JSON.stringify(r.json.grant).length;
          if (i % 50 === 0) await watch();
        }
      }),
      (async () => {
        for (let i = 0; i < REVOCATIONS; i++) {
          const r = await revokeVia(alice, aliceHandle, grantees[0]!, t0 - REVOCATIONS + i + 1);
          assert.ok(r.status === 200 || r.status === 202, JSON.stringify(r.json));
          sentBytes += JSON.stringify(r.json.revocation).length;
          if (i % 50 === 0) await watch();
        }
      })(),
    ]);
    await watch();
    const end = await logBytes();
    // Live: one handle, three grants, one revocation (a few KB); the store tolerates its slack on top.
    const bound = start + 2 * 8 * 1024 + SLACK_BYTES + 32 * 1024;
    assert.ok(sentBytes > 2 * bound, `the attack sent ${sentBytes} bytes of records, enough to show growth`);
    assert.ok(maxLog <= bound && end <= bound, `log grew to ${maxLog} bytes (ends at ${end}) after ${sentBytes} bytes of re-sent records; bound ${bound}`);

    await restartGateway();
    const listed = await getJson(`${devnet!.gatewayUrl}/v1/handles/${aliceHandle}/grants`);
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.json.grants.map((g: { grantee: string; issuedAt: number }) => [g.grantee, g.issuedAt]).sort(),
      grantees.map((g) => [hexOf(g), t0]).sort(),
    );
    assert.ok((await logBytes()) <= bound);
    console.log(`      (log ${start} → max ${maxLog}, end ${end} bytes after ${3 * GRANTS} grants and ${REVOCATIONS} revocations re-sent, ${sentBytes} bytes of records)`);
  });

  it('drops, at restart, a grant issued in the future (stored before such grants were refused), so it no longer hides a later grant', async () => {
    const george = generateAccount();
    const handle = await ownHandle(george);
    const grantee = generateAccount();
    const future = nowS() + 86_400;
    const g = signGrant(george.secretKey, { handle: decodeHandle(handle), grantee: grantee.addressBytes, issuedAt: future, notAfter: future + 600 }, devnet!.deployment);
    const json = GrantMessage.encode(g);
    // What an older gateway stored: written into its store while it is stopped.
    const gateway = devnet!.gatewayProcess!;
    const exited = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGTERM');
    await exited;
    const store = await GatewayStore.open(storeDir(), { now: () => future });
    await store.putGrant({ handle: String(json.handle), grantee: String(json.grantee), notAfter: g.notAfter, issuedAt: g.issuedAt, signature: String(json.signature) });
    await store.close();
    await devnet!.startGateway();

    const r = await grantVia(george, handle, grantee);
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.equal(r.json.stored, true);
    const listed = await getJson(`${devnet!.gatewayUrl}/v1/handles/${handle}/grants`);
    assert.deepEqual(listed.json.grants.map((x: { issuedAt: number }) => x.issuedAt), [r.json.grant.issuedAt]);
    const log = await readFile(join(dir!, 'gateway', 'gateway.log'), 'utf8');
    assert.match(log, /dropped 1 grant\(s\) issued later than now/);
  });

  it('refuses, past each bound, with a JSON error (429 per owner; 503 for a grant when full and the owner holds as many as any; never a revocation for room), and a new owner still gets in', async () => {
    // Alice holds PER_OWNER grants (the first test): one more is refused.
    refused(await grantVia(alice, aliceHandle, generateAccount()), 429, 'rate_limited');
    // Alice holds one revocation: two more, then one past her bound.
    for (const grantee of grantees.slice(1)) assert.ok([200, 202].includes((await revokeVia(alice, aliceHandle, grantee)).status));
    refused(await revokeVia(alice, aliceHandle, generateAccount()), 429, 'rate_limited');

    const [eve, frank, harriet] = [generateAccount(), generateAccount(), generateAccount()];
    const [eveHandle, frankHandle, harrietHandle] = await Promise.all([ownHandle(eve), ownHandle(frank), ownHandle(harriet)]);
    for (const [kind, put] of [
      ['grants', (o: Account, h: string) => grantVia(o, h, generateAccount())],
      ['revocations', (o: Account, h: string) => revokeVia(o, h, generateAccount())],
    ] as const) {
      const ok = (r: { status: number; json: any }): void => assert.ok([200, 201, 202].includes(r.status), `${kind}: ${r.status} ${JSON.stringify(r.json)}`);
      // Eve fills the store (MAX) and takes her share: whoever holds the most gives way.
      for (let i = 0; i < PER_OWNER; i++) ok(await put(eve, eveHandle));
      // Frank holds fewer than the largest owner: his first two get in, displacing theirs ...
      ok(await put(frank, frankHandle));
      ok(await put(frank, frankHandle));
      // ... until he holds as many as anyone: then the full store refuses him a grant. A revocation
      // is never refused for room (it must reach the nodes): an older one is folded into a watermark.
      if (kind === 'grants') refused(await put(frank, frankHandle), 503, 'unavailable');
      else ok(await put(frank, frankHandle));
      // An owner holding nothing is never refused because of the others.
      ok(await put(harriet, harrietHandle));
    }
    // The bounds hold across a restart: at most PER_OWNER grants per owner, MAX in all.
    await restartGateway();
    const counts = await Promise.all(
      [aliceHandle, eveHandle, frankHandle, harrietHandle].map(async (h) => (await getJson(`${devnet!.gatewayUrl}/v1/handles/${h}/grants`)).json.grants.length as number),
    );
    assert.ok(counts.every((c) => c <= PER_OWNER) && counts.reduce((a, b) => a + b, 0) <= MAX, `grants per owner after restart: ${counts.join(', ')}`);
  });
});
