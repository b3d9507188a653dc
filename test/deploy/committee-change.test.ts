import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import fc from 'fast-check';
import { isRefresh, parseReshareProposal, proposalDigest } from '../../core/ceremony/proposal.ts';
import { encodeHex, isTkmsError } from '../../core/index.ts';
import { buildProposal, committeeFileText, nextCommittee, summarizeChange } from '../../deploy/committee-change.ts';
import { libp2pCommitteeDecoders, parseCommittee, type Committee } from '../../net/committee.ts';
import { runTkmsCli } from '../../scripts/cli/program.ts';
import { makeTempDir, REPO_ROOT, removeDir } from '../support/processes.ts';
import { captureCli } from './cli-capture.ts';

/**
 * Preparing committee changes without nodes: `tkms committee next` and `propose-reshare` write
 * files the nodes accept (parseReshareProposal) and say whether they are a refresh or a reshare;
 * `tkms node approve / cancel-reshare / refresh / status` against a stand-in admin listener
 * (what they send, what they print, how refusals come out).
 */
const tkms = (...argv: string[]) => captureCli(() => runTkmsCli(argv));

const PEERS: string[] = [];
const addr = (i: number) => `/ip4/127.0.0.1/tcp/${9000 + i}`;
const memberArg = (i: number) => `${i}=${addr(i)}/p2p/${PEERS[i - 1]}`;

function committee(ids: number[], t: number, epoch = 0): Committee {
  return parseCommittee({ committeeId: 'ops-test-1', epoch, t, members: ids.map((id) => ({ id, peerId: PEERS[id - 1], multiaddrs: [addr(id)] })) });
}

