import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys';
import { Keystore } from '../../node/keystore.ts';

/**
 * "No secret reaches a log": after a test run, every log the run produced is searched for every
 * secret the run can know of — the keystore password, each node's key shares (read back from the
 * keystores with that password, so the real values are searched), each node's libp2p identity
 * key, the test accounts' secret keys and plaintexts — in the encodings a careless log line would
 * use (hex with and without 0x or leading zeros, decimal, base64, base64url).
 */
export interface SecretNeedle {
  label: string;
  /** Matched case-insensitively when `hex`, else exactly. */
  values: { text: string; hex: boolean }[];
}

export interface LogText {
  name: string;
  text: string;
}

function bytesNeedles(bytes: Uint8Array): SecretNeedle['values'] {
  const b = Buffer.from(bytes);
  return [
    { text: b.toString('hex'), hex: true },
    { text: b.toString('base64').replace(/=+$/, ''), hex: false },
    { text: b.toString('base64url'), hex: false },
  ];
}

export function bytesSecret(label: string, bytes: Uint8Array): SecretNeedle {
  return { label, values: bytesNeedles(bytes) };
}

export function textSecret(label: string, text: string): SecretNeedle {
  return { label, values: [{ text, hex: false }, { text: Buffer.from(text).toString('base64').replace(/=+$/, ''), hex: false }] };
}

/** A scalar (share) as 32 big-endian bytes, as minimal hex and as decimal. */
export function scalarSecret(label: string, value: bigint): SecretNeedle {
  const hex32 = value.toString(16).padStart(64, '0');
  return {
    label,
    values: [...bytesNeedles(Buffer.from(hex32, 'hex')), { text: value.toString(16), hex: true }, { text: value.toString(10), hex: false }],
  };
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

/** Every `*.log` file under `root` (process logs, and the nodes' state logs, which must not hold secrets either). */
export async function readLogFiles(root: string): Promise<LogText[]> {
  const out: LogText[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && entry.name.endsWith('.log')) out.push({ name: path, text: await readFile(path, 'utf8') });
    }
  };
  await walk(root);
  return out;
}

/**
 * The secrets of the nodes laid out under `root` (devnet or NodeCluster: `node<i>/` with
 * `identity.json` and `keystore/`): identity keys, every share the keystores hold, the gateway's
 * identity and every revocation-bucket key.
 * `password` defaults to the devnet's `keystore-password` file. Call after the nodes stopped.
 */
export async function nodeSecrets(root: string, password?: string): Promise<{ needles: SecretNeedle[]; shares: number }> {
  const needles: SecretNeedle[] = [];
  const pw = password ?? (await readFile(join(root, 'keystore-password'), 'utf8')).replace(/\r?\n$/, '');
  needles.push(textSecret('keystore password', pw));
  let shares = 0;
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isDirectory() || !/^node\d+$/.test(entry.name)) continue;
    const dir = join(root, entry.name);
    await pushIdentity(needles, entry.name, join(dir, 'identity.json'));
    const keystoreDir = join(dir, 'keystore');
    if (!(await exists(keystoreDir))) continue;
    const keystore = await Keystore.open(keystoreDir, pw);
    try {
      for (const key of await keystore.loadAll()) {
        needles.push(scalarSecret(`${entry.name} share of ${key.keyId}`, key.share));
        shares++;
      }
    } finally {
      keystore.close();
    }
  }
  // The gateway's libp2p identity, and every store's revocation-bucket key (nodes' and gateway's).
  await pushIdentity(needles, 'gateway', join(root, 'gateway', 'identity.json'));
  for (const name of await readdir(root, { recursive: true })) {
    if (name.endsWith('.bucket-key')) needles.push(bytesSecret(`bucket key ${name}`, new Uint8Array(await readFile(join(root, name)))));
  }
  return { needles, shares };
}

async function pushIdentity(needles: SecretNeedle[], owner: string, path: string): Promise<void> {
  if (!(await exists(path))) return;
  const identity = JSON.parse(await readFile(path, 'utf8')) as { privateKey: string };
  needles.push({ label: `${owner} identity file key`, values: [{ text: identity.privateKey.replace(/=+$/, ''), hex: false }] });
  const raw = privateKeyFromProtobuf(Buffer.from(identity.privateKey, 'base64')).raw;
  needles.push(bytesSecret(`${owner} identity seed`, raw.subarray(0, 32)));
}

/** Returns one line per secret found ("<label> in <log>"); empty when the logs are clean. */
export function findSecrets(logs: LogText[], needles: SecretNeedle[]): string[] {
  const found: string[] = [];
  for (const log of logs) {
    const lower = log.text.toLowerCase();
    for (const needle of needles) {
      for (const v of needle.values) {
        if (v.text.length < 8) continue;
        const hit = v.hex ? lower.includes(v.text.toLowerCase()) : log.text.includes(v.text);
        if (hit) {
          found.push(`${needle.label} in ${log.name}`);
          break;
        }
      }
    }
  }
  return found;
}
