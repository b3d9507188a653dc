import { decodeAddress, decodeHex, encodeHex, isTkmsError, TkmsError, type Deployment } from '../core/index.ts';
import {
  checkAlias,
  checkTags,
  KeyChangeMessage,
  parseKeyChangeBody,
  ZERO_DIGEST,
  type KeyAction,
  type KeyActionBody,
  type KeyChange,
  type UnsignedKeyChange,
} from '../core/keys/key-change.ts';
import { assertManagedKeyId, KEY_STATES, type KeyOrigin, type KeySpec, type KeyState, type KeyUsage } from '../core/keys/key-model.ts';
import type { Account } from './account.ts';
import type { GatewayHttp } from './gateway-http.ts';
import { parseKeyChangeResult, parseKeyView, type KeyChangeResult, type KeyView, verifyDestruction } from './key-view.ts';
import { requestSigner, type Eip712Signer, type RequestSigner } from './signer.ts';

/**
 * Managed keys from the client's side: reads (describe, list, history, policy) and admin changes,
 * each an EIP-712 KeyChange signed here by an admin and posted to the gateway, which passes it to
 * every member (KEYS-CONTRACT.md "HTTP"). The gateway's word is used only to find the key's
 * sequence and head; the nodes check the signature, the admin and the order.
 */

export interface KeyAdminOptions {
  http: GatewayHttp;
  /** Who signs changes; reads need none. */
  signer?: Account | Eip712Signer;
  /** The pinned committee: changes are signed for it. Without it, for the committee the gateway names (GET /v1/committee). */
  committeeId?: string;
  /**
   * Waits before re-posting a change the gateway answered 202 (applied by fewer than n − t + 1
   * members yet); re-posting the same signed change is safe, nodes answer `known`. Default 250, 500, 1000, 2000 ms.
   */
  retryDelaysMs?: readonly number[];
  /** The pinned committee's member keys (raw Ed25519, hex) and threshold: destruction receipts are verified against them. */
  trustedMemberKeys?: Record<number, string>;
  trustedThreshold?: number;
}

export interface CreateKeyOptions {
  keyId: string;
  /** Default: a DKG key of its own. */
  origin?: KeyOrigin;
  /** Default: the signer alone. */
  admins?: string[];
  description?: string;
  tags?: Record<string, string>;
  aliases?: string[];
  policy?: Record<string, unknown>;
  rotationPeriodDays?: number | null;
  /** Default ECC_SECG_P256K1; ECC_NIST_EDWARDS25519 is a signing key (Ed25519). */
  spec?: KeySpec;
  /** Default ENCRYPT_DECRYPT for ECC_SECG_P256K1 (SIGN_VERIFY signs BIP340 Taproot), SIGN_VERIFY for ECC_NIST_EDWARDS25519. */
  usage?: KeyUsage;
}

export interface KeyListFilter {
  /** `k` (any value) or `k=v`. */
  tag?: string;
  alias?: string;
  state?: KeyState;
}

export interface KeyHistoryPage {
  changes: KeyChange[];
  next: number | null;
}

export interface KeyPolicyAnswer {
  keyId: string;
  sequence: number;
  policy: Record<string, unknown>;
}

/** The time to delete a key (or one version) after: AWS's days, or seconds on a test committee. */
export type DeletionWindow = { pendingWindowDays?: number; version?: number } | { pendingWindowSeconds: number; version?: number };

const DEFAULT_RETRY_DELAYS_MS = [250, 500, 1000, 2000] as const;

const keyPath = (keyIdOrAlias: string): string => `/v1/keys/${encodeURIComponent(keyIdOrAlias)}`;

export class KeyAdmin {
  private readonly signer: RequestSigner | undefined;
  private committee: Promise<Deployment> | undefined;

  constructor(private readonly opts: KeyAdminOptions) {
    this.signer = opts.signer === undefined ? undefined : requestSigner(opts.signer);
  }

  /** The same gateway and committee, changes signed by another admin. */
  as(signer: Account | Eip712Signer): KeyAdmin {
    return new KeyAdmin({ ...this.opts, signer });
  }

  /** The managed key a key id or an alias (`alias/…`) names; unknown_key when it names none. */
  async describe(keyIdOrAlias: string): Promise<KeyView> {
    const { json } = await this.opts.http.request<Record<string, unknown>>('GET', keyPath(keyIdOrAlias));
    if (json.managed === undefined) throw new TkmsError('unknown_key', `${keyIdOrAlias} is a key of the committee but not a managed key: it has no state, admins or versions`);
    const view = parseKeyView(json.managed);
    const { committeeId, trustedMemberKeys, trustedThreshold } = this.opts;
    if (committeeId === undefined || trustedMemberKeys === undefined || trustedThreshold === undefined) return view;
    const memberKeys = new Map(Object.entries(trustedMemberKeys).map(([id, hex]) => [Number(id), decodeHex(hex, { name: `member ${id} key`, length: 32 })]));
    return verifyDestruction(view, { committeeId, t: trustedThreshold, memberKeys });
  }

