import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Ed25519PrivateKey } from '@libp2p/interface';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { TkmsError } from '../core/index.ts';

/**
 * The node's persistent libp2p identity. The file holds the protobuf-encoded Ed25519
 * private key (base64) and the peer id it yields, so a swapped file is noticed.
 */
export interface NodeIdentity {
  privateKey: Ed25519PrivateKey;
  peerId: string;
}

const IDENTITY_VERSION = 1;

/** Creates a new identity file with mode 0600; refuses to replace an existing one. */
export async function createIdentityFile(path: string): Promise<NodeIdentity> {
  const existing = await stat(path).catch(() => undefined);
  if (existing !== undefined) {
    throw new TkmsError('conflict', `identity file ${path} already exists; refusing to overwrite it`);
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const privateKey = await generateKeyPair('Ed25519');
  const peerId = peerIdFromPrivateKey(privateKey).toString();
  const body = JSON.stringify({
    version: IDENTITY_VERSION,
    type: 'Ed25519',
    peerId,
    privateKey: Buffer.from(privateKeyToProtobuf(privateKey)).toString('base64'),
  });
  // 'wx' fails if the file appeared meanwhile: never overwrite a key.
  const file = await open(path, 'wx', 0o600).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EEXIST') throw new TkmsError('conflict', `identity file ${path} already exists; refusing to overwrite it`);
    throw new TkmsError('internal', `cannot create identity file ${path}: ${e.code ?? 'error'}`);
  });
  try {
    await file.writeFile(`${body}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  return { privateKey, peerId };
}

/** Loads the identity at `path`, creating it first if there is none (a gateway's first start). */
export async function loadOrCreateIdentityFile(path: string): Promise<{ identity: NodeIdentity; created: boolean }> {
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  if (exists) return { identity: await loadIdentityFile(path), created: false };
  return { identity: await createIdentityFile(path), created: true };
}

export async function loadIdentityFile(path: string): Promise<NodeIdentity> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TkmsError('bad_request', `identity file ${path} does not exist; run "tkms node init" first`);
    throw new TkmsError('internal', `cannot read identity file ${path}: ${code ?? 'error'}`);
  }
  const corrupt = (why: string): never => {
    throw new TkmsError('bad_request', `identity file ${path} is not valid: ${why}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    corrupt('not JSON');
  }
  if (typeof json !== 'object' || json === null) corrupt('not a JSON object');
  const obj = json as Record<string, unknown>;
  if (obj.version !== IDENTITY_VERSION || obj.type !== 'Ed25519') corrupt('unsupported version or key type');
  if (typeof obj.privateKey !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(obj.privateKey)) corrupt('privateKey must be base64');
  let key;
  try {
    key = privateKeyFromProtobuf(Buffer.from(obj.privateKey as string, 'base64'));
  } catch {
    corrupt('privateKey does not decode');
  }
  if (key === undefined || key.type !== 'Ed25519') return corrupt('privateKey is not an Ed25519 key');
  const peerId = peerIdFromPrivateKey(key).toString();
  if (obj.peerId !== peerId) corrupt('peerId does not match the private key');
  return { privateKey: key, peerId };
}


function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

/** Imports a raw 32-byte Ed25519 public key into node:crypto. */
export function ed25519PublicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: base64url(raw) }, format: 'jwk' });
}

