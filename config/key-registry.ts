import { Type, type StaticDecode } from 'typebox';
import type { Deployment } from '../core/authz.ts';
import type { KeyBookOptions } from '../core/keys/key-book.ts';
import { field, FieldProblem } from './config-schema.ts';

/**
 * `keys`, the committee's managed-key policy, one config group the node and the gateway both
 * declare: who may create keys and how many, how many the registry holds, and whether deletion
 * windows may be shorter than 7 days. Every node applies key changes with it, and the gateway checks
 * a change with it before sending it on, so give every process of a deployment the same values: a
 * gateway stricter than its nodes refuses changes they would take, a laxer one sends changes they refuse.
 */

/** Changes one key may have: each is a few hundred bytes held in memory by every node and the gateway. */
export const MAX_CHANGES_PER_KEY = 10_000;
/** Bytes of changes one key holds: a few hundred changes with the largest bodies, thousands of ordinary ones. */
export const MAX_BYTES_PER_KEY = 4 * 1024 * 1024;
const MAX_CREATORS = 1000;
const ADDRESS = '0x[0-9a-fA-F]{40}';

export const keyRegistryField = () =>
  field.group(
    {
      creators: Type.Decode(
        Type.Union([Type.Literal('open'), Type.Array(Type.String({ pattern: `^(${ADDRESS}|open)$` }), { maxItems: MAX_CREATORS })], {
          default: [],
          description: 'accounts that may create managed keys, or "open" for anyone (each within keys.perCreatorQuota); [] lets nobody create keys',
          env: 'TKMS_KEY_CREATORS',
          mustBe: `"open", or an array of at most ${MAX_CREATORS} 0x-prefixed 20-byte hex addresses`,
        }),
        (value): 'open' | string[] => {
          // The variable's list form: "open" alone opens creation.
          if (value === 'open' || (value.length === 1 && value[0] === 'open')) return 'open';
          if (value.includes('open')) throw new FieldProblem('{path} is either "open" or a list of addresses, not both');
          return [...new Set(value.map((a) => a.toLowerCase()))].sort();
        },
      ),
      perCreatorQuota: field.integer(1, 10_000_000, 1000, { description: 'managed keys one account may create (destroyed keys count too)', env: 'TKMS_KEY_PER_CREATOR_QUOTA', unit: 'keys' }),
      maxKeys: field.integer(1, 1_000_000, 100_000, {
        description: 'managed keys the registry holds; a create beyond it is refused (key_limit_exceeded)',
        details: 'Every node and the gateway hold every key and its changes in memory',
        env: 'TKMS_KEY_MAX_KEYS',
        unit: 'keys',
      }),
      maxBytes: field.integer(1024 * 1024, 16 * 1024 * 1024 * 1024, 256 * 1024 * 1024, {
        description: 'bytes of signed key changes the registry holds in all; a change beyond it is refused (key_limit_exceeded)',
        details: `Held in memory and in the key change log by every node and the gateway; one key holds at most ${MAX_BYTES_PER_KEY / (1024 * 1024)} MiB`,
        env: 'TKMS_KEY_MAX_BYTES',
        unit: 'bytes',
      }),
      allowShortDeletionWindow: field.boolean(false, {
        description: 'test committees only: let a deletion window be shorter than 7 days (pendingWindowSeconds)',
        details: 'Production committees keep the 7-day minimum, as AWS KMS does',
        env: 'TKMS_KEY_ALLOW_SHORT_DELETION_WINDOW',
      }),
    },
    { description: 'managed keys: who may create them, how many, and the deletion window' },
  );

export type KeyRegistryConfig = StaticDecode<ReturnType<typeof keyRegistryField>>;

/**
 * The key book options of a deployment from its `keys` config: the node and the gateway build their
 * books from the same declaration, so both apply a change alike.
 */
export function keyBookOptions(config: KeyRegistryConfig, deployment: Deployment, parsePolicy: KeyBookOptions['parsePolicy']): KeyBookOptions {
  return {
    deployment,
    creation: { creators: config.creators, perCreatorQuota: config.perCreatorQuota },
    allowShortDeletionWindow: config.allowShortDeletionWindow,
    parsePolicy,
    maxKeys: config.maxKeys,
    maxChangesPerKey: MAX_CHANGES_PER_KEY,
    maxBytesPerKey: MAX_BYTES_PER_KEY,
    maxTotalBytes: config.maxBytes,
  };
}
