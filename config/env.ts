/**
 * Configuration from environment variables, shared by the node and the gateway: typed
 * readers that never throw (they return the value or one problem line naming the variable),
 * and a typo check for TKMS_* names. Values are never echoed back, because some of these
 * variables sit next to secrets in the same environment.
 */
export type Env = Record<string, string | undefined>;

export type EnvRead<T> = { value: T; problem?: undefined } | { value?: undefined; problem: string } | { value?: undefined; problem?: undefined };

/** The variable's value, or undefined when it is unset or empty (empty means "not set"). */
export function envString(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** A decimal integer in [min, max]: digits only, no sign, no exponent, no spaces. */
export function envInt(env: Env, name: string, min: number, max: number, unit = ''): EnvRead<number> {
  const v = envString(env, name);
  if (v === undefined) return {};
  const what = `${name} must be an integer${unit ? ` number of ${unit}` : ''} in ${min}..${max}`;
  if (!/^[0-9]{1,15}$/.test(v)) return { problem: `${what} (it is set to something that is not a plain decimal integer)` };
  const n = Number(v);
  if (n < min || n > max) return { problem: `${what} (it is set to ${n})` };
  return { value: n };
}

/** "true" or "false" (also 1/0, yes/no, on/off; case-insensitive). */
export function envBool(env: Env, name: string): EnvRead<boolean> {
  const v = envString(env, name);
  if (v === undefined) return {};
  const lower = v.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(lower)) return { value: true };
  if (['false', '0', 'no', 'off'].includes(lower)) return { value: false };
  return { problem: `${name} must be true or false` };
}

/** A comma-separated list; surrounding spaces are trimmed, empty items are a mistake. */
export function envList(env: Env, name: string, maxItems: number): EnvRead<string[]> {
  const v = envString(env, name);
  if (v === undefined) return {};
  const items = v.split(',').map((s) => s.trim());
  if (items.some((s) => s.length === 0)) return { problem: `${name} must be a comma-separated list without empty items` };
  if (items.length > maxItems) return { problem: `${name} may list at most ${maxItems} items` };
  return { value: items };
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/**
 * Variables of different components one edit apart, both in use on one machine: the client's
 * TKMS_ACL_RPC_URL (where "tkms grant --chain" sends) and the node's and gateway's
 * TKMS_ACL_RPC_URLS (the operator's providers). Neither is a typo of the other.
 */
const NEIGHBOUR_ENV_VARS: readonly string[] = ['TKMS_ACL_RPC_URL', 'TKMS_ACL_RPC_URLS'];

/**
 * TKMS_* variables that are not in `known` but are one or two edits away from a name that
 * is: almost certainly typos that would otherwise be ignored in silence. Variables of other
 * components (far from every known name, or NEIGHBOUR_ENV_VARS) are left alone.
 */
export function envTypos(env: Env, known: readonly string[]): string[] {
  const out: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('TKMS_') || known.includes(name) || NEIGHBOUR_ENV_VARS.includes(name)) continue;
    let best: string | undefined;
    let bestDistance = 3;
    for (const k of known) {
      const d = editDistance(name, k);
      if (d < bestDistance) {
        best = k;
        bestDistance = d;
      }
    }
    if (best !== undefined) out.push(`environment variable ${name} is not used by tkms; did you mean ${best}?`);
  }
  return out;
}
