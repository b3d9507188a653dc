import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTkmsError } from '../../core/errors.ts';
import { SignValueLedger } from '../../node/sign-value-ledger.ts';
import { expectRefusal } from '../support/refusal.ts';

/** 2026-01-05 00:00:00 UTC. */
const DAY0 = 1767571200;
const DAY = 86_400;
const txid = (n: number): string => n.toString(16).padStart(64, '0');
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CRASH_CHILD = fileURLToPath(new URL('../support/value-ledger-crash-child.ts', import.meta.url));
const triangle = (k: number): bigint => (BigInt(k) * BigInt(k + 1)) / 2n;

/** Runs the crash child from transaction `from` until it has reported `atLeast` more records, then SIGKILLs it; returns the last it reported. */
async function recordUntilKilled(path: string, now: number, from: number, atLeast: number): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', CRASH_CHILD], {
    cwd: REPO_ROOT,
    env: { ...process.env, TKMS_LEDGER_PATH: path, TKMS_LEDGER_NOW: String(now), TKMS_LEDGER_FROM: String(from) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let last = from - 1;
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) last = Number(line.replace('recorded ', ''));
      if (last >= from - 1 + atLeast) {
        // Killed mid-stream: a record may be half written, or written and not yet reported.
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.once('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`crash child exited (${code ?? signal}): ${stderr}`))));
  });
  await exited;
  return last;
}

