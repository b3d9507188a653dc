import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import fc from 'fast-check';
import { ERROR_CODES, isErrorCode } from '../../core/errors.ts';

/**
 * Shared pieces of the input fuzzers (test/fuzz/*.test.ts): odd values, mutations of valid
 * messages, a raw HTTP client that sends paths as they are, and per-target tallies. The fuzzers
 * run against real processes (a devnet), never against in-process copies.
 */

// --- odd values ---------------------------------------------------------------------------

const HUGE_NUMBERS = [1e308, -1e308, 2 ** 53, 2 ** 53 + 2, 2 ** 64, -(2 ** 63), 1e21, 0.5, -1, -0, 4294967296, 253402300800, 1.7976931348623157e308, 5e-324];

/** Values of every JSON type, biased towards what breaks decoders. */
export const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  { depthSize: 'small' },
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(...HUGE_NUMBERS),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', '0x', '0X', '0x0', '0xzz', '0x' + 'g'.repeat(64), '0x' + 'ab'.repeat(31) + 'a', '0x' + 'ff'.repeat(33), '0x' + '00'.repeat(65), 'AA==', 'A', '====', '!!!!', 'QUJD\nRA==', '💥', '\u0000', '\ud800'),
  fc.uint8Array({ maxLength: 80 }).map((b) => `0x${Buffer.from(b).toString('hex')}`),
  fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b).toString('base64')),
  fc.constantFrom(null, true, false, [], {}, [[[[[]]]]], { a: { b: { c: {} } } }),
  fc.integer({ min: 1_000, max: 20_000 }).map((n) => 'x'.repeat(n)),
);

/** Path segments with odd characters (unicode, controls, dots, percent signs, very long). */
export const oddSegment: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('', '.', '..', '...', '%', '%zz', '%00', '%2e%2e', '%2F', '%2f..%2f', ';', '?', '#', '//', '\\', ' ', '0x', 'default', 'DEFAULT', '0x' + 'AB'.repeat(32), '0x' + 'ab'.repeat(33), '-', '_', 'a'.repeat(65)),
  fc.tuple(fc.constantFrom('0x', '0X', ''), fc.stringMatching(/^[0-9a-fA-FxXg]{0,70}$/)).map(([p, h]) => p + h),
  fc.integer({ min: 200, max: 6_000 }).map((n) => 'a'.repeat(n)),
);

