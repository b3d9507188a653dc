import assert from 'node:assert/strict';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount, type TkmsClient } from '../../client/index.ts';
import { generateRsaKeyPair, type HandleDescriptor, type RsaKeyPair } from '../../core/index.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { getJson, waitFor } from '../support/processes.ts';
import { decode, encode, handleDescriptor, ownerPartial, partialMatches, postJson, range, ReshareNet } from '../support/reshare.ts';

/**
 * kill -9 of a member at each phase of a committee change (refreshes of a 3-of-5 committee, real
 * processes): while it deals, in the agreement before its vote is on disk, after its
 * vote, and after its commit (the certificate on disk). Restarted, the member serves either the old
 * epoch with the old share or the new one with the new share (its partial names its epoch and
 * verifies against that epoch's Y_i), never a mix; the committee ends at the new epoch and the
 * restarted member catches up and serves partials of it.
 */
const KEY = 'alpha';
const PROPOSER = 1;
/** The member killed in the agreement before its vote is on disk. */
const HELD = 3;
/** While this file (in HELD's directory) exists, HELD writes no vote (test fault, node/vote-hold.ts). */
const HOLD_FILE = 'hold-vote';

/**
 * `voted(v)`: v holds a vote file of this ceremony (files of earlier ones stay). `holdVote`: the
 * victim's vote write waits until it is killed, so the window between its agreement and its vote
 * on disk stays open however fast the ceremony runs.
 */
type KillPoint = { name: string; victim: number; holdVote?: true; ready: (victim: number, fromEpoch: number, voted: (v: number) => Promise<boolean>) => Promise<boolean> };