describe('committee changes: next committee and proposal files', function () {
  this.timeout(60_000);
  let dir: string;
  let c0: string;

  before(async () => {
    for (let i = 0; i < 10; i++) PEERS.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString());
    dir = await makeTempDir('tkms-committee-change');
    c0 = join(dir, 'c0.json');
    await writeFile(c0, committeeFileText(committee([1, 2, 3, 4, 5], 3)));
  });

  after(() => removeDir(dir));

  it('next + propose-reshare: 3-of-5 → 4-of-7 is a reshare, written as nodes will read it', async () => {
    const next = await tkms('committee', 'next', '--from', c0, '--add', memberArg(6), '--add', memberArg(7), '--t', '4', '--out', join(dir, 'grow.json'));
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stdout, /^epoch: {7}1$/m);
    assert.match(next.stdout, /^kind: {8}reshare$/m);
    assert.match(next.stdout, /^threshold: {3}3 of 5 → 4 of 7$/m);
    assert.match(next.stdout, /^added: {7}6, 7$/m);
    const to = parseCommittee(JSON.parse(await readFile(join(dir, 'grow.json'), 'utf8')));
    assert.deepEqual([to.epoch, to.t, to.members.map((m) => m.id)], [1, 4, [1, 2, 3, 4, 5, 6, 7]]);

    const out = join(dir, 'grow-proposal.json');
    const r = await tkms('committee', 'propose-reshare', '--from', c0, '--to', join(dir, 'grow.json'), '--keys', 'payroll,default,payroll', '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const file = JSON.parse(await readFile(out, 'utf8'));
    assert.equal(file.v, 1);
    const proposal = parseReshareProposal(file, libp2pCommitteeDecoders);
    assert.deepEqual(proposal.keyIds, ['default', 'payroll'], 'sorted, without repeats');
    assert.equal(isRefresh(proposal), false);
    assert.match(r.stdout, new RegExp(`^proposal id: ${encodeHex(proposalDigest(proposal))}$`, 'm'));
    assert.match(r.stdout, /^kind: {8}reshare$/m);
    assert.match(r.stdout, /tkms node approve --config <their node config> /);

    const json = await tkms('committee', 'propose-reshare', '--from', c0, '--to', join(dir, 'grow.json'), '--keys', 'default', '--out', join(dir, 'grow-proposal-2.json'), '--json');
    assert.equal(json.code, 0, json.stderr);
    const answer = JSON.parse(json.stdout);
    assert.deepEqual(answer.change.added, [6, 7]);
    assert.equal(answer.change.kind, 'reshare');
    assert.equal(answer.proposalId, encodeHex(proposalDigest(parseReshareProposal(JSON.parse(await readFile(join(dir, 'grow-proposal-2.json'), 'utf8')), libp2pCommitteeDecoders))));
  });

  it('next without edits is a refresh; a new t alone, or a member replaced, is a reshare', async () => {
    const cases: [string[], 'refresh' | 'reshare', number[], number[]][] = [
      [[], 'refresh', [], []],
      [['--t', '2'], 'reshare', [], []],
      [['--remove', '3', '--add', memberArg(8)], 'reshare', [8], [3]],
      [['--remove', '5', '--t', '2'], 'reshare', [], [5]],
    ];
    for (const [i, [edits, kind, added, removed]] of cases.entries()) {
      const file = join(dir, `edit-${i}.json`);
      const next = await tkms('committee', 'next', '--from', c0, ...edits, '--out', file, '--json');
      assert.equal(next.code, 0, next.stderr);
      const summary = JSON.parse(next.stdout).change;
      assert.deepEqual([summary.kind, summary.added, summary.removed], [kind, added, removed], edits.join(' '));
      const p = await tkms('committee', 'propose-reshare', '--from', c0, '--to', file, '--keys', 'default', '--out', join(dir, `edit-${i}-proposal.json`), '--json');
      assert.equal(p.code, 0, p.stderr);
      assert.equal(JSON.parse(p.stdout).change.kind, kind);
      assert.equal(isRefresh(parseReshareProposal(JSON.parse(await readFile(join(dir, `edit-${i}-proposal.json`), 'utf8')), libp2pCommitteeDecoders)), kind === 'refresh');
    }
  });

  it('a new committee file without an epoch gets the next one; a wrong epoch or another committee id is refused', async () => {
    const bare = JSON.parse(committeeFileText(committee([1, 2, 3, 4], 3, 0)));
    delete bare.epoch;
    await writeFile(join(dir, 'bare.json'), JSON.stringify(bare));
    const ok = await tkms('committee', 'propose-reshare', '--from', c0, '--to', join(dir, 'bare.json'), '--keys', 'k', '--out', join(dir, 'bare-proposal.json'));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(await readFile(join(dir, 'bare-proposal.json'), 'utf8')).to.epoch, 1);
    assert.match(ok.stdout, /^removed: {5}5$/m);

    await writeFile(join(dir, 'epoch2.json'), committeeFileText(committee([1, 2, 3, 4, 5], 3, 2)));
    const wrongEpoch = await tkms('committee', 'propose-reshare', '--from', c0, '--to', join(dir, 'epoch2.json'), '--keys', 'k', '--out', join(dir, 'x.json'));
    assert.equal(wrongEpoch.code, 1);
    assert.match(wrongEpoch.stderr, /^tkms committee propose-reshare: error \[bad_request\]: the new committee file says epoch 2; it must be the current epoch \+ 1 = 1/);

    await writeFile(join(dir, 'other-id.json'), JSON.stringify({ ...JSON.parse(committeeFileText(committee([1, 2, 3], 2, 1))), committeeId: 'another-1' }));
    const otherId = await tkms('committee', 'propose-reshare', '--from', c0, '--to', join(dir, 'other-id.json'), '--keys', 'k', '--out', join(dir, 'x.json'));
    assert.equal(otherId.code, 1);
    assert.match(otherId.stderr, /keeps the committee id/);

    const again = await tkms('committee', 'propose-reshare', '--from', c0, '--to', join(dir, 'bare.json'), '--keys', 'k', '--out', join(dir, 'bare-proposal.json'));
    assert.equal(again.code, 1);
    assert.match(again.stderr, /error \[conflict\]: .*already exists; refusing to overwrite it/);
  });

  it('argument mistakes: usage errors (exit 2) and refused edits (exit 1), naming what is wrong', async () => {
    const usage: [string[], RegExp][] = [
      [['committee', 'propose-reshare', '--from', c0, '--to', c0, '--out', join(dir, 'u.json')], /give --admin \(reshare every key a member holds\) or --keys/],
      [['committee', 'propose-reshare', '--from', c0, '--to', c0, '--keys', 'a', '--admin', 'http://127.0.0.1:1', '--out', join(dir, 'u.json')], /option '--admin <url>' cannot be used with option '--keys <keyIds>'/],
      [['committee', 'propose-reshare', '--from', c0, '--to', c0, '--admin', 'ftp://x', '--out', join(dir, 'u.json')], /option '--admin <url>' argument 'ftp:\/\/x' is invalid/],
      [['committee', 'propose-reshare', '--to', c0, '--keys', 'a', '--out', join(dir, 'u.json')], /--from is required/],
      [['committee', 'next', '--from', c0, '--out', join(dir, 'u.json'), '--remove', 'two'], /option '--remove <id>' argument 'two' is invalid/],
      [['committee', 'next', '--from', c0, '--out', join(dir, 'u.json'), '--add', 'nonsense'], /member "nonsense" must look like 1=/],
      [['committee', 'next', '--from', c0, '--out', join(dir, 'u.json'), '--add', `9=${addr(9)}`], /--add|must end with \/p2p\//],
      [['node', 'approve', '--admin', 'http://127.0.0.1:1'], /missing required argument 'proposal'/],
      [['node', 'cancel-reshare', '--admin', 'http://127.0.0.1:1', 'xyz'], /"xyz" is not a proposal id/],
    ];
    for (const [argv, pattern] of usage) {
      const r = await tkms(...argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern, argv.join(' '));
      assert.equal(r.stdout, '');
    }
    const refused: [string[], RegExp][] = [
      [['--remove', '9'], /member 9 is not in committee/],
      [['--add', memberArg(3)], /member id 3 is already in the committee/],
      [['--remove', '3', '--add', memberArg(3)], /must not reuse it/],
      [['--remove', '1', '--remove', '2', '--remove', '3'], /t = 3 but the next committee has 2 members/],
      [['--refresh-interval', '30'], /refreshIntervalSeconds must be an integer from 60 to/],
      [['--t', '6'], /t = 6 but the next committee has 5 members/],
    ];
    for (const [edits, pattern] of refused) {
      const r = await tkms('committee', 'next', '--from', c0, ...edits, '--out', join(dir, 'refused.json'));
      assert.equal(r.code, 1, `${edits.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern, edits.join(' '));
    }
    const missing = await tkms('node', 'approve', '--admin', 'http://127.0.0.1:1', join(dir, 'nonexistent.json'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read proposal file .*nonexistent\.json: ENOENT/);
    const notProposal = await tkms('node', 'approve', '--admin', 'http://127.0.0.1:1', c0);
    assert.equal(notProposal.code, 1);
    assert.match(notProposal.stderr, /reshare proposal/, 'checked locally before anything is sent');
  });

  it('refresh schedule: set, kept and removed by next', async () => {
    const set = join(dir, 'sched.json');
    assert.equal((await tkms('committee', 'next', '--from', c0, '--refresh-interval', '86400', '--out', set)).code, 0);
    const kept = join(dir, 'sched-kept.json');
    const r = await tkms('committee', 'next', '--from', set, '--out', kept);
    assert.match(r.stdout, /members refresh their shares every 86400 s/);
    assert.equal(parseCommittee(JSON.parse(await readFile(kept, 'utf8'))).refreshIntervalSeconds, 86400);
    const removed = join(dir, 'sched-removed.json');
    assert.equal((await tkms('committee', 'next', '--from', kept, '--refresh-interval', '0', '--out', removed)).code, 0);
    assert.equal(parseCommittee(JSON.parse(await readFile(removed, 'utf8'))).refreshIntervalSeconds, undefined);
  });

  it('property: any edit of a committee gives a proposal the nodes accept, whose kind and summary match the edit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        fc.integer({ min: 1, max: 10 }),
        fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/), { minLength: 1, maxLength: 4 }),
        (n, addCount, removeMask, tRaw, keyIds) => {
          const from = committee(Array.from({ length: n }, (_, i) => i + 1), Math.min(n, 1 + (tRaw % n)));
          const remove = from.members.map((m) => m.id).filter((_, i) => removeMask[i]);
          const add = Array.from({ length: addCount }, (_, i) => ({ id: 7 + i, peerId: PEERS[6 + i]!, multiaddrs: [addr(7 + i)] }));
          const size = n - remove.length + addCount;
          const t = size === 0 ? 1 : 1 + (tRaw % size);
          let to: Committee;
          try {
            to = nextCommittee(from, { add, remove, t });
          } catch (e) {
            assert.ok(isTkmsError(e, 'bad_request'));
            assert.equal(size, 0, 'only an empty committee is refused here');
            return;
          }
          const p = buildProposal(JSON.parse(committeeFileText(from)), JSON.parse(committeeFileText(to)), keyIds);
          const s = summarizeChange(p.from, p.to);
          assert.equal(s.kind === 'refresh', isRefresh(p));
          assert.deepEqual(s.added, add.map((m) => m.id));
          assert.deepEqual(s.removed, remove);
          assert.equal(p.to.epoch, from.epoch + 1);
          assert.deepEqual(p.keyIds, [...keyIds].sort());
        },
      ),
      { numRuns: 200 },
    );
  });

  it('property: whatever JSON the committee files hold, building a proposal is a typed refusal or a valid proposal', () => {
    const good = JSON.parse(committeeFileText(committee([1, 2, 3], 2)));
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }), (junk, junkIsFrom, keyIds) => {
        try {
          const p = buildProposal(junkIsFrom ? junk : good, junkIsFrom ? good : junk, keyIds);
          parseReshareProposal(JSON.parse(JSON.stringify({ v: 1, from: JSON.parse(committeeFileText(p.from)), to: JSON.parse(committeeFileText(p.to)), keyIds: p.keyIds })), libp2pCommitteeDecoders);
        } catch (e) {
          assert.ok(isTkmsError(e), String(e));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("operators' guide: the commands of \"Change the committee\" exist as written", function () {
  this.timeout(60_000);

  it('every tkms command in the section names a real command and only options it takes', async () => {
    const guide = await readFile(join(REPO_ROOT, 'docs/operators.md'), 'utf8');
    const section = guide.slice(guide.indexOf('## Change the committee'), guide.indexOf('## Upgrade'));
    assert.ok(section.length > 1000, 'the section exists');
    const uses = [...section.matchAll(/tkms (node|committee|devnet)\b([^`\n]*)/g)];
    assert.ok(uses.length >= 15, `found ${uses.length} commands`);
    const help = new Map<string, string>();
    for (const [text, group, rest] of uses) {
      const sub = /^ ([a-z][a-z-]+)/.exec(rest!)?.[1];
      const argv = group === 'devnet' || sub === undefined ? [group!] : [group!, sub];
      const key = argv.join(' ');
      if (!help.has(key)) {
        const r = await tkms(...argv, '--help');
        assert.equal(r.code, 0, `${text}: ${r.stderr}`);
        help.set(key, r.stdout);
      }
      for (const flag of rest!.match(/--[a-z][a-z-]*/g) ?? []) assert.ok(help.get(key)!.includes(`${flag} `) || help.get(key)!.includes(`${flag}\n`), `"${text.trim()}": tkms ${key} has no ${flag}`);
    }
  });
});

