import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { isTkmsError, type ErrorCode } from '../../core/index.ts';
import { proposalDigest } from '../../core/ceremony/proposal.ts';
import type { ReshareProposal } from '../../core/ceremony/types.ts';
import { encodeHex } from '../../core/index.ts';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import type { StoredApproval } from '../../node/epoch-types.ts';
import { buildRefreshProposal, checkOperatorApproval, checkPeerRefresh, RefreshRate, type ApprovalContext } from '../../node/reshare-approvals.ts';
import { INBOX_LIMITS, PreApprovalInbox } from '../../node/reshare-inbox.ts';
import { leadsRefresh, refreshDue, RefreshSchedule } from '../../node/refresh-schedule.ts';
import { createLogger } from '../../runtime/logger.ts';
import { parseConfig } from '../../node/config.ts';

function refused(code: ErrorCode, f: () => unknown, message?: RegExp): void {
  assert.throws(f, (e: unknown) => isTkmsError(e) && e.code === code && (message === undefined || message.test(e.message)));
}

describe('node reshare approvals (control plane rules)', () => {
  const keys: { peerId: string; publicKey: Uint8Array }[] = [];
  let c5: Committee;
  let c7: Committee;
  const held = ['key-a', 'key-b'];

  const committee = (n: number, t: number, epoch: number, extra: Record<string, unknown> = {}): Committee =>
    parseCommittee({ committeeId: 'reshare-test', epoch, t, ...extra, members: keys.slice(0, n).map((k, i) => ({ id: i + 1, peerId: k.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${20_000 + i}`] })) });

  before(async () => {
    for (let i = 0; i < 8; i++) {
      const privateKey = await generateKeyPair('Ed25519');
      keys.push({ peerId: peerIdFromPrivateKey(privateKey).toString(), publicKey: privateKey.publicKey.raw });
    }
    c5 = committee(5, 3, 0);
    c7 = committee(7, 4, 1);
  });

  const reshare = (): ReshareProposal => ({ from: c5, to: c7, keyIds: held });
  const ctx = (self: number, over: Partial<ApprovalContext> = {}): ApprovalContext => ({
    served: c5,
    selfKey: keys[self - 1]!.publicKey,
    heldKeyIds: held,
    approvals: [],
    finished: () => false,
    voted: () => false,
    ...over,
  });
  const approval = (p: ReshareProposal, status: StoredApproval['status'] = 'approved'): StoredApproval => ({ proposalId: encodeHex(proposalDigest(p)), proposal: p, status, approvedAt: new Date(0).toISOString() });

  describe('operator approval', () => {
    it('takes a reshare of the served committee that moves exactly the held keys', () => {
      const checked = checkOperatorApproval(reshare(), ctx(1));
      assert.equal(checked.kind, 'reshare');
      assert.equal(checked.proposalId, encodeHex(proposalDigest(reshare())));
      assert.equal(checked.known, undefined);
    });

    it('takes it on a member that joins: started with `to`, holding nothing', () => {
      assert.equal(checkOperatorApproval(reshare(), ctx(6, { served: c7, heldKeyIds: [] })).kind, 'reshare');
    });

    it('refuses a `from` other than the committee served (409 stale_epoch)', () => {
      refused('stale_epoch', () => checkOperatorApproval({ from: committee(5, 2, 0), to: c7, keyIds: held }, ctx(1)), /not the committee this node serves/);
      // A member of `from` started with `to` is not "joining": it must serve `from`.
      refused('stale_epoch', () => checkOperatorApproval(reshare(), ctx(1, { served: c7, heldKeyIds: [] })));
    });

    it('refuses key ids other than those held, with both lists in the message (409 conflict)', () => {
      refused('conflict', () => checkOperatorApproval({ ...reshare(), keyIds: ['key-a'] }, ctx(1)), /holds \[key-a, key-b\]/);
      refused('conflict', () => checkOperatorApproval(reshare(), ctx(1, { heldKeyIds: ['key-a', 'key-b', 'key-c'] })));
    });

    it('refuses a node in neither committee', () => {
      refused('bad_request', () => checkOperatorApproval({ from: committee(3, 2, 0), to: committee(4, 2, 1), keyIds: held }, ctx(6, { served: committee(3, 2, 0) })));
    });

    it('refuses a second approval while another is unfinished, and allows it once that one finished', () => {
      const other = approval({ ...reshare(), to: committee(6, 3, 1) });
      refused('reshare_in_progress', () => checkOperatorApproval(reshare(), ctx(1, { approvals: [other] })));
      assert.equal(checkOperatorApproval(reshare(), ctx(1, { approvals: [other], finished: () => true })).kind, 'reshare');
      assert.equal(checkOperatorApproval(reshare(), ctx(1, { approvals: [approval({ ...reshare(), to: committee(6, 3, 1) }, 'cancelled')] })).kind, 'reshare');
    });

    it('is idempotent for the same proposal, and refuses one cancelled here', () => {
      const mine = approval(reshare());
      assert.equal(checkOperatorApproval(reshare(), ctx(1, { approvals: [mine] })).known, mine);
      refused('conflict', () => checkOperatorApproval(reshare(), ctx(1, { approvals: [approval(reshare(), 'cancelled')] })), /cancelled/);
    });
  });

  describe('refresh from a peer', () => {
    it('refuses any proposal that changes members or t with not_approved', () => {
      refused('not_approved', () => checkPeerRefresh(reshare(), ctx(1), new RefreshRate(60), 0), /operator/);
      refused('not_approved', () => checkPeerRefresh({ from: c5, to: committee(5, 2, 1), keyIds: held }, ctx(1), new RefreshRate(60), 0));
    });

    it('takes a refresh of exactly the served committee and held keys, and refuses others', () => {
      const refresh = buildRefreshProposal(c5, held);
      assert.equal(checkPeerRefresh(refresh, ctx(2), new RefreshRate(60), 0).kind, 'refresh');
      refused('not_approved', () => checkPeerRefresh(buildRefreshProposal(c5, ['key-a']), ctx(2), new RefreshRate(60), 0), /exactly the keys/);
      refused('not_approved', () => checkPeerRefresh(buildRefreshProposal(committee(5, 3, 0, { refreshIntervalSeconds: 3600 }), held), ctx(2), new RefreshRate(60), 0), /not of the committee/);
      refused('reshare_in_progress', () => checkPeerRefresh(refresh, ctx(2, { approvals: [approval(reshare())] }), new RefreshRate(60), 0));
    });

    it('takes at most one refresh per spacing, across epochs (a member cannot refresh in a loop), and never restarts one that ended here', () => {
      const rate = new RefreshRate(60);
      const first = buildRefreshProposal(c5, held);
      checkPeerRefresh(first, ctx(2), rate, 1_000);
      // The same refresh again is a repeat while it runs, not a second one; once it ended, a peer cannot start it again.
      assert.ok(checkPeerRefresh(first, ctx(2, { approvals: [approval(first)] }), rate, 2_000).known !== undefined);
      refused('not_approved', () => checkPeerRefresh(first, ctx(2, { approvals: [approval(first)], finished: () => true }), rate, 2_000), /ended here/);
      refused('rate_limited', () => checkPeerRefresh(first, ctx(2), rate, 30_000));
      // The next epoch's refresh right after the commit is refused too: the spacing is not reset by an epoch.
      const next = { ...c5, epoch: 1 };
      refused('rate_limited', () => checkPeerRefresh(buildRefreshProposal(next, held), ctx(2, { served: next }), rate, 31_000));
      assert.equal(checkPeerRefresh(first, ctx(2), rate, 61_001).kind, 'refresh');
    });

    it('a node that voted for one proposal leaving an epoch takes part in no other proposal leaving it (operator or peer)', () => {
      const first = reshare();
      const voted = approval(first);
      const withVote = { approvals: [voted], finished: () => true, voted: (id: string) => id === voted.proposalId };
      refused('conflict', () => checkOperatorApproval({ from: c5, to: committee(7, 5, 1), keyIds: held }, ctx(1, withVote)), /voted for proposal/);
      refused('not_approved', () => checkPeerRefresh(buildRefreshProposal(c5, held), ctx(1, withVote), new RefreshRate(0), 0), /voted for proposal/);
      // Without a vote (the first one failed before this node voted), another proposal is taken.
      assert.equal(checkOperatorApproval({ from: c5, to: committee(7, 5, 1), keyIds: held }, ctx(1, { approvals: [voted], finished: () => true })).kind, 'reshare');
    });

    it('spaces refreshes by half the committee interval, never under 60 s', () => {
      const daily = RefreshRate.forCommittee(committee(5, 3, 0, { refreshIntervalSeconds: 86_400 }));
      const p = buildRefreshProposal(c5, held);
      daily.take(p.from, 0);
      refused('rate_limited', () => daily.take(p.from, 43_199_000));
      daily.take(p.from, 43_200_000);
      const fast = RefreshRate.forCommittee(committee(5, 3, 0, { refreshIntervalSeconds: 60 }));
      fast.take(p.from, 0);
      refused('rate_limited', () => fast.take(p.from, 59_000));
    });

    it('builds the refresh proposal as the served committee at epoch + 1 with the held keys sorted', () => {
      const p = buildRefreshProposal(c5, ['key-b', 'key-a']);
      assert.equal(p.to.epoch, 1);
      assert.deepEqual(p.keyIds, ['key-a', 'key-b']);
      refused('bad_request', () => buildRefreshProposal(c5, []));
    });
  });

  describe('pre-approval inbox', () => {
    it('holds early payloads per peer up to its count bound, then refuses (not_approved) and keeps nothing more', () => {
      const inbox = new PreApprovalInbox();
      for (let i = 0; i < INBOX_LIMITS.perPeerPayloads; i++) inbox.hold('p1', 'x', new Uint8Array(10).fill(i), 0);
      refused('not_approved', () => inbox.hold('p1', 'x', new Uint8Array(10).fill(255), 0));
      assert.equal(inbox.size, INBOX_LIMITS.perPeerPayloads);
      inbox.hold('p2', 'x', new Uint8Array(10), 0);
      assert.equal(inbox.take('x', 1).length, INBOX_LIMITS.perPeerPayloads + 1);
      assert.equal(inbox.size, 0);
    });

    it('bounds bytes per peer and peers in total', () => {
      const inbox = new PreApprovalInbox({ perPeerPayloads: 64, perPeerBytes: 100, peers: 2, ttlMs: 60_000 });
      inbox.hold('a', 'x', new Uint8Array(60), 0);
      refused('not_approved', () => inbox.hold('a', 'x', new Uint8Array(41), 0));
      inbox.hold('a', 'x', new Uint8Array(40), 0);
      inbox.hold('b', 'x', new Uint8Array(1), 0);
      refused('not_approved', () => inbox.hold('c', 'x', new Uint8Array(1), 0), /too many peers/);
      assert.equal(inbox.size, 3);
    });

    it('keeps one copy of a payload sent again (a sender re-sends every half phase until approval), so copies never fill the bound', () => {
      const inbox = new PreApprovalInbox({ ...INBOX_LIMITS, perPeerPayloads: 3, ttlMs: 1_000 });
      const hello = new Uint8Array([1, 2, 3]);
      for (let i = 0; i < 10; i++) inbox.hold('a', 'x', hello.slice(), i * 300);
      assert.equal(inbox.size, 1);
      // The copy refreshed its time: still held 1 s after the first one arrived.
      inbox.hold('a', 'x', new Uint8Array([4]), 3_000);
      inbox.hold('a', 'y', hello.slice(), 3_000);
      refused('not_approved', () => inbox.hold('a', 'x', new Uint8Array([5]), 3_000));
      assert.deepEqual(inbox.take('x', 3_100).map((h) => [...h.payload]), [[1, 2, 3], [4]]);
      assert.deepEqual(inbox.take('y', 3_100).map((h) => [...h.payload]), [[1, 2, 3]]);
    });

    it('drops payloads after their time, and hands out only the proposal asked for', () => {
      const inbox = new PreApprovalInbox({ ...INBOX_LIMITS, ttlMs: 1_000 });
      inbox.hold('a', 'x', new Uint8Array(1), 0);
      inbox.hold('a', 'y', new Uint8Array(2), 500);
      assert.deepEqual(inbox.take('y', 900).map((h) => h.payload.length), [2]);
      assert.equal(inbox.take('x', 1_001).length, 0);
      assert.equal(inbox.size, 0);
    });
  });

  describe('refresh schedule', () => {
    it('is due only with an interval, once the epoch is older than it', () => {
      assert.equal(refreshDue(c5, 0, 1e12), false);
      const daily = committee(5, 3, 0, { refreshIntervalSeconds: 86_400 });
      assert.equal(refreshDue(daily, 0, 86_399_999), false);
      assert.equal(refreshDue(daily, 0, 86_400_000), true);
    });

    it('is led by the lowest id online', () => {
      assert.equal(leadsRefresh(1, [2, 3]), true);
      assert.equal(leadsRefresh(2, [3, 4]), true);
      assert.equal(leadsRefresh(2, [1, 3]), false);
    });

    it('starts a refresh when due, led here, idle and holding keys; not otherwise', async () => {
      const daily = committee(5, 3, 0, { refreshIntervalSeconds: 3_600 });
      let started = 0;
      let busy = false;
      let now = 0;
      const schedule = new RefreshSchedule({
        served: () => daily,
        selfId: () => 2,
        connected: () => [3, 5],
        lastCommitAt: () => 0,
        busy: () => busy,
        holdsKeys: () => true,
        startRefresh: async () => void started++,
        log: createLogger('silent'),
        now: () => now,
      });
      assert.equal(await schedule.check(), false);
      now = 3_600_000;
      busy = true;
      assert.equal(await schedule.check(), false);
      busy = false;
      assert.equal(await schedule.check(), true);
      assert.equal(started, 1);
    });
  });

  describe('config', () => {
    const NODE = { listen: '/ip4/127.0.0.1/tcp/9000', http: '127.0.0.1:9100', admin: '127.0.0.1:9200', identityFile: 'id.json', keystoreDir: 'ks', committeeFile: 'c.json' };
    const enabled = { TKMS_ENABLE_TEST_FAULTS: '1' };

    it('reads reshare.phaseTimeoutMs (default 5000) and ceremony faults only with test faults enabled', () => {
      assert.equal(parseConfig(NODE, { baseDir: '/tmp' }).resharePhaseTimeoutMs, 5_000);
      assert.equal(parseConfig({ ...NODE, reshare: { phaseTimeoutMs: 700 } }, { baseDir: '/tmp' }).resharePhaseTimeoutMs, 700);
      const faults = { ceremony: { badSubShareTo: [2, 3], equivocateDealing: true, silent: false } };
      assert.deepEqual(parseConfig({ ...NODE, testFaults: faults }, { baseDir: '/tmp', env: enabled }).ceremonyFaults, faults.ceremony);
      refused('bad_request', () => parseConfig({ ...NODE, testFaults: faults }, { baseDir: '/tmp' }), /TKMS_ENABLE_TEST_FAULTS/);
    });

    it('refuses unknown or mistyped ceremony faults, naming them', () => {
      refused('bad_request', () => parseConfig({ ...NODE, testFaults: { ceremony: { lie: true } } }, { baseDir: '/tmp', env: enabled }), /unknown field "lie"/);
      refused('bad_request', () => parseConfig({ ...NODE, testFaults: { ceremony: { badSubShareTo: [0] } } }, { baseDir: '/tmp', env: enabled }), /badSubShareTo/);
      refused('bad_request', () => parseConfig({ ...NODE, testFaults: { ceremony: { silent: 'yes' } } }, { baseDir: '/tmp', env: enabled }), /silent must be true or false/);
      refused('bad_request', () => parseConfig({ ...NODE, testFaults: { ceremony: [] } }, { baseDir: '/tmp', env: enabled }), /ceremony must be an object/);
    });

    it('holdVoteWhileExists (a vote write waits while the file exists) resolves against the config directory, only with test faults enabled', () => {
      assert.equal(parseConfig(NODE, { baseDir: '/tmp' }).voteHoldFile, undefined);
      assert.equal(parseConfig({ ...NODE, testFaults: { holdVoteWhileExists: 'hold' } }, { baseDir: '/tmp/n1', env: enabled }).voteHoldFile, '/tmp/n1/hold');
      refused('bad_request', () => parseConfig({ ...NODE, testFaults: { holdVoteWhileExists: 'hold' } }, { baseDir: '/tmp' }), /TKMS_ENABLE_TEST_FAULTS/);
      refused('bad_request', () => parseConfig({ ...NODE, testFaults: { holdVoteWhileExists: '' } }, { baseDir: '/tmp', env: enabled }), /holdVoteWhileExists must be a file path/);
      refused('bad_request', () => parseConfig({ ...NODE, testFaults: { holdVoteWhileExists: 1 } }, { baseDir: '/tmp', env: enabled }), /holdVoteWhileExists must be a file path/);
    });
  });
});