describe('reshare with real processes: kill -9 of a member at each phase', function () {
  this.timeout(300_000);
  let net: ReshareNet;
  let owner: ReturnType<typeof generateAccount>;
  let client: TkmsClient;
  let handle: string;
  let descriptor: HandleDescriptor;
  let p2p: P2pClient;
  let rsa: RsaKeyPair;
  let epoch = 0;

  const phaseOf = async (id: number): Promise<string | undefined> => (await getJson(`${net.cluster.node(id).adminUrl}/admin/status`)).json.ceremony?.phase;
  const files = async (id: number): Promise<string[]> => readdir(net.cluster.node(id).keystoreDir);
  const holdingVote = (id: number): boolean => net.cluster.node(id).process!.stdout.includes('the vote write waits until this file is removed');

  before(async () => {
    net = await ReshareNet.prepare({ prefix: 'tkms-reshare-crash', nodes: 5, n: 5, t: 3, phaseMs: 1_500, faults: { [HELD]: { holdVoteWhileExists: HOLD_FILE } } });
    await net.startWithKeys([KEY]);
    await net.startGateway(KEY);
    owner = generateAccount();
    client = await net.client(owner, 0);
    handle = (await client.encrypt(encode('survives every crash'), { keyId: KEY })).handle;
    descriptor = await handleDescriptor(net.gatewayUrl, handle);
    p2p = await P2pClient.start(net.committee(0));
    rsa = await generateRsaKeyPair();
  });

  after(async () => {
    await p2p?.stop();
    await net?.stop();
  });

  /** The member's partial names an epoch and verifies against that epoch's Y_i. */
  async function servesConsistently(id: number): Promise<number> {
    const part = await ownerPartial(p2p, id, owner, rsa, handle, descriptor);
    const key = await (await net.client(owner, 0)).getKey(KEY);
    const shares = key.epochs.get(part.epoch);
    assert.ok(shares !== undefined, `node ${id} answered at epoch ${part.epoch}, unknown to the client (at ${key.epoch})`);
    assert.ok(partialMatches(part, KEY, descriptor.K, shares.verificationShares.get(id)!), `node ${id}'s partial at epoch ${part.epoch} verifies against Y_${id} of that epoch`);
    return part.epoch;
  }

  const points: KillPoint[] = [
    // Its hello is out (phase dealing): a member killed before its hello reaches the dealers is certified absent (node/README).
    { name: 'while it deals', victim: 2, ready: async (v) => (await phaseOf(v)) === 'dealing' },
    // Its vote is made and held back from the disk (node/vote-hold.ts logs that it waits).
    { name: 'in the agreement, before its vote is on disk', victim: HELD, holdVote: true, ready: async (v, _e, voted) => holdingVote(v) && (await phaseOf(v)) === 'agreement' && !(await voted(v)) },
    { name: 'right after its vote is on disk', victim: 4, ready: async (v, _e, voted) => voted(v) },
    { name: 'right after its commit (the certificate on disk)', victim: 5, ready: async (v, e) => (await files(v)).includes(`handover.e${e}.json`) },
  ];

  // Killed right after its vote is on disk (case 3) FAILS today: the victim restarts at the old epoch,
  // resumes its ceremony and logs "ceremony failed ... no certificate after 5 attempts" 25 s later;
  // it never reaches the epoch the four others committed (waited 60 s). Committed members re-send
  // the certificate only while their ceremony lingers (LINGER_PHASES = 10 phases, node/reshare-run.ts)
  // and nothing else brings a member that is behind its committee the certificate. See the report.
  const SKIPPED = new Set<string>();
  for (const point of points) {
    (SKIPPED.has(point.name) ? it.skip : it)(`killed ${point.name}: restarts at the old or the new epoch, never a mix, and catches up`, async () => {
      // Where the committee is, whatever an earlier case left behind.
      const from = (await net.reshareList(PROPOSER)).epoch;
      for (let e = epoch + 1; e <= from; e++) await net.writeRefreshed(e);
      epoch = from;
      const victim = point.victim;
      // Vote files of earlier ceremonies stay: only a new one counts.
      const votesBefore = new Set((await files(victim)).filter((f) => f.startsWith('vote.')));
      const holdFile = join(net.cluster.node(victim).dir, HOLD_FILE);
      if (point.holdVote) await writeFile(holdFile, '');
      const voted = async (v: number) => (await files(v)).some((f) => f.startsWith('vote.') && !votesBefore.has(f));
      const res = await postJson(`${net.cluster.node(PROPOSER).adminUrl}/admin/refresh`, {});
      assert.equal(res.status, 202, JSON.stringify(res.json));
      const started = Date.now();
      await waitFor(`node ${victim} ${point.name}`, async () => ((await point.ready(victim, from, voted)) ? true : undefined), { timeoutMs: 30_000, intervalMs: 10 });
      await net.cluster.node(victim).process!.stop('SIGKILL');
      const killedAt = Date.now() - started;
      if (point.holdVote) {
        assert.equal(await voted(victim), false, 'the held vote never reached the disk');
        await rm(holdFile);
      }
      const others = range(1, 5).filter((id) => id !== victim);
      // The others finish without it (t = 3 of the 4 left deal and vote).
      await net.waitEpoch(others, from + 1);
      await net.writeRefreshed(from + 1);
      epoch = from + 1;

      await net.cluster.start(victim);
      const after = (await net.reshareList(victim)).epoch;
      assert.ok(after === from || after === from + 1, `node ${victim} restarted at epoch ${after}`);
      const served = await servesConsistently(victim);
      assert.ok(served === from || served === from + 1, `node ${victim} answers at epoch ${served}`);
      if (point.victim === 5) assert.equal(served, from + 1, 'a committed member never goes back');

      await net.waitEpoch([victim], from + 1, 60_000);
      assert.equal(await servesConsistently(victim), from + 1);
      const key = await (await net.client(owner, 0)).getKey(KEY);
      assert.equal(key.epoch, epoch);
      assert.equal(decode((await client.decrypt(handle, { avoidNodes: others.slice(0, 2) })).plaintext), 'survives every crash');
      console.log(`      killed at ${killedAt} ms (${point.name}); restarted at epoch ${after}, serving ${served}; caught up to ${epoch} after ${Date.now() - started} ms`);
    });
  }
});
