import { decodeHex, encodeHex } from '../../core/bytes.ts';
import { addressFromSecretKey } from '../../core/eip712.ts';
import { KeyBook, type KeyBookOptions } from '../../core/keys/key-book.ts';
import { signKeyChange, ZERO_DIGEST, type KeyAction, type KeyChange } from '../../core/keys/key-change.ts';
import type { AppliedChange } from '../../core/keys/key-apply.ts';

/** Signed key changes for the managed-key tests: Hardhat's well-known accounts, the devnet deployment. */
export const DEPLOYMENT = { committeeId: 'devnet' };
/** 2026-01-01T00:00:00Z. */
export const T0 = 1_767_225_600;
export const DAY = 86_400;

export interface TestAccount {
  secret: Uint8Array;
  address: string;
}

const HARDHAT_SECRETS = [
  'ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  '59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  '5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
  '7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
];

export const ACCOUNTS: TestAccount[] = HARDHAT_SECRETS.map((hex) => {
  const secret = decodeHex(hex, { length: 32 });
  return { secret, address: encodeHex(addressFromSecretKey(secret)) };
});
export const [ALICE, BOB, CAROL, DAVE] = ACCOUNTS as [TestAccount, TestAccount, TestAccount, TestAccount];

export function newBook(options: Partial<KeyBookOptions> = {}): KeyBook {
  return new KeyBook({
    deployment: DEPLOYMENT,
    creation: { creators: 'open', perCreatorQuota: 1000 },
    allowShortDeletionWindow: false,
    parsePolicy: (p) => p,
    maxKeys: 10_000,
    maxChangesPerKey: 10_000,
    maxBytesPerKey: 4 * 1024 * 1024,
    maxTotalBytes: 64 * 1024 * 1024,
    ...options,
  });
}

export interface ChangeOptions {
  /** Who signs (default: `admin`). */
  signer?: TestAccount;
  /** The account named as admin (default ALICE). */
  admin?: TestAccount;
  issuedAt?: number;
  sequence?: number;
  previous?: Uint8Array;
  deployment?: { committeeId: string };
}

/** The next change to `keyId` in `book` (sequence and previous from the book unless given), signed. */
export function nextChange(book: KeyBook, keyId: string, action: KeyAction, body: unknown, opts: ChangeOptions = {}): KeyChange {
  const key = book.get(keyId);
  const admin = opts.admin ?? ALICE;
  const signer = opts.signer ?? admin;
  return signKeyChange(
    signer.secret,
    {
      keyId,
      sequence: opts.sequence ?? (key?.sequence ?? 0) + 1,
      previous: opts.previous ?? (key === undefined ? ZERO_DIGEST : decodeHex(key.head, { length: 32 })),
      action,
      body: typeof body === 'string' ? body : JSON.stringify(body),
      issuedAt: opts.issuedAt ?? T0,
      admin: decodeHex(admin.address, { length: 20 }),
    },
    opts.deployment ?? DEPLOYMENT,
  );
}

/** Checks and takes a change, as a node does once it is durable. */
export function take(book: KeyBook, change: KeyChange): AppliedChange {
  const applied = book.check(change);
  book.commit(change, applied);
  return applied;
}

/** Creates a DKG key (or the origin given) administered by `admins` (default ALICE). */
export function createKey(book: KeyBook, keyId: string, body: Record<string, unknown> = {}, opts: ChangeOptions = {}): AppliedChange {
  return take(book, nextChange(book, keyId, 'create', { origin: { type: 'dkg' }, admins: [ALICE.address], ...body }, opts));
}
