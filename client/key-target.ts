import { assertKeyId, TkmsError } from '../core/index.ts';
import { materialKeyId } from '../core/keys/key-model.ts';
import type { GatewayHttp } from './gateway-http.ts';
import { parseKeyView, usableVersion } from './key-view.ts';

/**
 * The key id a new handle is made for. A key outside management (a bare DKG result) is its own;
 * a managed key (named by id or alias) must be Enabled, and handles name the material id of its
 * current version, so they keep decrypting with that version after a rotation. Asked afresh for
 * every encryption: a key disabled a moment ago is refused here, not only by the nodes later.
 */
export async function encryptionKeyId(http: GatewayHttp, keyIdOrAlias: string): Promise<string> {
  const { json } = await http.request<Record<string, unknown>>('GET', `/v1/keys/${encodeURIComponent(keyIdOrAlias)}`);
  if (json.managed === undefined) {
    assertKeyId(keyIdOrAlias);
    return keyIdOrAlias;
  }
  const view = parseKeyView(json.managed);
  const version = usableVersion(view, Math.floor(Date.now() / 1000));
  if (view.origin.type === 'derived') {
    throw new TkmsError('not_implemented', `key ${view.keyId} is derived from ${view.origin.root}: this client cannot encrypt to derived keys yet`);
  }
  return materialKeyId(view.keyId, version.version);
}
