import { DEFAULT_HTTP_LIMITS } from '../../net/http-limits.ts';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { isTkmsError, TAG_LENGTH, type TkmsError } from '../../core/index.ts';
import { GATEWAY_ENV_OVERRIDES, parseGatewayConfig } from '../../gateway/config.ts';
import { RateLimiter } from '../../runtime/rate-limit.ts';
import { MAX_CIPHERTEXT_BYTES } from '../../gateway/store.ts';

/** The largest plaintext whose ciphertext (plus the GCM tag) the store still accepts. */
const MAX_PLAINTEXT = MAX_CIPHERTEXT_BYTES - TAG_LENGTH;

/** Small gateway units: the per-requester rate limiter and the config parser. */

function caught(fn: () => unknown): TkmsError {
  try {
    fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a TkmsError, but the call succeeded');
}

describe('gateway units', () => {
  describe('RateLimiter', () => {
    const T0 = 1_700_000_000_000;

    it('allows a burst, then refuses with rate_limited and a retry hint', () => {
      const limiter = new RateLimiter(60, 3); // one token per second
      for (let i = 0; i < 3; i++) limiter.take('alice', T0);
      const e = caught(() => limiter.take('alice', T0));
      assert.equal(e.code, 'rate_limited');
      assert.equal(e.httpStatus, 429);
      assert.deepEqual(e.details, { retryAfterSeconds: 1 });
      assert.match(e.message, /retry in 1 s/);
      // A refused request does not consume a token.
      assert.equal(caught(() => limiter.take('alice', T0)).code, 'rate_limited');
    });

    it('the retry hint is the time to the next whole token, rounded up to seconds', () => {
      const slow = new RateLimiter(6, 1); // one token per 10 s
      slow.take('bob', T0);
      assert.deepEqual(caught(() => slow.take('bob', T0)).details, { retryAfterSeconds: 10 });
      assert.deepEqual(caught(() => slow.take('bob', T0 + 2_500)).details, { retryAfterSeconds: 8 });
      assert.deepEqual(caught(() => slow.take('bob', T0 + 9_999)).details, { retryAfterSeconds: 1 });
      slow.take('bob', T0 + 10_000);
      const perHour = new RateLimiter(1, 1);
      perHour.take('carol', T0);
      assert.deepEqual(caught(() => perHour.take('carol', T0)).details, { retryAfterSeconds: 60 });
    });

    it('refills over (injected) time at perMinute, capped at burst', () => {
      const limiter = new RateLimiter(60, 3);
      for (let i = 0; i < 3; i++) limiter.take('alice', T0);
      // Exactly one token after one second.
      limiter.take('alice', T0 + 1_000);
      assert.equal(caught(() => limiter.take('alice', T0 + 1_000)).code, 'rate_limited');
      // A long idle period refills to the burst, no further.
      const later = T0 + 3_600_000;
      for (let i = 0; i < 3; i++) limiter.take('alice', later);
      assert.equal(caught(() => limiter.take('alice', later)).code, 'rate_limited');
      // Sustained rate: one per second keeps passing.
      for (let s = 1; s <= 20; s++) limiter.take('alice', later + s * 1_000);
    });

    it('keys are independent', () => {
      const limiter = new RateLimiter(60, 2);
      limiter.take('0xaaaa', T0);
      limiter.take('0xaaaa', T0);
      assert.equal(caught(() => limiter.take('0xaaaa', T0)).code, 'rate_limited');
      limiter.take('0xbbbb', T0);
      limiter.take('0xbbbb', T0);
      assert.equal(caught(() => limiter.take('0xbbbb', T0)).code, 'rate_limited');
      assert.equal(caught(() => limiter.take('0xaaaa', T0)).code, 'rate_limited');
    });

    it('bounds the number of buckets: full (idle) buckets are swept, busy ones refuse newcomers', () => {
      const limiter = new RateLimiter(60, 1, 2);
      limiter.take('a', T0);
      limiter.take('b', T0);
      const e = caught(() => limiter.take('c', T0));
      assert.equal(e.code, 'rate_limited');
      // After a second both buckets are full again and can be dropped to make room.
      limiter.take('c', T0 + 1_000);
      limiter.take('d', T0 + 1_000);
    });
  });

  describe('parseGatewayConfig', () => {
    const BASE = '/etc/tkms';
    const minimal = { listen: '127.0.0.1:8080', storeDir: 'store', committeeFile: 'committee.json' };

    function problems(value: unknown, env: Record<string, string | undefined> = {}): string[] {
      const e = caught(() => parseGatewayConfig(value, BASE, env));
      assert.equal(e.code, 'bad_request');
      const list = (e.details as { problems?: string[] } | undefined)?.problems;
      assert.ok(Array.isArray(list), 'details.problems lists the mistakes');
      for (const p of list) assert.ok(e.message.includes(p), `the message repeats "${p}"`);
      return list;
    }

    it('fills defaults and resolves relative paths against the config directory', () => {
      const c = parseGatewayConfig(minimal, BASE);
      assert.deepEqual(c, {
        listen: { host: '127.0.0.1', port: 8080 },
        basePath: '/',
        cors: { allowedOrigins: [] },
        storeDir: resolve(BASE, 'store'),
        committeeFile: resolve(BASE, 'committee.json'),
        logLevel: 'info',
        partialTimeoutMs: 3_000,
        hedgeDelayMs: 300,
        partialFramesInFlight: 1,
        rateLimit: { perMinute: 600, burst: 100 },
        maxPlaintextBytes: MAX_PLAINTEXT,
        clockSkewSeconds: 30,
        maxGrantLifetimeSeconds: 90 * 86_400,
        acl: { mode: 'signed' },
        httpLimits: DEFAULT_HTTP_LIMITS,
        grants: { perOwner: 10_000, max: 500_000 },
        revocations: { perOwner: 10_000, max: 200_000 },
        handles: { perOwner: 100_000, perOwnerBytes: 1024 ** 3, maxBytes: 32 * 1024 ** 3, minFreeDiskBytes: 1024 ** 3 },
        keys: { creators: [], perCreatorQuota: 1000, maxKeys: 100_000, maxBytes: 256 * 1024 * 1024, allowShortDeletionWindow: false },
        storeWriteQueueBytes: 64 * 1024 * 1024,
      });
      const abs = parseGatewayConfig({ ...minimal, storeDir: '/var/lib/tkms', committeeFile: '../c.json' }, BASE);
      assert.equal(abs.storeDir, '/var/lib/tkms');
      assert.equal(abs.committeeFile, '/etc/c.json');
      assert.deepEqual(parseGatewayConfig({ ...minimal, listen: '[::1]:0' }, BASE).listen, { host: '::1', port: 0 });
    });

    it('grants and revocations: { perOwner, max } bounds of the store, perOwner at most max', () => {
      assert.deepEqual(parseGatewayConfig({ ...minimal, grants: { perOwner: 2 }, revocations: { perOwner: 3, max: 5 } }, BASE).grants, { perOwner: 2, max: 500_000 });
      assert.deepEqual(parseGatewayConfig({ ...minimal, revocations: { perOwner: 3, max: 5 } }, BASE).revocations, { perOwner: 3, max: 5 });
      for (const bad of [5, { perOwner: 0 }, { max: 1.5 }, { perOwner: 1, other: 1 }, []]) {
        assert.throws(() => parseGatewayConfig({ ...minimal, grants: bad }, BASE), /grants must be \{ "perOwner"/);
      }
      assert.throws(() => parseGatewayConfig({ ...minimal, revocations: { perOwner: 6, max: 5 } }, BASE), /revocations.perOwner must not exceed revocations.max/);
    });

    it('maxGrantLifetimeSeconds: from the file or TKMS_MAX_GRANT_LIFETIME_SECONDS, at least a minute', () => {
      assert.equal(parseGatewayConfig({ ...minimal, maxGrantLifetimeSeconds: 3_600 }, BASE).maxGrantLifetimeSeconds, 3_600);
      assert.equal(parseGatewayConfig({ ...minimal, maxGrantLifetimeSeconds: 3_600 }, BASE, { TKMS_MAX_GRANT_LIFETIME_SECONDS: '120' }).maxGrantLifetimeSeconds, 120);
      for (const bad of [59, 1.5, '3600', 400 * 86_400 * 10]) {
        assert.throws(() => parseGatewayConfig({ ...minimal, maxGrantLifetimeSeconds: bad }, BASE), /maxGrantLifetimeSeconds must be an integer/);
      }
    });

    it('takes explicit values at their bounds', () => {
      const c = parseGatewayConfig(
        { ...minimal, logLevel: 'silent', partialTimeoutMs: 100, hedgeDelayMs: 0, partialFramesInFlight: 64, maxPlaintextBytes: MAX_PLAINTEXT, clockSkewSeconds: 600, rateLimit: { perMinute: 1, burst: 10_000_000 } },
        BASE,
      );
      assert.equal(c.logLevel, 'silent');
      assert.equal(c.partialTimeoutMs, 100);
      assert.equal(c.hedgeDelayMs, 0);
      assert.equal(c.partialFramesInFlight, 64);
      assert.equal(c.maxPlaintextBytes, MAX_PLAINTEXT);
      assert.equal(c.clockSkewSeconds, 600);
      assert.deepEqual(c.rateLimit, { perMinute: 1, burst: 10_000_000 });
      // A partial rateLimit keeps the other default.
      assert.deepEqual(parseGatewayConfig({ ...minimal, rateLimit: { burst: 5 } }, BASE).rateLimit, { perMinute: 600, burst: 5 });
    });

    it('environment variables override the file (and empty ones are ignored)', () => {
      for (const [name, field] of Object.entries({ TKMS_COMMITTEE_FILE: 'committeeFile', TKMS_GATEWAY_IDENTITY_FILE: 'identityFile', TKMS_GATEWAY_LISTEN: 'listen', TKMS_GATEWAY_STORE_DIR: 'storeDir', TKMS_GATEWAY_TLS_CERT_FILE: 'tlsCertFile', TKMS_GATEWAY_TLS_KEY_FILE: 'tlsKeyFile', TKMS_LOG_LEVEL: 'logLevel', TKMS_GATEWAY_BODY_TIMEOUT_MS: 'httpLimits.bodyTimeoutMs' })) {
        assert.equal(GATEWAY_ENV_OVERRIDES[name], field, name);
      }
      const c = parseGatewayConfig(minimal, BASE, {
        TKMS_GATEWAY_LISTEN: '0.0.0.0:9999',
        TKMS_GATEWAY_STORE_DIR: '/data/store',
        TKMS_COMMITTEE_FILE: 'other.json',
        TKMS_LOG_LEVEL: 'debug',
        UNRELATED: 'x',
      });
      assert.deepEqual(c.listen, { host: '0.0.0.0', port: 9999 });
      assert.equal(c.storeDir, '/data/store');
      assert.equal(c.committeeFile, resolve(BASE, 'other.json'));
      assert.equal(c.logLevel, 'debug');
      const unchanged = parseGatewayConfig(minimal, BASE, { TKMS_GATEWAY_LISTEN: '', TKMS_LOG_LEVEL: undefined });
      assert.deepEqual(unchanged.listen, { host: '127.0.0.1', port: 8080 });
      assert.equal(unchanged.logLevel, 'info');
      // The environment can supply what the file lacks…
      const fromEnv = parseGatewayConfig({}, BASE, { TKMS_GATEWAY_LISTEN: 'localhost:1', TKMS_GATEWAY_STORE_DIR: 's', TKMS_COMMITTEE_FILE: 'c' });
      assert.equal(fromEnv.listen.host, 'localhost');
      // …and its mistakes are reported like the file's.
      assert.ok(problems(minimal, { TKMS_GATEWAY_LISTEN: 'nope' }).some((p) => p.startsWith('listen')));
      assert.ok(problems(minimal, { TKMS_LOG_LEVEL: 'verbose' }).some((p) => p.startsWith('logLevel')));
    });

    it('lists every kind of mistake in one error', () => {
      const list = problems({
        listen: 'localhost',
        extra: 1,
        partialTimeoutMs: 99,
        hedgeDelayMs: -1,
        partialFramesInFlight: 0,
        maxPlaintextBytes: 0,
        clockSkewSeconds: 601,
        rateLimit: { perMinute: 0, burst: 1.5, unknown: true },
        logLevel: 'loud',
      });
      const expected = [
        'unknown field "extra"',
        'listen must be',
        'storeDir is required',
        'committeeFile is required',
        'partialTimeoutMs must be an integer in 100..60000',
        'hedgeDelayMs must be an integer in 0..60000',
        'partialFramesInFlight must be an integer in 1..64',
        `maxPlaintextBytes must be an integer in 1..${MAX_PLAINTEXT}`,
        'clockSkewSeconds must be an integer in 0..600',
        'rateLimit has an unknown field "unknown"',
        'rateLimit.perMinute must be an integer in 1..10000000',
        'rateLimit.burst must be an integer in 1..10000000',
        'logLevel must be one of',
      ];
      for (const want of expected) assert.ok(list.some((p) => p.startsWith(want)), `missing problem "${want}" in ${JSON.stringify(list)}`);
      assert.equal(list.length, expected.length, JSON.stringify(list));
    });

    it('refuses each mistake on its own', () => {
      const one = (over: Record<string, unknown>, prefix: string): void => {
        const list = problems({ ...minimal, ...over });
        assert.equal(list.length, 1, JSON.stringify(list));
        assert.ok(list[0]!.startsWith(prefix), `${list[0]} should start with ${prefix}`);
      };
      for (const listen of ['', 'host', ':8080', '127.0.0.1:', '127.0.0.1:65536', '127.0.0.1:-1', 'a b:1', '[zz]:1', 8080, null, 'x'.repeat(300) + ':1']) one({ listen }, 'listen');
      for (const storeDir of ['', 5, null, 'a\u0000b', 'x'.repeat(4097)]) one({ storeDir }, 'storeDir');
      one({ committeeFile: [] }, 'committeeFile');
      for (const v of [99, 60_001, 1.5, '3000', null, true]) one({ partialTimeoutMs: v }, 'partialTimeoutMs');
      for (const v of [-1, 60_001, 0.5]) one({ hedgeDelayMs: v }, 'hedgeDelayMs');
      for (const v of [0, 65, 1.5, '2']) one({ partialFramesInFlight: v }, 'partialFramesInFlight');
      for (const v of [0, MAX_PLAINTEXT + 1, 16 * 1024 * 1024, 1e300]) one({ maxPlaintextBytes: v }, 'maxPlaintextBytes');
      for (const v of [-1, 601, Number.NaN]) one({ clockSkewSeconds: v }, 'clockSkewSeconds');
      for (const v of [null, 5, 'fast', []]) one({ rateLimit: v }, 'rateLimit must be an object');
      one({ rateLimit: { perMinute: 10_000_001 } }, 'rateLimit.perMinute');
      one({ rateLimit: { burst: 0 } }, 'rateLimit.burst');
      for (const v of ['INFO', '', 3, null]) one({ logLevel: v }, 'logLevel');
      one({ '': 1 }, 'unknown field ""');
    });

    it('refuses a config that is not a JSON object', () => {
      for (const v of [null, [], 'x', 1, true, undefined]) assert.equal(caught(() => parseGatewayConfig(v, BASE)).code, 'bad_request');
    });
  });
});
