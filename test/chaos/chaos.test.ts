import assert from 'node:assert/strict';
import type { Account } from '../../client/index.ts';
import { FAULT_KINDS, formatChaosReport, runChaos, type ChaosReport } from './driver.ts';
import { bytesSecret, findSecrets, nodeSecrets, readLogFiles, textSecret } from '../support/log-secrets.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * The shortened chaos run of `npm run chaos` (scripts/chaos.ts): a 4-of-7 devnet with a TCP
 * proxy on every link, a steady decrypt load, and nodes killed, restarted, paused and
 * partitioned at random — never more than n − t = 3 at once. Everything, devnet start and stop
 * included, fits in 60 s: the load window is what is left after the start, minus a reserve for
 * recovery and stopping.
 */
const BUDGET_MS = 60_000;

describe('chaos (short): 4-of-7 devnet, decrypt load, kill / restart / pause / partition', function () {
  let dir: string | undefined;
  let report: ChaosReport | undefined;
  const lines: string[] = [];
  let secrets: { accounts: Account[]; plaintexts: string[] } | undefined;

  after(async function () {
    this.timeout(60_000);
    await removeDir(dir);
  });

  it('every authorized decrypt succeeds, every unauthorized one fails, and every node comes back', async function () {
    this.timeout(BUDGET_MS);
    const started = Date.now();
    dir = await makeTempDir('tkms-chaos');
    report = await runChaos({
      dir,
      n: 7,
      t: 4,
      durationMs: 20_000,
      // The mocha timeout is the hard limit; leave 3 s of it for the log check below.
      deadline: started + BUDGET_MS - 3_000,
      concurrency: 2,
      faultMs: [800, 2_500],
      gapMs: [200, 1_000],
      handles: 6,
      log: (line) => lines.push(line),
      onSecrets: (s) => {
        secrets = s;
      },
    });
    const wall = Date.now() - started;
    console.log(`${formatChaosReport(report).replace(/^/gm, '      ')}\n      wall time ${(wall / 1000).toFixed(1)} s (devnet start, window, recovery, stop)`);
    const context = `\n${lines.join('\n')}\nfailures: ${JSON.stringify(report.decrypts.failures, null, 1)}`;
    assert.equal(report.decrypts.failed, 0, `decrypts failed:${context}`);
    assert.ok(report.decrypts.attempted >= 10, `only ${report.decrypts.attempted} decrypts in the window${context}`);
    assert.equal(report.unauthorized.leaked, 0, 'an unauthorized decrypt succeeded');
    assert.equal(report.unauthorized.refused, report.unauthorized.attempted);
    assert.ok(report.unauthorized.attempted > 0);
    for (const code of Object.keys(report.unauthorized.codes)) assert.ok(['unauthorized', 'revoked'].includes(code), `unauthorized attempt refused with ${code}`);
    assert.ok(report.faults.maxConcurrent <= 3, 'more than n − t nodes faulty at once');
    assert.deepEqual(report.faults.errors, [], 'a fault could not be injected or recovered from');
    for (const kind of FAULT_KINDS) assert.ok(report.faults.byKind[kind] > 0, `no ${kind} fault injected${context}`);
    assert.ok(report.isolation.checked > 0 && report.isolation.confirmed === report.isolation.checked, `partitions not isolating: ${JSON.stringify(report.isolation)}${context}`);
    assert.ok(report.recovered, `not every node came back${context}`);
    assert.deepEqual(report.unexpectedExits, []);
    assert.ok(report.finalDecryptOk);

    // Every log of the run (7 nodes, gateway, killed and restarted processes appended) is free of secrets.
    const logs = await readLogFiles(dir);
    const { needles, shares } = await nodeSecrets(dir);
    assert.equal(shares, 7, 'every node holds its share');
    for (const account of secrets!.accounts) needles.push(bytesSecret(`account ${account.address}`, account.secretKey));
    for (const text of secrets!.plaintexts) needles.push(textSecret('plaintext', text));
    assert.deepEqual(findSecrets(logs, needles), []);
  });
});
