import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { multiaddr } from '@multiformats/multiaddr';
import { isTkmsError } from '../../core/index.ts';
import { GATEWAY_ENV_OVERRIDES, GATEWAY_ENV_VARS, parseGatewayConfig } from '../../gateway/config.ts';
import { envBool, envInt, envList, envTypos } from '../../config/env.ts';
import { ENV_OVERRIDES, loadConfig, NODE_ENV_VARS, parseConfig } from '../../node/config.ts';

/** Configuration by environment variables (containers, systemd): unit and property tests. */
const BASE = '/srv/tkms/node1';

const FULL_ENV = {
  TKMS_LISTEN: '/ip4/0.0.0.0/tcp/9000',
  TKMS_HTTP_LISTEN: '0.0.0.0:9100',
  TKMS_ADMIN_LISTEN: '127.0.0.1:9200',
  TKMS_IDENTITY_FILE: 'identity.json',
  TKMS_KEYSTORE_DIR: '/data/keystore',
  TKMS_COMMITTEE_FILE: '/etc/tkms/committee.json',
};

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(isTkmsError(e, 'bad_request'), `expected bad_request, got ${String(e)}`);
    return (e.details?.problems as string[] | undefined) ?? [e.message];
  }
  return [];
}

describe('config from environment variables', () => {
  describe('node', () => {
    it('the environment alone configures a node (no file); relative paths resolve against the base dir', () => {
      const c = parseConfig({}, { baseDir: BASE, env: FULL_ENV });
      assert.deepEqual(c.listen, ['/ip4/0.0.0.0/tcp/9000']);
      assert.deepEqual(c.http, { host: '0.0.0.0', port: 9100 });
      assert.equal(c.identityFile, resolve(BASE, 'identity.json'));
      assert.equal(c.keystoreDir, '/data/keystore');
      assert.equal(c.stateDir, '/data/state');
    });

    it('loadConfig(undefined) reads the environment only, relative to the working directory', async () => {
      const c = await loadConfig(undefined, FULL_ENV);
      assert.equal(c.identityFile, resolve(process.cwd(), 'identity.json'));
    });

    it('a missing required field says which variable can provide it', () => {
      const problems = problemsOf(() => parseConfig({}, { baseDir: BASE, env: {} }));
      for (const [name, field] of [
        ['TKMS_IDENTITY_FILE', 'identityFile'],
        ['TKMS_KEYSTORE_DIR', 'keystoreDir'],
        ['TKMS_COMMITTEE_FILE', 'committeeFile'],
        ['TKMS_HTTP_LISTEN', 'http'],
        ['TKMS_ADMIN_LISTEN', 'admin'],
        ['TKMS_LISTEN', 'listen'],
      ]) {
        assert.ok(problems.some((p) => p.startsWith(field!) && p.includes(name!)), `${field} mentions ${name}: ${problems.join(' | ')}`);
      }
    });

    it('TKMS_LISTEN takes a comma-separated list', () => {
      const c = parseConfig({}, { baseDir: BASE, env: { ...FULL_ENV, TKMS_LISTEN: '/ip4/0.0.0.0/tcp/9000, /ip6/::/tcp/9000' } });
      assert.deepEqual(c.listen, ['/ip4/0.0.0.0/tcp/9000', '/ip6/::/tcp/9000']);
    });

    it('typed variables override the file, and merge into partialRateLimit', () => {
      const file = { partialRateLimit: { perMinute: 50, burst: 5 }, clockSkewSeconds: 10, dkg: { phaseTimeoutMs: 1000 } };
      const c = parseConfig(file, {
        baseDir: BASE,
        env: { ...FULL_ENV, TKMS_DKG_PHASE_TIMEOUT_MS: '2500', TKMS_CLOCK_SKEW_SECONDS: '0', TKMS_PARTIAL_RATE_BURST: '7' },
      });
      assert.equal(c.dkgPhaseTimeoutMs, 2500);
      assert.equal(c.clockSkewSeconds, 0);
      assert.deepEqual(c.partialRateLimit, { perMinute: 50, burst: 7 });
      const d = parseConfig({}, { baseDir: BASE, env: { ...FULL_ENV, TKMS_PARTIAL_RATE_PER_MINUTE: '60' } });
      assert.deepEqual(d.partialRateLimit, { perMinute: 60, burst: 1000 });
    });

    it('TKMS_ADMIN_ALLOW_REMOTE opens the admin listener to a non-loopback address', () => {
      const remote = { ...FULL_ENV, TKMS_ADMIN_LISTEN: '10.0.0.5:9200' };
      assert.ok(problemsOf(() => parseConfig({}, { baseDir: BASE, env: remote })).some((p) => p.includes('loopback') && p.includes('TKMS_ADMIN_LISTEN')));
      assert.equal(parseConfig({}, { baseDir: BASE, env: { ...remote, TKMS_ADMIN_ALLOW_REMOTE: 'true' } }).admin.host, '10.0.0.5');
      assert.ok(problemsOf(() => parseConfig({}, { baseDir: BASE, env: { ...remote, TKMS_ADMIN_ALLOW_REMOTE: 'maybe' } })).includes('TKMS_ADMIN_ALLOW_REMOTE must be true or false'));
    });

    it('each mistake names its variable, on its own line, without echoing the value', () => {
      const env = {
        ...FULL_ENV,
        TKMS_HTTP_LISTEN: 'no-port',
        TKMS_LOG_LEVEL: 'loud',
        TKMS_CLOCK_SKEW_SECONDS: 'hunter2',
        TKMS_DKG_PHASE_TIMEOUT_MS: '5',
        TKMS_PARTIAL_RATE_BURST: '-1',
        TKMS_LISTEN: '/ip4/0.0.0.0/tcp/9000,not-a-multiaddr',
      };
      const problems = problemsOf(() => parseConfig({}, { baseDir: BASE, env }));
      assert.equal(problems.length, 6, problems.join('\n'));
      for (const name of ['TKMS_HTTP_LISTEN', 'TKMS_LOG_LEVEL', 'TKMS_CLOCK_SKEW_SECONDS', 'TKMS_DKG_PHASE_TIMEOUT_MS', 'TKMS_PARTIAL_RATE_BURST', 'TKMS_LISTEN']) {
        assert.ok(problems.some((p) => p.includes(name)), `a line names ${name}`);
      }
      assert.ok(!problems.join('\n').includes('hunter2'), 'values are not echoed');
      assert.ok(problems.some((p) => p.includes('TKMS_DKG_PHASE_TIMEOUT_MS') && p.includes('100..600000') && p.includes('set to 5')));
    });

    it('empty variables count as unset', () => {
      const c = parseConfig({ logLevel: 'warn' }, { baseDir: BASE, env: { ...FULL_ENV, TKMS_LOG_LEVEL: '', TKMS_CLOCK_SKEW_SECONDS: '' } });
      assert.equal(c.logLevel, 'warn');
      assert.equal(c.clockSkewSeconds, 30);
    });

    it('nested fields: unknown members, whole-object shapes and per-item mistakes are named', () => {
      const problems = problemsOf(() =>
        parseConfig(
          { dkg: { phaseTimeoutMs: 1000, retries: 2 }, partialRateLimit: { perMinute: 0 }, revocations: { perOwner: 5, max: 4 }, gatewayPeerIds: ['not-a-peer-id'], gatewayAddresses: ['10.0.0.1:80'] },
          { baseDir: BASE, env: FULL_ENV },
        ),
      );
      assert.deepEqual(problems.sort(), [
        'dkg has an unknown field "retries"',
        'gatewayAddresses must be an array of at most 16 IP addresses (no ports, no names)',
        'gatewayPeerIds[0] is not a libp2p peer id',
        'partialRateLimit must be { "perMinute": 1..10000000, "burst": 1..10000000 }',
        'revocations.perOwner must not exceed revocations.max',
      ]);
      const fromEnv = problemsOf(() => parseConfig({}, { baseDir: BASE, env: { ...FULL_ENV, TKMS_GATEWAY_PEER_IDS: 'nope' } }));
      assert.deepEqual(fromEnv, ['gatewayPeerIds[0] is not a libp2p peer id (set by environment variable TKMS_GATEWAY_PEER_IDS)']);
    });

    it('NODE_ENV_VARS lists every variable the node reads', () => {
      for (const name of [...Object.keys(ENV_OVERRIDES), 'TKMS_KEYSTORE_PASSWORD', 'TKMS_CONFIG', 'TKMS_ENABLE_TEST_FAULTS']) assert.ok(NODE_ENV_VARS.includes(name), name);
    });
  });

  describe('gateway', () => {
    const GW = { TKMS_GATEWAY_LISTEN: '0.0.0.0:8080', TKMS_GATEWAY_STORE_DIR: '/data/store', TKMS_COMMITTEE_FILE: '/etc/c.json' };

    it('typed variables set timeouts, rate limits and sizes', () => {
      const c = parseGatewayConfig({ rateLimit: { perMinute: 10, burst: 2 } }, BASE, {
        ...GW,
        TKMS_GATEWAY_PARTIAL_TIMEOUT_MS: '1500',
        TKMS_GATEWAY_HEDGE_DELAY_MS: '0',
        TKMS_GATEWAY_PARTIAL_FRAMES_IN_FLIGHT: '3',
        TKMS_GATEWAY_RATE_BURST: '20',
        TKMS_GATEWAY_MAX_PLAINTEXT_BYTES: '4096',
        TKMS_GATEWAY_CLOCK_SKEW_SECONDS: '5',
      });
      assert.equal(c.partialTimeoutMs, 1500);
      assert.equal(c.hedgeDelayMs, 0);
      assert.equal(c.partialFramesInFlight, 3);
      assert.deepEqual(c.rateLimit, { perMinute: 10, burst: 20 });
      assert.equal(c.maxPlaintextBytes, 4096);
      assert.equal(c.clockSkewSeconds, 5);
    });

    it('each mistake names its variable', () => {
      const problems = problemsOf(() =>
        parseGatewayConfig({}, BASE, { ...GW, TKMS_GATEWAY_LISTEN: 'x', TKMS_GATEWAY_PARTIAL_TIMEOUT_MS: '50', TKMS_GATEWAY_RATE_PER_MINUTE: 'lots', TKMS_LOG_LEVEL: 'x' }),
      );
      assert.equal(problems.length, 4, problems.join('\n'));
      for (const name of ['TKMS_GATEWAY_LISTEN', 'TKMS_GATEWAY_PARTIAL_TIMEOUT_MS', 'TKMS_GATEWAY_RATE_PER_MINUTE', 'TKMS_LOG_LEVEL']) assert.ok(problems.some((p) => p.includes(name)), name);
      const missing = problemsOf(() => parseGatewayConfig({}, BASE, {}));
      assert.ok(missing.some((p) => p.startsWith('storeDir is required') && p.includes('TKMS_GATEWAY_STORE_DIR')));
    });

    it('httpLimits and the TLS files: defaults, file values, variables on top, and their mistakes', () => {
      const c = parseGatewayConfig({ httpLimits: { maxConnections: 10, bodyTimeoutMs: 999 } }, BASE, {
        ...GW,
        TKMS_GATEWAY_BODY_TIMEOUT_MS: '2000',
        TKMS_GATEWAY_TLS_CERT_FILE: 'tls/cert.pem',
        TKMS_GATEWAY_TLS_KEY_FILE: '/etc/tls/key.pem',
      });
      assert.equal(c.httpLimits.maxConnections, 10);
      assert.equal(c.httpLimits.bodyTimeoutMs, 2000);
      assert.equal(c.httpLimits.maxConnectionsPerIp, 64);
      assert.deepEqual(c.tls, { certFile: resolve(BASE, 'tls/cert.pem'), keyFile: '/etc/tls/key.pem' });
      assert.equal(parseGatewayConfig({}, BASE, GW).tls, undefined);
      const problems = problemsOf(() => parseGatewayConfig({ httpLimits: { maxConnections: 0, slowloris: 1 }, tlsCertFile: 'cert.pem' }, BASE, { ...GW, TKMS_GATEWAY_HEADERS_TIMEOUT_MS: '5' }));
      assert.equal(problems.length, 4, problems.join('\n'));
      for (const part of ['httpLimits.maxConnections', '"slowloris"', 'TKMS_GATEWAY_HEADERS_TIMEOUT_MS', 'tlsCertFile and tlsKeyFile go together']) assert.ok(problems.some((p) => p.includes(part)), part);
    });

    it('cors.allowedOrigins: origins from the file or TKMS_GATEWAY_CORS_ORIGINS (comma-separated); anything else named', () => {
      assert.deepEqual(parseGatewayConfig({}, BASE, GW).cors, { allowedOrigins: [] });
      assert.deepEqual(parseGatewayConfig({ cors: { allowedOrigins: ['https://app.example', 'http://localhost:5173'] } }, BASE, GW).cors.allowedOrigins, ['https://app.example', 'http://localhost:5173']);
      const fromEnv = parseGatewayConfig({ cors: { allowedOrigins: ['https://file.example'] } }, BASE, { ...GW, TKMS_GATEWAY_CORS_ORIGINS: 'https://a.example, https://b.example:8443' });
      assert.deepEqual(fromEnv.cors.allowedOrigins, ['https://a.example', 'https://b.example:8443']);
      for (const bad of ['https://app.example/', 'https://app.example/tkms', 'ftp://app.example', 'app.example', '*']) {
        const problems = problemsOf(() => parseGatewayConfig({ cors: { allowedOrigins: [bad] } }, BASE, GW));
        assert.equal(problems.length, 1, problems.join('\n'));
        assert.ok(problems[0]!.startsWith('cors.allowedOrigins[0]'), problems[0]);
      }
      const envProblems = problemsOf(() => parseGatewayConfig({}, BASE, { ...GW, TKMS_GATEWAY_CORS_ORIGINS: 'https://ok.example,https://bad.example/path' }));
      assert.deepEqual(envProblems.length, 1);
      assert.ok(envProblems[0]!.startsWith('cors.allowedOrigins[1]') && envProblems[0]!.includes('TKMS_GATEWAY_CORS_ORIGINS'), envProblems[0]);
      assert.ok(problemsOf(() => parseGatewayConfig({ cors: { allowedOrigins: 'https://a.example', origins: [] } }, BASE, GW)).some((p) => p === 'cors has an unknown field "origins"'));
      // Names an object inherits are not fields.
      assert.deepEqual(problemsOf(() => parseGatewayConfig(JSON.parse('{"constructor": 1, "cors": {"toString": 2}}'), BASE, GW)).sort(), ['cors has an unknown field "toString"', 'unknown field "constructor"']);
    });

    it('basePath: "/" by default; from the file or TKMS_GATEWAY_BASE_PATH; must start with "/", trailing "/" optional', () => {
      assert.equal(parseGatewayConfig({}, BASE, GW).basePath, '/');
      assert.equal(parseGatewayConfig({ basePath: '/tkms/' }, BASE, GW).basePath, '/tkms/');
      assert.equal(parseGatewayConfig({ basePath: '/tkms/' }, BASE, { ...GW, TKMS_GATEWAY_BASE_PATH: '/a/b/' }).basePath, '/a/b/');
      assert.equal(parseGatewayConfig({ basePath: '/tkms' }, BASE, GW).basePath, '/tkms');
      for (const bad of ['tkms/', '', '//', '/a b/', '/../', '/a/./b', 5]) {
        const problems = problemsOf(() => parseGatewayConfig({ basePath: bad }, BASE, GW));
        assert.equal(problems.length, 1, `${String(bad)}: ${problems.join('\n')}`);
        assert.ok(problems[0]!.startsWith('basePath must be a path that starts with "/"'), problems[0]);
      }
      const fromEnv = problemsOf(() => parseGatewayConfig({}, BASE, { ...GW, TKMS_GATEWAY_BASE_PATH: 'tkms' }));
      assert.ok(fromEnv.length === 1 && fromEnv[0]!.includes('(set by environment variable TKMS_GATEWAY_BASE_PATH)'), fromEnv.join('\n'));
    });

    it('GATEWAY_ENV_VARS lists every overriding variable and the config file variable', () => {
      for (const name of [...Object.keys(GATEWAY_ENV_OVERRIDES), 'TKMS_GATEWAY_CONFIG']) assert.ok(GATEWAY_ENV_VARS.includes(name), name);
    });
  });

  describe('typo check', () => {
    it('flags TKMS_* names one or two edits from a known one, and nothing else', () => {
      const env = { TKMS_KEYSTORE_PASWORD: 'x', TKMS_LOG_LEVLE: 'x', TKMS_CURVE_BACKEND: 'noble', TKMS_LISTEN: 'x', HOME: '/root', TKMS_GATEWAY_URL: 'x' };
      const lines = envTypos(env, NODE_ENV_VARS);
      assert.equal(lines.length, 2, lines.join('\n'));
      assert.ok(lines[0]!.includes('TKMS_KEYSTORE_PASWORD') && lines[0]!.includes('did you mean TKMS_KEYSTORE_PASSWORD'));
      assert.ok(lines[1]!.includes('did you mean TKMS_LOG_LEVEL'));
    });

    it('the client\'s TKMS_ACL_RPC_URL and the node\'s and gateway\'s TKMS_ACL_RPC_URLS are not typos of each other', () => {
      const env = { TKMS_ACL_RPC_URL: 'http://127.0.0.1:8545', TKMS_ACL_RPC_URLS: 'http://127.0.0.1:8545', TKMS_ACL_RPC_URSL: 'x' };
      assert.ok(NODE_ENV_VARS.includes('TKMS_ACL_RPC_URLS') && GATEWAY_ENV_VARS.includes('TKMS_ACL_RPC_URLS'));
      for (const known of [NODE_ENV_VARS, GATEWAY_ENV_VARS, ['TKMS_ACL_RPC_URL', 'TKMS_ACL_CONTRACT']]) {
        const lines = envTypos(env, known);
        assert.equal(lines.length, 1, lines.join('\n'));
        assert.match(lines[0]!, /TKMS_ACL_RPC_URSL .*did you mean TKMS_ACL_RPC_URLS?\?/);
      }
    });
  });

  describe('properties', () => {
    it('envInt: a decimal integer in range reads back; anything else is one problem naming the variable', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: -10, max: 2_000_000 }), (a, b, n) => {
          const [min, max] = a <= b ? [a, b] : [b, a];
          const r = envInt({ X_VAR: String(n) }, 'X_VAR', min, max);
          if (n >= min && n <= max) assert.equal(r.value, n);
          else {
            assert.equal(r.value, undefined);
            assert.ok(r.problem!.startsWith('X_VAR must be an integer'));
          }
        }),
        { numRuns: 300 },
      );
      fc.assert(
        fc.property(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/^[0-9]{1,15}$/.test(s)), (s) => {
          const r = envInt({ X_VAR: s }, 'X_VAR', 0, 10);
          assert.equal(r.value, undefined);
          assert.ok(r.problem!.startsWith('X_VAR must be an integer'));
          assert.ok(s.length < 4 || !r.problem!.includes(s), 'the value is not echoed');
        }),
        { numRuns: 300 },
      );
    });

    it('envBool and envList never throw and classify every input', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 30 }), (s) => {
          const b = envBool({ B: s }, 'B');
          if (s === '') assert.deepEqual(b, {});
          else assert.ok(b.value !== undefined || b.problem === 'B must be true or false');
          const l = envList({ L: s }, 'L', 4);
          if (l.value !== undefined) {
            assert.ok(l.value.length >= 1 && l.value.length <= 4);
            for (const item of l.value) assert.ok(item.length > 0 && item === item.trim());
          }
        }),
        { numRuns: 400 },
      );
    });

    it('TKMS_LISTEN: any list of valid multiaddrs, with spaces around commas, round-trips', () => {
      const addr = fc.tuple(fc.constantFrom('ip4', 'ip6', 'dns4'), fc.integer({ min: 1, max: 65535 }), fc.nat(255)).map(([proto, port, x]) =>
        proto === 'ip4' ? `/ip4/10.0.${x}.1/tcp/${port}` : proto === 'ip6' ? `/ip6/fd00::${x.toString(16)}/tcp/${port}` : `/dns4/n${x}.example.org/tcp/${port}`,
      );
      fc.assert(
        fc.property(fc.array(addr, { minLength: 1, maxLength: 8 }), fc.array(fc.constantFrom('', ' ', '  '), { minLength: 16, maxLength: 16 }), (list, pads) => {
          const text = list.map((a, i) => `${pads[2 * i]}${a}${pads[2 * i + 1]}`).join(',');
          const c = parseConfig({}, { baseDir: BASE, env: { ...FULL_ENV, TKMS_LISTEN: text } });
          assert.deepEqual(c.listen, list.map((a) => multiaddr(a).toString()));
        }),
        { numRuns: 200 },
      );
    });

    it('parseConfig and parseGatewayConfig: any values for any of their variables give a config or one bad_request listing problems', () => {
      const nodeVars = Object.keys(ENV_OVERRIDES);
      const gatewayVars = [...GATEWAY_ENV_VARS];
      const value = fc.oneof(fc.string({ maxLength: 24 }), fc.integer().map(String), fc.constantFrom('true', '0', '/ip4/1.2.3.4/tcp/1', '1.2.3.4:5', ''));
      fc.assert(
        fc.property(fc.dictionary(fc.constantFrom(...nodeVars), value), fc.dictionary(fc.constantFrom(...gatewayVars), value), (nodeEnv, gatewayEnv) => {
          for (const run of [() => parseConfig({}, { baseDir: BASE, env: { ...FULL_ENV, ...nodeEnv } }), () => parseGatewayConfig({}, BASE, gatewayEnv)]) {
            try {
              run();
            } catch (e) {
              assert.ok(isTkmsError(e, 'bad_request'), String(e));
              const problems = e.details?.problems as string[];
              assert.ok(Array.isArray(problems) && problems.length > 0);
              assert.equal(e.message.split('\n').length, problems.length + 1, 'one line per problem');
            }
          }
        }),
        { numRuns: 300 },
      );
    });
  });
});
