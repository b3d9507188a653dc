import { Compile } from 'typebox/schema';
import { Array as ArrayType, Enum, Integer, Literal, Null, Object as ObjectType, Optional, Record as RecordType, String as StringType, Union, type Static, type TSchema } from 'typebox/type';
import { hashTypedData, recoverTypedDataSigner, signTypedData, type Eip712FieldType } from '../eip712.ts';
import { tkmsDomain, type Deployment } from '../authz.ts';
import { encodeHex, utf8ToBytes } from '../bytes.ts';
import { TkmsError } from '../errors.ts';
import { KEY_ID_PATTERN } from '../identifiers.ts';
import { signedCodec } from '../messages.ts';
import { addressField, enumField, hexBytesField, integerField, textField, unixSecondsField, type DecodedFields, type WireField } from '../schema.ts';
import { KEY_LIMITS, KEY_SPECS, KEY_USAGES } from './key-model.ts';
import { DERIVATION_PATH_MAX_LENGTH } from './derive.ts';

/**
 * A change to a managed key: one EIP-712 message signed by one of the key's admins (by an allowed
 * creator, for `create`), naming the key, its place in the key's history (sequence and the digest
 * of the change before it) and what it does (action and a JSON body). A wallet shows the body as
 * text, so what an admin signs is what every node parses.
 *
 * Each action's body is declared once below (KEY_ACTION_BODIES): the parser, the TypeScript types
 * and the API documentation all come from it.
 */

export const KEY_ACTIONS = [
  'create',
  'updateDescription',
  'createAlias',
  'renameAlias',
  'deleteAlias',
  'tag',
  'untag',
  'enable',
  'disable',
  'scheduleDeletion',
  'cancelDeletion',
  'rotate',
  'setRotation',
  'putPolicy',
  'updateAdmins',
] as const;
export type KeyAction = (typeof KEY_ACTIONS)[number];

const UINT53_MAX = Number.MAX_SAFE_INTEGER;
/**
 * How far a change's issuedAt may be from the clock of the member (or gateway) it is first sent to,
 * and so how long after a deletion date a cancel signed before it may still arrive.
 */
export const MAX_SUBMIT_SKEW_SECONDS = 3600;
export const ZERO_DIGEST = new Uint8Array(32);

/** A field whose builder leaves it unsigned, signed as `type`. */
function signedAs<J extends TSchema, D>(type: Eip712FieldType, field: WireField<J, D>): WireField<J, D> {
  return { ...field, eip712: type };
}

export const KeyChangeMessage = signedCodec(
  'KeyChange',
  'key change',
  {
    keyId: signedAs('string', textField(64, { description: 'The managed key this change is for (core/keys/key-model.ts assertManagedKeyId).', example: 'payroll' })),
    sequence: signedAs(
      'uint64',
      integerField(1, UINT53_MAX, { refusal: 'must be an integer ≥ 1', description: 'The place of this change in the key\'s history: 1 for create, then one more than the last change applied.', example: 2 }),
    ),
    previous: hexBytesField(32, { eip712: 'bytes32', description: 'The digest of the change at sequence − 1 (32 zero bytes for create): a change applies only after exactly that one.', example: `0x${'00'.repeat(32)}` }),
    action: signedAs('string', enumField(KEY_ACTIONS, { refusal: `must be one of ${KEY_ACTIONS.join(', ')}`, description: 'What the change does; `body` holds its parameters.', example: 'disable' })),
    body: signedAs(
      'string',
      textField(KEY_LIMITS.changeBodyBytes, { description: 'The action\'s parameters as a JSON object (KEY_ACTION_BODIES in core/keys/key-change.ts; docs/keys.md).', example: '{}' }),
    ),
    issuedAt: unixSecondsField({ description: 'When the admin signed it (unix seconds). Deletion windows run from it; a node refuses a change sent to it more than an hour from its clock.', example: 1767225600 }),
    admin: addressField({ description: 'The admin (or creator) who signs this change.', example: '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266' }),
  },
  { description: 'A change to a managed key, signed by one of its admins (EIP-712 type KeyChange).' },
);

export type KeyChange = DecodedFields<typeof KeyChangeMessage.fields>;
export type UnsignedKeyChange = Omit<KeyChange, 'signature'>;