/** Writes a segment into a request target: percent-encoded (as a client would) or raw where HTTP allows. */
export function pathSegment(segment: string, raw: boolean): string {
  if (!raw) {
    try {
      return encodeURIComponent(segment);
    } catch {
      // A lone surrogate: encode its replacement's UTF-8 bytes.
    }
  }
  let out = '';
  for (const ch of segment) {
    const code = ch.codePointAt(0)!;
    out += code >= 0x21 && code <= 0x7e && ch !== '/' ? ch : [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');
  }
  return out;
}

type Json = unknown;

/** Every path to a value inside a JSON object (objects and arrays), the root excluded. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof value !== 'object' || value === null) return [];
  const out: (string | number)[][] = [];
  const entries: [string | number, Json][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value as Record<string, Json>);
  for (const [k, v] of entries) {
    out.push([...prefix, k]);
    out.push(...paths(v, [...prefix, k]));
  }
  return out;
}

export type Mutation = { kind: 'replace'; at: number; value: unknown } | { kind: 'delete'; at: number } | { kind: 'add'; at: number; key: string; value: unknown };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), value: oddValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('add' as const), at: fc.nat(), key: fc.constantFrom('extra', '__proto__', 'constructor', 'v', ''), value: oddValue }) },
);

/** Applies mutations to a deep copy of a valid message. */
export function mutate(valid: Json, mutations: Mutation[]): Json {
  const copy = JSON.parse(JSON.stringify(valid)) as Json;
  for (const m of mutations) {
    const all = paths(copy);
    if (all.length === 0) break;
    const path = all[m.at % all.length]!;
    let parent: any = copy;
    for (const k of path.slice(0, -1)) parent = parent[k];
    const key = path[path.length - 1]!;
    if (m.kind === 'replace') parent[key] = m.value;
    else if (m.kind === 'delete') {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
    } else if (typeof parent === 'object' && parent !== null && !Array.isArray(parent)) {
      Object.defineProperty(parent, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
    }
  }
  return copy;
}

/**
 * Well-formed but wrong: one hex digit of a hex field flipped, or a number nudged. These pass the
 * decoders and reach the checks behind them (signatures, handle commitment, K binding, windows, RSA key).
 */
export function semanticMutation(valid: Json, at: number, nibble: number, delta: number): Json {
  const copy = JSON.parse(JSON.stringify(valid)) as Json;
  const candidates = paths(copy).filter((p) => {
    let v: any = copy;
    for (const k of p) v = v[k];
    return typeof v === 'number' || (typeof v === 'string' && /^(0x)?[0-9a-f]{2,}$/i.test(v));
  });
  if (candidates.length === 0) return copy;
  const path = candidates[at % candidates.length]!;
  let parent: any = copy;
  for (const k of path.slice(0, -1)) parent = parent[k];
  const key = path[path.length - 1]!;
  const v = parent[key];
  if (typeof v === 'number') parent[key] = v + delta;
  else {
    const start = v.startsWith('0x') ? 2 : 0;
    const i = start + (nibble % (v.length - start));
    parent[key] = `${v.slice(0, i)}${((parseInt(v[i], 16) + 1 + (nibble % 15)) % 16).toString(16)}${v.slice(i + 1)}`;
  }
  return copy;
}

/**
 * Bodies for a message whose valid form is `valid`: mutated (fields replaced by odd values,
 * deleted, added), truncated, random bytes, arbitrary JSON, deep nesting, wrong top-level types.
 */
export function bodyArb(valid: Json): fc.Arbitrary<Buffer> {
  const text = JSON.stringify(valid);
  return fc.oneof(
    { weight: 8, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 3 }).map((ms) => Buffer.from(JSON.stringify(mutate(valid, ms)))) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.nat(), fc.nat(), fc.constantFrom(-1_000_000, -3_601, -1, 1, 3_601, 1_000_000_000))
        .map(([at, nibble, delta]) => Buffer.from(JSON.stringify(semanticMutation(valid, at, nibble, delta)))),
    },
    { weight: 2, arbitrary: fc.nat(text.length - 1).map((n) => Buffer.from(text.slice(0, n))) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
    { weight: 1, arbitrary: fc.constantFrom('[]', '""', '0', 'null', 'true', '1e999', '-0', '{"a":1,"a":2}', '\ufeff{}', '{"__proto__":{"polluted":1}}').map((s) => Buffer.from(s)) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 50_000 }).map((d) => Buffer.from('['.repeat(d) + ']'.repeat(d))) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 }).map((n) => Buffer.concat([Buffer.from(text), Buffer.alloc(n, 0xff)])) },
  );
}

// --- HTTP ---------------------------------------------------------------------------------

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** One request with the target sent as given (no normalization); undefined on timeout. */
export function rawHttp(base: string, method: string, target: string, body?: Buffer, timeoutMs = 5_000): Promise<HttpAnswer | 'timeout' | 'closed'> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: target,
        headers: body === undefined ? { connection: 'close' } : { 'content-type': 'application/json', 'content-length': String(body.length), connection: 'close' },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => resolve('closed'));
      },
    );
    req.on('timeout', () => {
      req.destroy();
      resolve('timeout');
    });
    req.on('error', () => resolve('closed'));
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Raw bytes on a fresh TCP connection; returns the status line's code, or 'closed' when none came. */
export function rawTcp(base: string, bytes: Buffer, timeoutMs = 5_000): Promise<{ status: number | 'closed' | 'timeout'; text: string }> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ status: 'timeout', text });
    }, timeoutMs);
    socket.on('data', (d) => {
      text += d.toString('latin1');
    });
    const done = (): void => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 'closed', text });
    };
    socket.on('close', done);
    socket.on('error', () => undefined);
    socket.write(bytes, () => socket.end());
  });
}

