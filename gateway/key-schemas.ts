import { Type, type TSchema } from 'typebox';
import { KeyChangeMessage } from '../core/keys/key-change.ts';
import { KEY_LIMITS, KEY_SPECS, KEY_STATES, KEY_USAGES } from '../core/keys/key-model.ts';
import { KEY_CHANGE_PAGE_SIZE } from '../core/keys/key-wire.ts';
import { SIGNING_ALGORITHMS } from '../core/signing/suites.ts';
import { EXAMPLE_KEY_CHANGES, EXAMPLE_KEY_VIEWS } from './api-examples.ts';
import {
  Address,
  ALIAS_PATTERN,
  asSigned,
  Bytes32,
  closed,
  CompressedPoint,
  described,
  KeyId,
  NodeFailure,
  NodeId,
  PublishedKey,
  requestComponent,
  responseComponent,
  signedMessage,
  Timestamp,
} from './api-schemas.ts';

/**
 * The JSON schemas of managed keys (issue 17): the signed key change, its request body, and the
 * views, pages and outcomes the gateway answers with. Registered with gateway/api-schemas.ts's
 * components, where the document lists each beside the others of its kind.
 */

export const KeyChange = signedMessage(
  asSigned(KeyChangeMessage),
  'A change to a managed key, signed by one of its admins (for `create`, by an account config `keys.creators` allows). `sequence` is one more than the key\'s, `previous` the digest of its last change (`head` in a KeyView; 32 zero bytes for create): every node applies a key\'s changes in that order only. `body` is the action\'s parameters as JSON text (docs/keys.md).',
  false,
);

export const KeyChangeBody = requestComponent(
  'KeyChangeBody',
  closed({ change: KeyChange }, { description: 'POST /v1/keys and POST /v1/keys/{keyId}/changes body: one signed key change.', examples: [{ change: EXAMPLE_KEY_CHANGES.create }] }),
);

const nullable = (schema: TSchema, description: string): TSchema => Type.Union([schema, Type.Null()], { description });
const sequenceNumber = (description: string): TSchema => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description });
export const SigningKeyView = responseComponent(
  'SigningKeyView',
  closed(
    {
      algorithm: Type.String({ enum: Object.values(SIGNING_ALGORITHMS), description: 'ED25519_SHA_512 (RFC 8032) or BIP340_SCHNORR_TAPROOT (BIP340 under the Taproot output key).' }),
      publicKey: Type.String({ pattern: '^0x[0-9a-f]{64}$', description: 'The 32-byte key signatures verify under: Ed25519 raw, or the BIP340 x-only Taproot output key (what a P2TR address commits to).' }),
      spki: Type.String({ pattern: '^0x([0-9a-f]{2})+$', description: 'The same key as DER SubjectPublicKeyInfo (Ed25519: RFC 8410; BIP340: the output key as an even-y secp256k1 point, uncompressed), as AWS KMS GetPublicKey gives it.' }),
      taprootInternalKey: Type.Optional(Type.String({ pattern: '^0x[0-9a-f]{64}$', description: 'BIP340 keys: the x-only internal key (the DKG group key); a P2TR address is built from it with no script tree.' })),
    },
    { description: 'A SIGN_VERIFY key version\'s public key in the forms verifiers and wallets take. Shown by the gateway; the client computes it itself from the verified DKG result.' },
  ),
);