export function signKeyChange(secretKey: Uint8Array, change: UnsignedKeyChange, deployment: Deployment): KeyChange {
  return { ...change, signature: signTypedData(secretKey, tkmsDomain(deployment), KeyChangeMessage.struct, KeyChangeMessage.typedData(change)) };
}

/** The EIP-712 digest of the change (what its admin signed): the next change names it as `previous`. */
export function keyChangeDigest(change: UnsignedKeyChange, deployment: Deployment): Uint8Array {
  return hashTypedData(tkmsDomain(deployment), KeyChangeMessage.struct, KeyChangeMessage.typedData(change));
}

/** The address that signed the change, checked to be the `admin` it names (unauthorized otherwise). */
export function keyChangeSigner(change: KeyChange, deployment: Deployment): string {
  const signer = recoverTypedDataSigner(tkmsDomain(deployment), KeyChangeMessage.struct, KeyChangeMessage.typedData(change), change.signature);
  const named = encodeHex(change.admin);
  if (encodeHex(signer) !== named) throw new TkmsError('unauthorized', `key change ${change.sequence} of key ${change.keyId} is not signed by ${named} for this deployment (committee ${deployment.committeeId})`);
  return named;
}

// ---------------------------------------------------------------------------------------
// Action bodies.

const ALIAS_PATTERN = '^alias/[A-Za-z0-9/_-]{1,250}$';
const ADDRESS_PATTERN = '^0x[0-9a-fA-F]{40}$';
const TAG_KEY = /^[A-Za-z0-9 _.:/=+@-]{1,128}$/;
const TAG_VALUE = /^[A-Za-z0-9 _.:/=+@-]{0,256}$/;

const alias = StringType({ pattern: ALIAS_PATTERN, description: 'alias/ followed by 1-250 of A-Z a-z 0-9 / _ - (alias/tkms/ is reserved).' });
const admins = ArrayType(StringType({ pattern: ADDRESS_PATTERN }), { minItems: 1, maxItems: KEY_LIMITS.adminsPerKey, description: 'Ethereum addresses that may sign this key\'s changes.' });
const tags = RecordType(StringType(), StringType(), { description: `Up to ${KEY_LIMITS.tagsPerKey} tags; key 1-128 and value 0-256 characters of A-Z a-z 0-9 space _ . : / = + @ -; keys starting "tkms:" are reserved.` });
const description = StringType({ maxLength: KEY_LIMITS.descriptionLength });
const policy = ObjectType({}, { additionalProperties: true, description: 'The key\'s purpose-bound policy (docs/key-policy.md).' });
const rotationPeriodDays = Union([Integer({ minimum: KEY_LIMITS.minRotationPeriodDays, maximum: KEY_LIMITS.maxRotationPeriodDays }), Null()], {
  description: `Automatic rotation every this many days (${KEY_LIMITS.minRotationPeriodDays}-${KEY_LIMITS.maxRotationPeriodDays}), or null for on demand only. A DKG key\'s new version is its own DKG, run by the committee when it is due.`,
});
const origin = Union([
  ObjectType({ type: Literal('dkg') }, { additionalProperties: false }),
  ObjectType(
    {
      type: Literal('derived'),
      root: StringType({ pattern: KEY_ID_PATTERN, description: 'The DKG key the derived key hangs from (its material key id).' }),
      path: StringType({ minLength: 1, maxLength: DERIVATION_PATH_MAX_LENGTH, description: 'With the root\'s public key, it fixes the key: 1-256 characters, no control characters (core/keys/derive.ts assertDerivationPath).' }),
    },
    { additionalProperties: false },
  ),
]);
const version = Integer({ minimum: 1, maximum: KEY_LIMITS.maxVersions });

const strict = <T extends Record<string, TSchema>>(props: T) => ObjectType(props, { additionalProperties: false });

