import '../../core/polyfills.ts';
import { SignValueLedger } from '../../node/sign-value-ledger.ts';

/**
 * Crash-test writer: records transactions $TKMS_LEDGER_FROM, +1, +2, … (transaction i of value i
 * sats) for key "warm" in the ledger at $TKMS_LEDGER_PATH, at the fixed time $TKMS_LEDGER_NOW,
 * printing "recorded i" once each record has resolved (is fsynced), until the parent SIGKILLs it.
 */
const MAX_RECORDS = 100_000;

async function main(): Promise<void> {
  const path = process.env['TKMS_LEDGER_PATH'];
  const now = Number(process.env['TKMS_LEDGER_NOW']);
  if (!path || !Number.isSafeInteger(now)) throw new Error('TKMS_LEDGER_PATH and TKMS_LEDGER_NOW are required');
  const ledger = await SignValueLedger.open(path, now);
  const start = Number(process.env['TKMS_LEDGER_FROM'] ?? '1');
  for (let i = start; i < start + MAX_RECORDS; i++) {
    await ledger.record('warm', i.toString(16).padStart(64, '0'), BigInt(i), now);
    process.stdout.write(`recorded ${i}\n`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`value-ledger-crash-child: ${err instanceof Error ? `${err.name}: ${err.message}` : 'error'}\n`);
    process.exit(1);
  },
);
