import { assertKeyId, isTkmsError, TkmsError } from '../core/index.ts';
import { materialKeyId, parseMaterialKeyId } from '../core/keys/key-model.ts';
import type { GatewayHttp } from './gateway-http.ts';
import { parseKeyView, usableVersion } from './key-view.ts';

/**
 * Which key material a handle is made for and opened with. A key outside management (a bare DKG
 * result) is its own. A managed key's handles name the material id of one version; a derived
 * key's material is its root's plus a public tweak (core/keys/derive.ts), so the client verifies
 * the ROOT's DKG result and computes the rest itself.
 */
export interface KeyDerivation {
  /** The DKG key (material id) the derived key hangs from: the one whose result is verified. */
  root: string;
  path: string;
  version: number;
}

export interface KeyTarget {
  /** What the handle names (a material id). */
  keyId: string;
  /** The key whose DKG result is verified: keyId itself, or a derived key's root. */
  verifiedKeyId: string;
  derivation?: KeyDerivation;
}

function target(keyId: string, derivation: KeyDerivation | undefined): KeyTarget {
  return derivation === undefined ? { keyId, verifiedKeyId: keyId } : { keyId, verifiedKeyId: derivation.root, derivation };
}

/**
 * The material a new handle is made for. A managed key (named by id or alias) must be Enabled, and
 * handles name its current version, so they keep decrypting with that version after a rotation.
 * Asked afresh for every encryption: a key disabled a moment ago is refused here, not only by the
 * nodes later.
 */
export async function encryptionTarget(http: GatewayHttp, keyIdOrAlias: string): Promise<KeyTarget> {
  const { json } = await http.request<Record<string, unknown>>('GET', `/v1/keys/${encodeURIComponent(keyIdOrAlias)}`);
  if (json.managed === undefined) {
    assertKeyId(keyIdOrAlias);
    return target(keyIdOrAlias, undefined);
  }
  const view = parseKeyView(json.managed);
  if (view.usage !== 'ENCRYPT_DECRYPT') throw new TkmsError('key_usage_mismatch', `key ${view.keyId} is a ${view.usage} key: it does not encrypt`);
  const { version } = usableVersion(view, Math.floor(Date.now() / 1000));
  const keyId = materialKeyId(view.keyId, version);
  return target(keyId, view.origin.type === 'derived' ? { root: view.origin.root, path: view.origin.path, version } : undefined);
}

/**
 * The material a handle's key id names, for decrypting and granting: a derived key's root, path and
 * version, or the key id itself. A key's origin never changes, so one answer per material id is
 * kept (`known`); the state is the nodes' to enforce.
 */
export async function materialTarget(http: GatewayHttp, materialId: string, known: Map<string, KeyTarget>): Promise<KeyTarget> {
  const cached = known.get(materialId);
  if (cached !== undefined) return cached;
  const { keyId, version } = parseMaterialKeyId(materialId);
  let derivation: KeyDerivation | undefined;
  try {
    const { json } = await http.request<Record<string, unknown>>('GET', `/v1/keys/${encodeURIComponent(keyId)}`);
    if (json.managed !== undefined) {
      const view = parseKeyView(json.managed);
      if (view.keyId === keyId && view.origin.type === 'derived') derivation = { root: view.origin.root, path: view.origin.path, version };
    }
  } catch (e) {
    // `<id>.v<n>` may be a DKG key of that very name, outside management: then nothing is managed as `<id>`.
    if (!isTkmsError(e, 'unknown_key') || keyId === materialId) throw e;
  }
  const found = target(materialId, derivation);
  known.set(materialId, found);
  return found;
}