/** A stand-in admin listener: records requests, answers what the test sets. */
class FakeAdmin {
  readonly requests: { method: string; path: string; body: unknown }[] = [];
  answers = new Map<string, { status: number; json: unknown }>();
  private server!: Server;

  async start(): Promise<string> {
    this.server = createServer(async (req: IncomingMessage, res) => {
      let text = '';
      for await (const chunk of req) text += chunk;
      this.requests.push({ method: req.method!, path: req.url!, body: text === '' ? undefined : JSON.parse(text) });
      const a = this.answers.get(`${req.method} ${req.url}`) ?? { status: 404, json: { error: { code: 'not_found', message: 'no route' } } };
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.json));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('node approve / cancel-reshare / refresh / status against an admin listener', function () {
  this.timeout(60_000);
  let dir: string;
  let admin: FakeAdmin;
  let url: string;
  let proposalFile: string;
  let proposalId: string;

  before(async () => {
    if (PEERS.length === 0) for (let i = 0; i < 10; i++) PEERS.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString());
    dir = await makeTempDir('tkms-approve');
    const from = committee([1, 2, 3, 4, 5], 3);
    const p = buildProposal(JSON.parse(committeeFileText(from)), JSON.parse(committeeFileText(nextCommittee(from, { remove: [5], t: 2 }))), ['default']);
    proposalFile = join(dir, 'proposal.json');
    await writeFile(proposalFile, JSON.stringify({ v: 1, from: JSON.parse(committeeFileText(p.from)), to: JSON.parse(committeeFileText(p.to)), keyIds: p.keyIds }));
    proposalId = encodeHex(proposalDigest(p));
    admin = new FakeAdmin();
    url = await admin.start();
  });

  after(async () => {
    await admin.stop();
    await removeDir(dir);
  });

  it('approve sends the proposal file as it is and prints the id, kind, status and the change', async () => {
    admin.answers.set('POST /admin/reshare/approve', { status: 202, json: { proposalId, kind: 'reshare', status: 'approved' } });
    const r = await tkms('node', 'approve', '--admin', url, proposalFile);
    assert.equal(r.code, 0, r.stderr);
    const sent = admin.requests.at(-1)!;
    assert.deepEqual(sent.body, JSON.parse(await readFile(proposalFile, 'utf8')));
    assert.match(r.stdout, new RegExp(`^proposal: {4}${proposalId}$`, 'm'));
    assert.match(r.stdout, /^status: {6}approved$/m);
    assert.match(r.stdout, /^removed: {5}5$/m);
    assert.match(r.stdout, /^threshold: {3}3 of 5 → 2 of 4$/m);
    const json = await tkms('node', 'approve', '--admin', url, proposalFile, '--json');
    assert.deepEqual(JSON.parse(json.stdout), { proposalId, kind: 'reshare', status: 'approved' });
  });

  it("the node's refusal comes out with its own code; a node answering for another proposal is an error", async () => {
    admin.answers.set('POST /admin/reshare/approve', { status: 409, json: { error: { code: 'stale_epoch', message: 'this node serves epoch 1' } } });
    const r = await tkms('node', 'approve', '--admin', url, proposalFile);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'tkms node approve: error [stale_epoch]: this node serves epoch 1\n');
    admin.answers.set('POST /admin/reshare/approve', { status: 202, json: { proposalId: `0x${'ab'.repeat(32)}`, kind: 'reshare', status: 'approved' } });
    const other = await tkms('node', 'approve', '--admin', url, proposalFile);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /error \[internal\]: the node approved proposal 0xabab/);
    const down = await tkms('node', 'approve', '--admin', 'http://127.0.0.1:1', proposalFile);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /error \[unavailable\]: cannot reach the admin endpoint .*is the node running\?/);
  });

  it('cancel-reshare and refresh call their routes', async () => {
    admin.answers.set('POST /admin/reshare/cancel', { status: 200, json: { proposalId, status: 'cancelled' } });
    // Typed without 0x and in capitals, sent as nodes spell it.
    const c = await tkms('node', 'cancel-reshare', '--admin', url, proposalId.slice(2).toUpperCase());
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(admin.requests.at(-1)!.body, { proposalId });
    assert.match(c.stdout, /^status: {6}cancelled$/m);
    admin.answers.set('POST /admin/refresh', { status: 202, json: { proposalId: `0x${'cd'.repeat(32)}`, kind: 'refresh', status: 'running' } });
    const f = await tkms('node', 'refresh', '--admin', url);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(admin.requests.at(-1), { method: 'POST', path: '/admin/refresh', body: {} });
    assert.match(f.stdout, /^kind: {8}refresh$/m);
  });

  it('status shows the epoch and the changes pending or failed', async () => {
    const status = {
      version: '0.1.0', nodeVersion: 'v20', startedAt: 'now', uptimeSeconds: 1, selfId: 1, peerId: PEERS[0], listen: [],
      committee: { committeeId: 'ops-test-1', t: 3, n: 5, fingerprint: 'f'.repeat(64) }, epoch: { epoch: 2, n: 4, t: 3 },
      peers: { connected: 0, members: [] }, keys: [], lastDkg: null, dkgSessionsSinceStart: {}, acl: { mode: 'signed' },
    };
    const base = { kind: 'reshare', fromEpoch: 2, toEpoch: 3, startedAt: '2026-01-01T00:00:00Z', durationMs: null, disqualified: {} };
    admin.answers.set('GET /admin/status', { status: 200, json: status });
    admin.answers.set('GET /admin/reshare', {
      status: 200,
      json: {
        epoch: 2, committee: {}, handovers: 2,
        proposals: [
          { ...base, proposalId: `0x${'01'.repeat(32)}`, kind: 'refresh', fromEpoch: 1, toEpoch: 2, status: 'done', phase: 'done', attempt: 0, durationMs: 900, failureReason: null },
          { ...base, proposalId: `0x${'02'.repeat(32)}`, status: 'running', phase: 'dealing', attempt: 1, failureReason: null },
          { ...base, proposalId: `0x${'03'.repeat(32)}`, status: 'failed', phase: 'agreement', attempt: 2, failureReason: 'no locked proposal', disqualified: { 4: 'bad sub-share' } },
        ],
      },
    });
    const r = await tkms('node', 'status', '--admin', url);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^epoch: {7}2 \(the committee served: 3 of 4\)$/m);
    assert.match(r.stdout, /^last change: refresh 0x01010101010101…, epoch 1 → 2, 900 ms$/m);
    assert.match(r.stdout, /^changes: {5}2 pending$/m);
    assert.match(r.stdout, new RegExp(`^  0x${'02'.repeat(32)} reshare, epoch 2 → 3: RUNNING \\(phase dealing, attempt 1, since 2026-01-01T00:00:00Z\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^  0x${'03'.repeat(32)} reshare, epoch 2 → 3: FAILED: no locked proposal$`, 'm'));
    assert.match(r.stdout, /disqualified: member 4 \(bad sub-share\)/);
    const json = JSON.parse((await tkms('node', 'status', '--admin', url, '--json')).stdout);
    assert.deepEqual(json.epoch, { epoch: 2, n: 4, t: 3 });
    assert.equal(json.reshare.proposals.length, 3);
    // A node without the reshare routes: its status alone.
    admin.answers.delete('GET /admin/reshare');
    const older = await tkms('node', 'status', '--admin', url);
    assert.equal(older.code, 0, older.stderr);
    assert.doesNotMatch(older.stdout, /changes:/);
  });
});