  async list(filter: KeyListFilter = {}): Promise<KeyView[]> {
    if (filter.state !== undefined && !KEY_STATES.includes(filter.state)) throw new TkmsError('bad_request', `state must be one of ${KEY_STATES.join(', ')}`);
    const query = new URLSearchParams();
    for (const name of ['tag', 'alias', 'state'] as const) if (filter[name] !== undefined) query.set(name, filter[name]);
    const q = query.toString();
    const { json } = await this.opts.http.request<Record<string, unknown>>('GET', `/v1/keys${q === '' ? '' : `?${q}`}`);
    if (json.managed === undefined) return [];
    if (!Array.isArray(json.managed)) throw new TkmsError('bad_request', 'gateway answered a key list whose managed is not an array');
    return json.managed.map(parseKeyView);
  }

  /** One page of the key's signed changes from sequence `after` + 1; each is decoded, not yet checked (keyChangeSigner checks one). */
  async history(keyId: string, opts: { after?: number } = {}): Promise<KeyHistoryPage> {
    const after = opts.after ?? 0;
    if (!Number.isSafeInteger(after) || after < 0) throw new TkmsError('bad_request', 'after must be a non-negative integer');
    const { json } = await this.opts.http.request<Record<string, unknown>>('GET', `${keyPath(keyId)}/changes?after=${after}`);
    if (!Array.isArray(json.changes)) throw new TkmsError('bad_request', 'gateway answered a key history without changes');
    const next = json.next ?? null;
    // Each page must move on, or a gateway could keep a reader asking.
    if (next !== null && (typeof next !== 'number' || !Number.isSafeInteger(next) || next <= after)) throw new TkmsError('bad_request', 'gateway answered a key history with an invalid next');
    return { changes: json.changes.map((c) => KeyChangeMessage.decode(c)), next };
  }

  async getPolicy(keyIdOrAlias: string): Promise<KeyPolicyAnswer> {
    const { json } = await this.opts.http.request<Record<string, unknown>>('GET', `${keyPath(keyIdOrAlias)}/policy`);
    const policy = json.policy;
    if (typeof json.keyId !== 'string' || typeof json.sequence !== 'number' || policy === null || typeof policy !== 'object' || Array.isArray(policy)) {
      throw new TkmsError('bad_request', 'gateway answered a key policy without keyId, sequence and policy');
    }
    return { keyId: json.keyId, sequence: json.sequence, policy: policy as Record<string, unknown> };
  }

  /** Creates a managed key: a `create` change at sequence 1, signed by the signer (an allowed creator). */
  async create(options: CreateKeyOptions): Promise<KeyChangeResult> {
    assertManagedKeyId(options.keyId);
    const signer = this.requireSigner();
    const body: KeyActionBody<'create'> = {
      origin: options.origin ?? { type: 'dkg' },
      admins: (options.admins ?? [signer.address]).map((a) => encodeHex(decodeAddress(a, 'admin'))),
      ...(options.description !== undefined ? { description: options.description } : {}),
      ...(options.tags !== undefined ? { tags: options.tags } : {}),
      ...(options.aliases !== undefined ? { aliases: options.aliases } : {}),
      ...(options.policy !== undefined ? { policy: options.policy } : {}),
      ...(options.rotationPeriodDays !== undefined ? { rotationPeriodDays: options.rotationPeriodDays } : {}),
      ...(options.spec !== undefined ? { spec: options.spec } : {}),
      ...(options.usage !== undefined ? { usage: options.usage } : {}),
    };
    const change = await this.sign(signer, { keyId: options.keyId, sequence: 1, previous: ZERO_DIGEST, action: 'create', body: bodyText('create', body) });
    return this.submit('/v1/keys', change);
  }

  /**
   * Signs `action` with `body` as the change after the key's last one (its sequence and head as the
   * gateway describes them) and posts it. A change the gateway applied before anyone else's gets
   * its answer; one racing another admin's is refused (key_change_out_of_order or _conflict): describe and sign again.
   */
  async change<A extends Exclude<KeyAction, 'create'>>(keyIdOrAlias: string, action: A, body: KeyActionBody<A>): Promise<KeyChangeResult> {
    const signer = this.requireSigner();
    const text = bodyText(action, body);
    const view = await this.describe(keyIdOrAlias);
    if (!view.admins.some((a) => a.toLowerCase() === signer.address)) {
      throw new TkmsError('not_key_admin', `${signer.address} is not an admin of key ${view.keyId} (its admins: ${view.admins.join(', ')})`);
    }
    const change = await this.sign(signer, {
      keyId: view.keyId,
      sequence: view.sequence + 1,
      previous: decodeHex(view.head, { name: 'head', length: 32 }),
      action,
      body: text,
    });
    return this.submit(`${keyPath(view.keyId)}/changes`, change);
  }