/** The body of a raw HTTP/1.1 response (chunked transfer coding undone). */
export function httpBody(response: string): string {
  const split = response.indexOf('\r\n\r\n');
  const head = response.slice(0, split);
  let rest = response.slice(split + 4);
  if (!/^transfer-encoding:\s*chunked/im.test(head)) return rest;
  let out = '';
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

/**
 * What every HTTP answer must be: an answer (not a hang), never 5xx, and, when an error, the typed
 * JSON body `{error:{code,message}}` whose code maps to this very status.
 */
export function checkHttpAnswer(what: string, answer: HttpAnswer | 'timeout' | 'closed', opts: { method?: string; allow503?: boolean } = {}): HttpAnswer {
  assert.notEqual(answer, 'timeout', `${what}: no answer within the timeout`);
  assert.notEqual(answer, 'closed', `${what}: connection closed without an answer`);
  const a = answer as HttpAnswer;
  if (!(opts.allow503 && a.status === 503)) assert.ok(a.status < 500, `${what}: HTTP ${a.status} ${a.body.slice(0, 300)}`);
  if (opts.method === 'HEAD') return a;
  if (a.status >= 400 && !(opts.allow503 && a.status === 503)) {
    assert.match(a.contentType, /^application\/json/, `${what}: error without JSON (${a.contentType})`);
    let json: any;
    try {
      json = JSON.parse(a.body);
    } catch {
      assert.fail(`${what}: error body is not JSON: ${a.body.slice(0, 200)}`);
    }
    assert.ok(json && typeof json.error === 'object', `${what}: no error object: ${a.body.slice(0, 200)}`);
    assert.ok(isErrorCode(json.error.code), `${what}: unknown code ${String(json.error.code)}`);
    assert.equal(typeof json.error.message, 'string', `${what}: no message`);
    assert.equal(ERROR_CODES[json.error.code as keyof typeof ERROR_CODES], a.status, `${what}: code ${json.error.code} with HTTP ${a.status}`);
  }
  return a;
}

// --- tallies ------------------------------------------------------------------------------

export class Tally {
  private readonly counts = new Map<string, Map<string, number>>();

  add(target: string, outcome: string): void {
    let m = this.counts.get(target);
    if (m === undefined) this.counts.set(target, (m = new Map()));
    m.set(outcome, (m.get(outcome) ?? 0) + 1);
  }

  total(target?: string): number {
    let sum = 0;
    for (const [t, m] of this.counts) if (target === undefined || t === target) for (const v of m.values()) sum += v;
    return sum;
  }

  targets(): string[] {
    return [...this.counts.keys()];
  }

  /** "target  inputs  outcomes" table, outcomes most frequent first. */
  table(title: string): string {
    const rows = [...this.counts].map(([t, m]) => {
      const outcomes = [...m].sort((a, b) => b[1] - a[1]).map(([o, n]) => `${o} ${n}`);
      return [t, String([...m.values()].reduce((a, b) => a + b, 0)), outcomes.slice(0, 6).join(', ') + (outcomes.length > 6 ? ', …' : '')] as const;
    });
    const w0 = Math.max(title.length, ...rows.map((r) => r[0].length));
    const w1 = Math.max(6, ...rows.map((r) => r[1].length));
    const lines = [`${title.padEnd(w0)}  ${'inputs'.padStart(w1)}  outcomes`, ...rows.map((r) => `${r[0].padEnd(w0)}  ${r[1].padStart(w1)}  ${r[2]}`), `${'total'.padEnd(w0)}  ${String(this.total()).padStart(w1)}`];
    return lines.map((l) => `      ${l}`).join('\n');
  }
}

/** The outcome label of an HTTP answer: "400 bad_hex", "200". */
export function httpOutcome(a: HttpAnswer): string {
  if (a.status < 400) return String(a.status);
  try {
    return `${a.status} ${(JSON.parse(a.body) as { error: { code: string } }).error.code}`;
  } catch {
    return String(a.status);
  }
}