export const KeyVersionView = responseComponent(
  'KeyVersionView',
  closed(
    {
      version: Type.Integer({ minimum: 1, maximum: KEY_LIMITS.maxVersions }),
      materialKeyId: described(KeyId, 'The key id the version\'s material and its handles are known by: the key id for version 1, `<keyId>.v<n>` after.'),
      createdAt: Timestamp,
      deletionDate: nullable(Timestamp, 'When this version alone is scheduled for deletion: the unix time it is destroyed; else null.'),
      state: Type.String({ enum: ['Enabled', 'PendingDeletion', 'Destroyed'], description: 'The version\'s own state at the gateway\'s clock (the key\'s state applies on top).' }),
      publicKey: Type.Optional(described(CompressedPoint, 'The version\'s public key, when the gateway holds its published DKG result.')),
      signing: Type.Optional(SigningKeyView),
    },
    { description: 'One version of a managed key.' },
  ),
);
const KeyOrigin = Type.Union(
  [
    closed({ type: Type.Literal('dkg') }, { description: 'Each version is its own DKG key.' }),
    closed({ type: Type.Literal('derived'), root: KeyId, path: Type.String({ minLength: 1, maxLength: 256 }) }, { description: 'Derived from the root DKG key\'s public key and the path: no ceremony.' }),
  ],
  { description: 'Where the key\'s material comes from.' },
);
export const KeyView = responseComponent(
  'KeyView',
  closed(
    {
      keyId: KeyId,
      spec: Type.String({ enum: [...KEY_SPECS] }),
      usage: Type.String({ enum: [...KEY_USAGES] }),
      origin: KeyOrigin,
      description: Type.String({ maxLength: KEY_LIMITS.descriptionLength }),
      aliases: Type.Array(Type.String({ pattern: ALIAS_PATTERN }), { maxItems: KEY_LIMITS.aliasesPerKey }),
      tags: Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' }, description: 'Tag key → value.' } as TSchema),
      admins: Type.Array(Address, { description: 'The accounts that may sign the key\'s changes.' }),
      policy: Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'The key\'s purpose-bound policy, as its last putPolicy (or create) set it; {} allows what the ACL allows.' } as TSchema),
      rotationPeriodDays: nullable(Type.Integer({ minimum: KEY_LIMITS.minRotationPeriodDays, maximum: KEY_LIMITS.maxRotationPeriodDays }), 'Automatic rotation period, or null.'),
      state: Type.String({ enum: [...KEY_STATES], description: 'At the gateway\'s clock: PendingDeletion turns Destroyed at `deletionDate`. Every node decides at its own.' }),
      deletionDate: nullable(Timestamp, 'While PendingDeletion (or once Destroyed): when the key is (was) destroyed.'),
      versions: Type.Array(KeyVersionView, { description: 'Every version, automatic rotations included, oldest first.' }),
      currentVersion: nullable(Type.Integer({ minimum: 1, maximum: KEY_LIMITS.maxVersions }), 'The version new encryptions use (the newest not scheduled for deletion), or null.'),
      createdAt: Timestamp,
      creator: described(Address, 'The account that signed the create.'),
      sequence: sequenceNumber('The sequence of the key\'s last change: the next change carries one more.'),
      head: described(Bytes32, 'The digest of the key\'s last change: the next change names it as `previous`.'),
      destruction: Type.Optional(
        Type.Array(
          closed(
            {
              version: Type.Integer({ minimum: 1, maximum: KEY_LIMITS.maxVersions }),
              materialKeyId: KeyId,
              receipts: Type.Array(Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'A member\'s signed destruction receipt (core/keys/destruction-receipt.ts); check it against the member\'s key.' } as TSchema)),
              confirmedBy: Type.Array(NodeId, { description: 'Members whose receipt for this version verified here.' }),
              needed: Type.Integer({ minimum: 1, description: 'n − t + 1.' }),
              destroyed: Type.Boolean({ description: 'confirmedBy.length ≥ needed: fewer than t shares of this version remain, if those members told the truth.' }),
            },
            { description: 'The destruction of one version.' },
          ),
          { description: 'GET /v1/keys/{keyId} only, for a DKG key with destroyed versions: what each member says it erased (docs/key-deletion.md).' },
        ),
      ),
    },
    { description: 'A managed key as the gateway\'s copy of the signed changes makes it.', examples: [EXAMPLE_KEY_VIEWS.created] },
  ),
);
export const KeyChangeResult = responseComponent(
  'KeyChangeResult',
  closed(
    {
      key: KeyView,
      acknowledgedBy: Type.Array(NodeId, { description: 'Members that applied the change (now, or before), ascending.' }),
      needed: Type.Integer({ minimum: 1, description: 'n − t + 1: with that many members applying it, fewer than t members can still act on the key as before.' }),
      effective: Type.Boolean({ description: 'acknowledgedBy.length ≥ needed (HTTP 200); otherwise HTTP 202: send the same change again.' }),
      failures: Type.Array(NodeFailure),
    },
    { description: 'The outcome of sending a key change to the committee.' },
  ),
);
export const KeyChangePage = responseComponent(
  'KeyChangePage',
  closed(
    {
      changes: Type.Array(KeyChange, { maxItems: KEY_CHANGE_PAGE_SIZE, description: 'The key\'s signed changes after `after`, in sequence order.' }),
      next: nullable(sequenceNumber('The `after` of the next page.'), 'The `after` of the next page, or null after the last.'),
    },
    { description: 'A page of a key\'s signed changes: anyone can check them (signatures, order) against the key\'s first admins.' },
  ),
);
export const KeyPolicy = responseComponent(
  'KeyPolicy',
  closed(
    {
      keyId: KeyId,
      sequence: sequenceNumber('The key\'s sequence this policy is read at.'),
      policy: Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'The key\'s purpose-bound policy (docs/key-policy.md).' } as TSchema),
    },
    { description: 'A managed key\'s policy.' },
  ),
);
/** Managed keys in one listing page. */
export const MAX_LISTED_MANAGED_KEYS = 1000;
/** Bytes of KeyViews in one listing page: a key's view can reach tens of KiB (tags, aliases, description, policy). */
export const MAX_LISTED_VIEW_BYTES = 1024 * 1024;
export const KeyList = responseComponent(
  'KeyList',
  closed({
    keys: Type.Array(PublishedKey, { description: 'The published DKG keys (not filtered).' }),
    managed: Type.Array(KeyView, { maxItems: MAX_LISTED_MANAGED_KEYS, description: `Managed keys that pass the filters, sorted by key id, at most ${MAX_LISTED_MANAGED_KEYS}.` }),
    managedNext: nullable(KeyId, 'The `after` of the next page of managed keys, or null after the last.'),
  }),
);
export const KeyDescription = responseComponent(
  'KeyDescription',
  Type.Union(
    [
      closed({ ...PublishedKey.properties, managed: Type.Optional(described(KeyView, 'Present when the id (or alias) names a managed key too.')) }, { description: 'A published DKG key, and the managed key of that id when there is one.' }),
      closed({ managed: KeyView }, { description: 'A managed key without a published DKG result of its id (a derived key, or a DKG key whose ceremony has not finished).' }),
    ],
    { description: 'A key: its published DKG result as before, plus `managed` for a managed key.' },
  ),
);
