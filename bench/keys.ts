import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount } from '../client/account.ts';
import { KeyBook } from '../core/keys/key-book.ts';
import { signKeyChange, ZERO_DIGEST, type KeyChange } from '../core/keys/key-change.ts';
import { requireUsable } from '../core/keys/key-model.ts';
import { evaluateKeyPolicy, parseStoredKeyPolicy, type KeyPolicy } from '../core/keys/policy.ts';
import { KeyUsageCounters } from '../node/key-usage.ts';
import { KeyChangeLog } from '../storage/key-change-log.ts';

/**
 * Managed keys, in one process:
 *  - what the state and policy checks add to each partial (the row printed beside the request path):
 *    find the key by the handle's key id, check its state and version, evaluate a typical policy and
 *    charge the daily count, as node/partial.ts does;
 *  - creating derived keys: signed create changes (made beforehand) taken by a real key change log
 *    (every check, signatures included, and an fsync per change), as each node and the gateway do.
 */
const DEPLOYMENT = { committeeId: 'bench' };

function book(): KeyBook {
  return new KeyBook({
    deployment: DEPLOYMENT,
    creation: { creators: 'open', perCreatorQuota: 1_000_000 },
    allowShortDeletionWindow: false,
    parsePolicy: parseStoredKeyPolicy,
    maxKeys: 1_000_000,
    maxChangesPerKey: 10_000,
    maxBytesPerKey: 4 * 1024 * 1024,
    maxTotalBytes: 1024 * 1024 * 1024,
  });
}

function creates(count: number, admin: ReturnType<typeof generateAccount>, policy: object = {}): KeyChange[] {
  const now = Math.floor(Date.now() / 1000);
  return Array.from({ length: count }, (_, i) =>
    signKeyChange(
      admin.secretKey,
      {
        keyId: `user-${i}`,
        sequence: 1,
        previous: ZERO_DIGEST,
        action: 'create',
        body: JSON.stringify({ origin: { type: 'derived', root: 'root', path: `users/${i}` }, admins: [admin.address], policy }),
        issuedAt: now,
        admin: admin.addressBytes,
      },
      DEPLOYMENT,
    ),
  );
}

export interface KeyCheckResult {
  checks: number;
  /** Microseconds per partial: lookup, state, policy, daily count. */
  usPerCheck: number;
  /** The same with the default policy ({}): lookup and state only. */
  usPerStateCheck: number;
}

export function benchKeyChecks(opts: { checks: number }): KeyCheckResult {
  const admin = generateAccount();
  const requesters = Array.from({ length: 10 }, () => generateAccount());
  const policy = {
    operations: ['decrypt'],
    allowedRequesters: requesters.map((r) => r.address),
    timeWindows: [{ days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], startMinute: 0, endMinute: 1440 }],
    dailyLimitPerRequester: 1_000_000_000,
  };
  const b = book();
  const [withPolicy] = creates(1, admin, policy);
  b.commit(withPolicy!, b.check(withPolicy!));
  const plain = signKeyChange(admin.secretKey, { ...withPolicy!, keyId: 'plain', body: JSON.stringify({ origin: { type: 'derived', root: 'root', path: 'plain' }, admins: [admin.address] }) }, DEPLOYMENT);
  b.commit(plain, b.check(plain));
  const usage = new KeyUsageCounters();
  const requester = requesters[9]!.addressBytes;
  const run = (materialId: string, n: number): number => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const nowSeconds = Math.floor(Date.now() / 1000);
      const managed = b.byMaterial(materialId)!;
      requireUsable(managed.key, managed.version, nowSeconds);
      const p = managed.key.policy as KeyPolicy;
      evaluateKeyPolicy(p, { keyId: managed.key.keyId, operation: 'decrypt', requester, grantSource: 'owner', nowSeconds, usedToday: p.dailyLimitPerRequester === undefined ? 0 : usage.usedToday(managed.key.keyId, requester, nowSeconds) });
      if (p.dailyLimitPerRequester !== undefined) usage.charge(managed.key.keyId, requester, nowSeconds);
    }
    return Number(process.hrtime.bigint() - started) / 1000 / n;
  };
  run('user-0', Math.min(10_000, opts.checks));
  run('plain', Math.min(10_000, opts.checks));
  const usPerCheck = run('user-0', opts.checks);
  const usPerStateCheck = run('plain', opts.checks);
  return { checks: opts.checks, usPerCheck: round(usPerCheck, 2), usPerStateCheck: round(usPerStateCheck, 2) };
}

export interface DerivedCreationResult {
  keys: number;
  /** Wall time for the log to take every create (checks, signature, fsync each). */
  seconds: number;
  keysPerSecond: number;
  /** The same creates taken by a book alone (no disk): what the checks cost. */
  checksOnlySeconds: number;
  /** Reopening the log: every change replayed and its signature checked again. */
  reopenSeconds: number;
}

export async function benchDerivedKeyCreation(opts: { keys: number }): Promise<DerivedCreationResult> {
  const admin = generateAccount();
  const changes = creates(opts.keys, admin);
  const dir = await mkdtemp(join(tmpdir(), 'tkms-bench-keys-'));
  try {
    const memory = book();
    let started = performance.now();
    for (const c of changes) memory.commit(c, memory.check(c));
    const checksOnlySeconds = (performance.now() - started) / 1000;

    const { registry } = await KeyChangeLog.open(join(dir, 'key-changes.log'), book());
    started = performance.now();
    await Promise.all(changes.map((c) => registry.submit(c)));
    const seconds = (performance.now() - started) / 1000;
    await registry.close();

    started = performance.now();
    const reopened = await KeyChangeLog.open(join(dir, 'key-changes.log'), book());
    const reopenSeconds = (performance.now() - started) / 1000;
    if (reopened.registry.book.size !== opts.keys) throw new Error(`reopened ${reopened.registry.book.size} keys, expected ${opts.keys}`);
    await reopened.registry.close();
    return { keys: opts.keys, seconds: round(seconds, 2), keysPerSecond: Math.round(opts.keys / seconds), checksOnlySeconds: round(checksOnlySeconds, 2), reopenSeconds: round(reopenSeconds, 2) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function round(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const keys = Number(process.argv[2] ?? 10_000);
  console.log(benchKeyChecks({ checks: 200_000 }));
  console.log(await benchDerivedKeyCreation({ keys }));
}
