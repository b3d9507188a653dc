import type { Account } from '../../client/account.ts';
import type { Deployment } from '../../core/authz.ts';
import { decodeHex } from '../../core/index.ts';
import { KeyChangeMessage, signKeyChange, ZERO_DIGEST, type KeyAction, type KeyChange } from '../../core/keys/key-change.ts';

/**
 * Managed keys through the gateway's HTTP API, as a test drives them: an admin signs the next change
 * of a key (its sequence and head read from GET /v1/keys/{keyId}) and POSTs it. Unit tests use it
 * against the real routes; integration tests against a running gateway and nodes.
 */

export interface KeyChangeAnswer {
  status: number;
  json: Record<string, unknown>;
  /** The signed change sent: POST it again to retry after a 202. */
  change: KeyChange;
}

export interface KeyChangeFields {
  /** Unix seconds; default now. */
  issuedAt?: number;
  /** Default: one more than the key's (1 for create). */
  sequence?: number;
  /** Default: the key's head (zeros for create). */
  previous?: Uint8Array;
}

async function requestJson(url: string, init?: RequestInit): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The `managed` view of a key (by id or alias) as the gateway describes it, or undefined when it names none. */
export async function describeManagedKey(gatewayUrl: string, keyIdOrAlias: string): Promise<Record<string, unknown> | undefined> {
  const { status, json } = await requestJson(`${gatewayUrl}/v1/keys/${encodeURIComponent(keyIdOrAlias)}`);
  if (status === 404) return undefined;
  if (status !== 200) throw new Error(`GET /v1/keys/${keyIdOrAlias}: ${status} ${JSON.stringify(json)}`);
  return json.managed as Record<string, unknown> | undefined;
}

/** Signs a change of `keyId` by `admin` for the deployment, following the key's history unless `fields` say otherwise. */
export async function signNextKeyChange(
  gatewayUrl: string,
  deployment: Deployment,
  admin: Account,
  keyId: string,
  action: KeyAction,
  body: Record<string, unknown>,
  fields: KeyChangeFields = {},
): Promise<KeyChange> {
  let sequence = 1;
  let previous: Uint8Array = ZERO_DIGEST;
  if (action !== 'create' && (fields.sequence === undefined || fields.previous === undefined)) {
    const key = await describeManagedKey(gatewayUrl, keyId);
    if (key === undefined) throw new Error(`the gateway holds no managed key ${keyId}`);
    sequence = (key.sequence as number) + 1;
    previous = decodeHex(key.head as string, { name: 'head', length: 32 });
  }
  return signKeyChange(
    admin.secretKey,
    {
      keyId,
      sequence: fields.sequence ?? sequence,
      previous: fields.previous ?? previous,
      action,
      body: JSON.stringify(body),
      issuedAt: fields.issuedAt ?? Math.floor(Date.now() / 1000),
      admin: admin.addressBytes,
    },
    deployment,
  );
}

/** POSTs a signed change where its action goes (create: POST /v1/keys; others: POST /v1/keys/{keyId}/changes). */
export async function postKeyChange(gatewayUrl: string, change: KeyChange): Promise<KeyChangeAnswer> {
  const path = change.action === 'create' ? '/v1/keys' : `/v1/keys/${encodeURIComponent(change.keyId)}/changes`;
  const { status, json } = await requestJson(`${gatewayUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ change: KeyChangeMessage.encode(change) }),
  });
  return { status, json, change };
}

/** Signs the key's next change and submits it through the gateway. */
export async function submitKeyChange(
  gatewayUrl: string,
  deployment: Deployment,
  admin: Account,
  keyId: string,
  action: KeyAction,
  body: Record<string, unknown> = {},
  fields: KeyChangeFields = {},
): Promise<KeyChangeAnswer> {
  return postKeyChange(gatewayUrl, await signNextKeyChange(gatewayUrl, deployment, admin, keyId, action, body, fields));
}
