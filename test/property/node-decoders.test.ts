import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { isTkmsError } from '../../core/index.ts';
import { parseCommittee } from '../../net/committee.ts';
import { parseConfig } from '../../node/config.ts';
import { parseHostPort } from '../../net/http-address.ts';

function expectTypedOrOk(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
  }
}

describe('node decoders (property)', () => {
  let peerIds: string[] = [];

  before(async () => {
    peerIds = [];
    for (let i = 0; i < 4; i++) peerIds.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString());
  });

  function validCommittee(): Record<string, unknown> {
    return {
      committeeId: 'test-committee',
      t: 2,
      members: peerIds.map((peerId, i) => ({ id: i + 1, peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${9000 + i}`] })),
    };
  }

  it('parseCommittee: arbitrary JSON gives a committee or a TkmsError', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => expectTypedOrOk(() => parseCommittee(v))), { numRuns: 300 });
  });

  it('parseCommittee: a field of a valid committee replaced by anything stays typed', () => {
    const fields = ['committeeId', 't', 'members'];
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.jsonValue(), fc.nat(3), fc.constantFrom('id', 'peerId', 'multiaddrs', 'extra'), (field, value, idx, memberField) => {
        const c = validCommittee();
        c[field] = value;
        expectTypedOrOk(() => parseCommittee(c));
        const d = validCommittee();
        (d.members as Record<string, unknown>[])[idx]![memberField] = value;
        expectTypedOrOk(() => parseCommittee(d));
      }),
      { numRuns: 300 },
    );
  });

  it('parseCommittee: accepts the valid committee and rejects duplicate ids and t > n', () => {
    const c = parseCommittee(validCommittee());
    assert.equal(c.members.length, 4);
    assert.equal(c.members[0]!.publicKey.length, 32);
    const dup = validCommittee();
    (dup.members as Record<string, unknown>[])[1]!.id = 1;
    assert.throws(() => parseCommittee(dup), (e) => isTkmsError(e, 'bad_request') && /appears twice/.test(e.message));
    const big = validCommittee();
    big.t = 5;
    assert.throws(() => parseCommittee(big), (e) => isTkmsError(e, 'bad_request') && /t must be/.test(e.message));
    const otherPeer = validCommittee();
    (otherPeer.members as Record<string, unknown>[])[0]!.multiaddrs = [`/ip4/127.0.0.1/tcp/1/p2p/${peerIds[1]}`];
    assert.throws(() => parseCommittee(otherPeer), /different peer id/);
  });

  it('parseConfig: arbitrary JSON gives a config or a TkmsError', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => expectTypedOrOk(() => parseConfig(v, { baseDir: '/tmp', env: {} }))), { numRuns: 300 });
  });

  it('parseConfig: mutated fields stay typed; faults need the env switch', () => {
    const base = () => ({
      listen: '/ip4/127.0.0.1/tcp/9000',
      http: '127.0.0.1:9100',
      admin: '127.0.0.1:9200',
      identityFile: 'id.json',
      keystoreDir: 'ks',
      committeeFile: 'committee.json',
    });
    const ok = parseConfig(base(), { baseDir: '/srv/n1', env: {} });
    assert.equal(ok.identityFile, '/srv/n1/id.json');
    fc.assert(
      fc.property(fc.constantFrom('listen', 'http', 'admin', 'identityFile', 'keystoreDir', 'dkg', 'logLevel', 'testFaults', 'bogus'), fc.jsonValue(), (field, value) => {
        const c: Record<string, unknown> = base();
        c[field] = value;
        expectTypedOrOk(() => parseConfig(c, { baseDir: '/tmp', env: { TKMS_ENABLE_TEST_FAULTS: '1' } }));
      }),
      { numRuns: 300 },
    );
    const withFaults = { ...base(), testFaults: { silent: true } };
    assert.throws(() => parseConfig(withFaults, { baseDir: '/tmp', env: {} }), /TKMS_ENABLE_TEST_FAULTS/);
    assert.deepEqual(parseConfig(withFaults, { baseDir: '/tmp', env: { TKMS_ENABLE_TEST_FAULTS: '1' } }).testFaults, { silent: true });
    assert.throws(() => parseConfig({ ...base(), admin: '0.0.0.0:9200' }, { baseDir: '/tmp', env: {} }), /loopback/);
    // Every mistake is listed, one per line.
    try {
      parseConfig({ listen: 5, http: 'x' }, { baseDir: '/tmp', env: {} });
      assert.fail('expected a config error');
    } catch (e) {
      assert.ok(isTkmsError(e, 'bad_request'));
      assert.ok(((e.details?.problems as string[]) ?? []).length >= 5);
    }
  });

  it('parseHostPort never throws', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.jsonValue()), (v) => {
      const r = parseHostPort(v);
      if (r !== undefined) assert.ok(r.port >= 0 && r.port <= 65535 && r.host.length > 0);
    }), { numRuns: 500 });
  });
  // The DKG frames (/tkms/dkg/2): test/property/dkg-wire.test.ts.
});