  enable(key: string): Promise<KeyChangeResult> {
    return this.change(key, 'enable', {});
  }

  disable(key: string): Promise<KeyChangeResult> {
    return this.change(key, 'disable', {});
  }

  /** Schedules the key's (or one version's) destruction; the default window is 30 days. */
  scheduleDeletion(key: string, window: DeletionWindow = {}): Promise<KeyChangeResult> {
    return this.change(key, 'scheduleDeletion', window);
  }

  cancelDeletion(key: string, opts: { version?: number } = {}): Promise<KeyChangeResult> {
    return this.change(key, 'cancelDeletion', opts);
  }

  rotate(key: string): Promise<KeyChangeResult> {
    return this.change(key, 'rotate', {});
  }

  /** Automatic rotation every `rotationPeriodDays`, or null for on demand only. */
  setRotation(key: string, rotationPeriodDays: number | null): Promise<KeyChangeResult> {
    return this.change(key, 'setRotation', { rotationPeriodDays });
  }

  putPolicy(key: string, policy: Record<string, unknown>): Promise<KeyChangeResult> {
    return this.change(key, 'putPolicy', { policy });
  }

  createAlias(key: string, alias: string): Promise<KeyChangeResult> {
    return this.change(key, 'createAlias', { alias });
  }

  renameAlias(key: string, from: string, to: string): Promise<KeyChangeResult> {
    return this.change(key, 'renameAlias', { from, to });
  }

  deleteAlias(key: string, alias: string): Promise<KeyChangeResult> {
    return this.change(key, 'deleteAlias', { alias });
  }

  tag(key: string, tags: Record<string, string>): Promise<KeyChangeResult> {
    return this.change(key, 'tag', { tags });
  }

  untag(key: string, keys: string[]): Promise<KeyChangeResult> {
    return this.change(key, 'untag', { keys });
  }

  updateDescription(key: string, description: string): Promise<KeyChangeResult> {
    return this.change(key, 'updateDescription', { description });
  }

  updateAdmins(key: string, admins: string[]): Promise<KeyChangeResult> {
    return this.change(key, 'updateAdmins', { admins: admins.map((a) => encodeHex(decodeAddress(a, 'admin'))) });
  }

  private requireSigner(): RequestSigner {
    if (this.signer === undefined) throw new TkmsError('bad_request', 'a key change needs a signer: give KeyAdmin a signer (an account or an EIP-712 signer), or use keys.as(signer)');
    return this.signer;
  }

  private deployment(): Promise<Deployment> {
    if (this.opts.committeeId !== undefined) return Promise.resolve({ committeeId: this.opts.committeeId });
    const asked = (this.committee ??= this.opts.http.request<{ committeeId?: unknown }>('GET', '/v1/committee').then(({ json }) => {
      if (typeof json.committeeId !== 'string') throw new TkmsError('bad_request', 'gateway committee answer has no committeeId');
      return { committeeId: json.committeeId };
    }));
    // A failed look-up is asked again next time.
    asked.catch(() => {
      if (this.committee === asked) this.committee = undefined;
    });
    return asked;
  }

  private async sign(signer: RequestSigner, change: Omit<UnsignedKeyChange, 'issuedAt' | 'admin'>): Promise<KeyChange> {
    const unsigned: UnsignedKeyChange = { ...change, issuedAt: Math.floor(Date.now() / 1000), admin: signer.addressBytes };
    return { ...unsigned, signature: await signer.sign(KeyChangeMessage.struct, unsigned, await this.deployment()) };
  }

  /** Posts the change; while the gateway answers 202, posts the same signed change again after each delay. */
  private async submit(path: string, change: KeyChange): Promise<KeyChangeResult> {
    const post = () => this.opts.http.request<Record<string, unknown>>('POST', path, { change: KeyChangeMessage.encode(change) });
    let answer = await post();
    for (const delay of this.opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS) {
      if (answer.status !== 202) break;
      await new Promise((r) => setTimeout(r, delay));
      try {
        answer = await post();
      } catch (e) {
        // The gateway took it into its own book meanwhile and refuses it as applied: the last answer stands.
        if (isTkmsError(e, 'key_change_replayed')) break;
        throw e;
      }
    }
    return parseKeyChangeResult(answer.json);
  }
}

/** The body as signed, checked first against the action's declaration so a mistake fails before a wallet is asked. */
function bodyText<A extends KeyAction>(action: A, body: KeyActionBody<A>): string {
  const text = JSON.stringify(body);
  const parsed = parseKeyChangeBody(action, text) as Record<string, unknown>;
  const tags = parsed.tags as Record<string, string> | undefined;
  if (tags !== undefined) checkTags(tags);
  for (const alias of [parsed.alias, parsed.to, ...((parsed.aliases as unknown[] | undefined) ?? [])]) if (typeof alias === 'string') checkAlias(alias);
  return text;
}