describe('sign value ledger (node/sign-value-ledger.ts)', () => {
  let dir: string;
  let path: string;
  const open: SignValueLedger[] = [];
  const ledgerAt = async (now: number): Promise<SignValueLedger> => {
    const ledger = await SignValueLedger.open(path, now);
    open.push(ledger);
    return ledger;
  };
  const fileLines = async (): Promise<unknown[]> =>
    (await readFile(path, 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as unknown);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tkms-value-ledger-'));
    path = join(dir, 'state', 'sign-value.log');
  });
  afterEach(async () => {
    for (const ledger of open.splice(0)) await ledger.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('a restart keeps today\'s totals, per key', async () => {
    const ledger = await ledgerAt(DAY0 + 100);
    assert.equal(ledger.spentToday('warm', DAY0 + 100), 0n);
    await ledger.record('warm', txid(1), 40_000n, DAY0 + 100);
    await ledger.record('warm', txid(2), 25_000n, DAY0 + 200);
    await ledger.record('cold', txid(3), 7n, DAY0 + 300);
    assert.equal(ledger.spentToday('warm', DAY0 + 400), 65_000n);
    // No close: what record resolved for is on disk already (a kill -9 here loses nothing).
    const again = await ledgerAt(DAY0 + 500);
    assert.equal(again.spentToday('warm', DAY0 + 500), 65_000n);
    assert.equal(again.spentToday('cold', DAY0 + 500), 7n);
    assert.equal(again.spentToday('other', DAY0 + 500), 0n);
    await again.record('warm', txid(4), 1n, DAY0 + 600);
    const third = await ledgerAt(DAY0 + 700);
    assert.equal(third.spentToday('warm', DAY0 + 700), 65_001n);
  });

  it('kill -9 while recording, then restart: every reported transaction is counted, none twice', async function () {
    this.timeout(120_000);
    let from = 1;
    for (let round = 0; round < 4; round++) {
      const reported = await recordUntilKilled(path, DAY0 + 60, from, 5 + round * 7);
      const ledger = await ledgerAt(DAY0 + 61);
      const spent = ledger.spentToday('warm', DAY0 + 61);
      await ledger.close();
      // Records the parent had not read yet may be on disk too: the total is that of transactions 1..k
      // for some k ≥ the last reported, each counted once (a transaction counted twice, or a gap, breaks the sum).
      const k = Math.round((Math.sqrt(8 * Number(spent) + 1) - 1) / 2);
      assert.equal(spent, triangle(k), `round ${round}: spent ${spent} is not 1 + … + k`);
      assert.ok(k >= reported, `round ${round}: ${reported} reported, only 1..${k} counted`);
      // The next run records from the last reported one: those already counted count once.
      from = reported;
    }
  });

  it('counts a transaction once per key and day, however often it is recorded (and across a restart)', async () => {
    const ledger = await ledgerAt(DAY0);
    await Promise.all([ledger.record('warm', txid(1), 500n, DAY0), ledger.record('warm', txid(1), 500n, DAY0 + 1)]);
    await ledger.record('warm', txid(1), 500n, DAY0 + 2);
    assert.equal(ledger.spentToday('warm', DAY0 + 3), 500n);
    assert.equal((await fileLines()).length, 1, 'one line for one transaction');
    // The same transaction under another key is another key's spending.
    await ledger.record('cold', txid(1), 500n, DAY0 + 4);
    assert.equal(ledger.spentToday('cold', DAY0 + 4), 500n);
    // What a retry of txid 1 is checked against: the day's spending without it.
    await ledger.record('warm', txid(2), 300n, DAY0 + 5);
    assert.equal(ledger.spentToday('warm', DAY0 + 5, txid(1)), 300n);
    assert.equal(ledger.spentToday('warm', DAY0 + 5, txid(9)), 800n);
    // A line written twice (a rewrite racing an append) counts once after a restart too.
    await appendFile(path, `${JSON.stringify([Math.floor(DAY0 / DAY), 'warm', txid(2), '300'])}\n`);
    const again = await ledgerAt(DAY0 + 6);
    assert.equal(again.spentToday('warm', DAY0 + 6), 800n);
    await again.record('warm', txid(1), 500n, DAY0 + 7);
    assert.equal(again.spentToday('warm', DAY0 + 7), 800n);
  });

  it('a new UTC day starts at 0; past days are dropped from memory and, atomically, from the file', async () => {
    const ledger = await ledgerAt(DAY0 + DAY - 10);
    await ledger.record('warm', txid(1), 900n, DAY0 + DAY - 10);
    assert.equal(ledger.spentToday('warm', DAY0 + DAY - 1), 900n);
    assert.equal(ledger.spentToday('warm', DAY0 + DAY), 0n);
    await ledger.record('warm', txid(2), 5n, DAY0 + DAY + 1);
    assert.equal(ledger.spentToday('warm', DAY0 + DAY + 2), 5n);
    await ledger.close();
    // The day change compacted the file behind the append: only today's line is left.
    assert.deepEqual(await fileLines(), [[Math.floor(DAY0 / DAY) + 1, 'warm', txid(2), '5']]);
    // Opened on a later day: yesterday's lines go at open.
    const later = await ledgerAt(DAY0 + 2 * DAY + 5);
    assert.equal(later.spentToday('warm', DAY0 + 2 * DAY + 5), 0n);
    assert.deepEqual(await fileLines(), []);
  });

  it('the day never goes back: a clock stepped back across midnight keeps counting the later day', async () => {
    const ledger = await ledgerAt(DAY0 + DAY + 10);
    await ledger.record('warm', txid(1), 70n, DAY0 + DAY + 10);
    assert.equal(ledger.spentToday('warm', DAY0 + DAY - 30), 70n);
    const again = await ledgerAt(DAY0 + DAY - 30);
    assert.equal(again.spentToday('warm', DAY0 + DAY - 30), 70n);
    // A line from far in the future (a clock that was wrong) does not freeze the count.
    await writeFile(path, `${JSON.stringify([Math.floor(DAY0 / DAY) + 400, 'warm', txid(5), '99'])}\n`);
    const fixed = await ledgerAt(DAY0 + 100);
    assert.equal(fixed.spentToday('warm', DAY0 + 100), 0n);
  });

  it('a torn last line is dropped and the lines before it kept; a line of another shape is dropped', async () => {
    const day = Math.floor(DAY0 / DAY);
    const good = [
      [day, 'warm', txid(1), '100'],
      [day, 'warm', txid(2), '20'],
      ['x', 'warm', txid(3), '1'],
      [day, 'warm', 'not-a-txid', '1'],
      [day, 'warm', txid(4), '-1'],
      [day, 'warm', txid(6), '01'],
      { day, keyId: 'warm' },
    ];
    const torn = JSON.stringify([day, 'warm', txid(7), '5000']).slice(0, 30);
    await SignValueLedger.open(path, DAY0).then((l) => l.close());
    await writeFile(path, `${good.map((l) => JSON.stringify(l)).join('\n')}\n${torn}`);
    const ledger = await ledgerAt(DAY0 + 10);
    assert.equal(ledger.spentToday('warm', DAY0 + 10), 120n);
    // The dropped lines are gone from the file, and a new line appends cleanly after the kept ones.
    await ledger.record('warm', txid(8), 3n, DAY0 + 11);
    assert.equal((await fileLines()).length, 3);
    const again = await ledgerAt(DAY0 + 12);
    assert.equal(again.spentToday('warm', DAY0 + 12), 123n);
  });

  it('with a cap, check and count are one step: two transactions at once cannot both pass on one total', async () => {
    const ledger = await ledgerAt(DAY0);
    await ledger.record('warm', txid(1), 60n, DAY0, 100n);
    const results = await Promise.allSettled([ledger.record('warm', txid(2), 30n, DAY0, 100n), ledger.record('warm', txid(3), 30n, DAY0, 100n)]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected']);
    const reason = (results[1] as PromiseRejectedResult).reason as unknown;
    assert.ok(isTkmsError(reason, 'policy_value_cap'));
    assert.match(reason.message, /caps what it sends at 100 sats per UTC day; it sent 90 today and this transaction sends 30/);
    // Reaching the cap exactly is allowed; a transaction already counted is not charged again.
    await ledger.record('warm', txid(4), 10n, DAY0, 100n);
    await ledger.record('warm', txid(2), 30n, DAY0, 100n);
    await expectRefusal(ledger.record('warm', txid(5), 1n, DAY0, 100n), 'policy_value_cap');
    assert.equal(ledger.spentToday('warm', DAY0), 100n);
  });

  it('a transaction that sends nothing writes nothing; bad arguments are refused', async () => {
    const ledger = await ledgerAt(DAY0);
    await ledger.record('warm', txid(1), 0n, DAY0);
    assert.deepEqual(await fileLines(), []);
    await expectRefusal(ledger.record('warm', 'ab'.repeat(31), 1n, DAY0), 'internal');
    await expectRefusal(ledger.record('warm', txid(0xab).toUpperCase(), 1n, DAY0), 'internal');
    await expectRefusal(ledger.record('warm', txid(2), -1n, DAY0), 'internal');
    await expectRefusal(ledger.record('', txid(2), 1n, DAY0), 'internal');
    assert.equal(ledger.spentToday('warm', DAY0), 0n);
  });
});