export const KEY_ACTION_BODIES = {
  create: strict({
    spec: Optional(Enum([...KEY_SPECS], { description: 'ECC_SECG_P256K1 (default) or ECC_NIST_EDWARDS25519 (Ed25519, signing only).' })),
    usage: Optional(Enum([...KEY_USAGES], { description: 'ENCRYPT_DECRYPT (default for ECC_SECG_P256K1) or SIGN_VERIFY (BIP340 Taproot for ECC_SECG_P256K1, Ed25519 for ECC_NIST_EDWARDS25519).' })),
    origin,
    description: Optional(description),
    admins,
    policy: Optional(policy),
    tags: Optional(tags),
    aliases: Optional(ArrayType(alias, { maxItems: KEY_LIMITS.aliasesPerKey })),
    rotationPeriodDays: Optional(rotationPeriodDays),
  }),
  updateDescription: strict({ description }),
  createAlias: strict({ alias }),
  renameAlias: strict({ from: alias, to: alias }),
  deleteAlias: strict({ alias }),
  tag: strict({ tags }),
  untag: strict({ keys: ArrayType(StringType({ minLength: 1, maxLength: KEY_LIMITS.tagKeyLength }), { minItems: 1, maxItems: KEY_LIMITS.tagsPerKey }) }),
  enable: strict({}),
  disable: strict({}),
  scheduleDeletion: strict({
    pendingWindowDays: Optional(Integer({ minimum: 1, maximum: KEY_LIMITS.maxDeletionWindowDays, description: `Days until the key (or version) is destroyed: ${KEY_LIMITS.minDeletionWindowDays}-${KEY_LIMITS.maxDeletionWindowDays}, default ${KEY_LIMITS.defaultDeletionWindowDays}.` })),
    pendingWindowSeconds: Optional(Integer({ minimum: 1, maximum: KEY_LIMITS.maxDeletionWindowDays * 86_400, description: 'Test committees only (keys.allowShortDeletionWindow): the window in seconds.' })),
    version: Optional(version),
  }),
  cancelDeletion: strict({ version: Optional(version) }),
  rotate: strict({}),
  setRotation: strict({ rotationPeriodDays }),
  putPolicy: strict({ policy }),
  updateAdmins: strict({ admins }),
} as const satisfies Record<KeyAction, TSchema>;

export type KeyActionBody<A extends KeyAction> = Static<(typeof KEY_ACTION_BODIES)[A]>;

const validators = Object.fromEntries(KEY_ACTIONS.map((a) => [a, Compile(KEY_ACTION_BODIES[a])])) as { [A in KeyAction]: ReturnType<typeof Compile> };

/** The change's body, parsed and checked against its action's declaration (bad_request naming what is wrong). */
export function parseKeyChangeBody<A extends KeyAction>(action: A, body: string): KeyActionBody<A> {
  if (utf8ToBytes(body).length > KEY_LIMITS.changeBodyBytes) throw new TkmsError('bad_request', `a key change body must be at most ${KEY_LIMITS.changeBodyBytes} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new TkmsError('bad_request', `the body of a ${action} change is not JSON`);
  }
  const validator = validators[action];
  if (!validator.Check(value)) {
    const first = validator.Errors(value)[1][0];
    const where = first === undefined ? '' : `: ${first.instancePath || '/'} ${first.message}`;
    throw new TkmsError('bad_request', `the body of a ${action} change is not valid${where}`);
  }
  return value as KeyActionBody<A>;
}

/** Tags are a JSON object; its keys and values follow AWS's rules (checked here, with messages naming the tag). */
export function checkTags(tagMap: Record<string, string>): void {
  for (const [key, value] of Object.entries(tagMap)) {
    const shown = JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key);
    if (!TAG_KEY.test(key)) throw new TkmsError('bad_request', `tag key ${shown} must be 1-${KEY_LIMITS.tagKeyLength} characters of A-Z a-z 0-9 space _ . : / = + @ -`);
    if (key.toLowerCase().startsWith('tkms:')) throw new TkmsError('bad_request', `tag key ${shown} uses the reserved prefix "tkms:"`);
    if (typeof value !== 'string' || !TAG_VALUE.test(value)) throw new TkmsError('bad_request', `the value of tag ${shown} must be 0-${KEY_LIMITS.tagValueLength} characters of A-Z a-z 0-9 space _ . : / = + @ -`);
  }
}

export function checkAlias(name: string): void {
  if (name.toLowerCase().startsWith('alias/tkms/')) throw new TkmsError('bad_request', `alias ${name} uses the reserved prefix alias/tkms/`);
}
