import assert from 'node:assert/strict';
import fc from 'fast-check';
import { matchPath, normalizeBasePath, routerPath } from '../../net/http.ts';

/**
 * The router's path matching: exact paths and "{name}" segments (percent-decoded)
 * of routes (matchPath also decides which methods a 405's Allow header lists); their translation into
 * fastify's route syntax; and base paths.
 */

describe('net/http matchPath', () => {
  describe('exact paths', () => {
    it('match only the identical path', () => {
      assert.deepEqual(matchPath('/health', '/health'), {});
      assert.deepEqual(matchPath('/v1/keys', '/v1/keys'), {});
      for (const p of ['/health/', '/healthz', '/Health', '/health/x', 'health', '', '/', '//health', '/health?x=1', '/heal%74h']) {
        assert.equal(matchPath('/health', p), undefined, p);
      }
      assert.equal(matchPath('/v1/keys', '/v1/keys/'), undefined);
      assert.equal(matchPath('/v1/keys', '/v1'), undefined);
    });
  });

  describe('{param} patterns', () => {
    it('bind each parameter to its segment', () => {
      assert.deepEqual(matchPath('/v1/keys/{keyId}', '/v1/keys/k1'), { keyId: 'k1' });
      assert.deepEqual(matchPath('/v1/handles/{handle}/grants/{grantee}', '/v1/handles/0xab/grants/0xcd'), { handle: '0xab', grantee: '0xcd' });
      assert.deepEqual(matchPath('/v1/handles/{handle}/delegate', '/v1/handles/h/delegate'), { handle: 'h' });
      assert.deepEqual(matchPath('/{a}/{b}', '/x/y'), { a: 'x', b: 'y' });
    });

    it('percent-decode the parameter (%XX, multi-byte UTF-8, an encoded slash stays inside the parameter)', () => {
      assert.deepEqual(matchPath('/v1/keys/{keyId}', '/v1/keys/%41b'), { keyId: 'Ab' });
      assert.deepEqual(matchPath('/v1/keys/{keyId}', '/v1/keys/a%20b'), { keyId: 'a b' });
      assert.deepEqual(matchPath('/v1/keys/{keyId}', '/v1/keys/%E2%9C%93'), { keyId: '✓' });
      assert.deepEqual(matchPath('/v1/keys/{keyId}', '/v1/keys/%F0%9D%84%9E'), { keyId: '𝄞' });
      assert.deepEqual(matchPath('/v1/keys/{keyId}', '/v1/keys/a%2Fb'), { keyId: 'a/b' });
      assert.deepEqual(matchPath('/v1/keys/{keyId}', '/v1/keys/%25'), { keyId: '%' });
      // Only parameters are decoded: literal segments compare raw.
      assert.equal(matchPath('/v1/keys/{keyId}', '/v%31/keys/k'), undefined);
    });

    it('refuse empty segments', () => {
      assert.equal(matchPath('/v1/keys/{keyId}', '/v1/keys/'), undefined);
      assert.equal(matchPath('/v1/handles/{handle}/grants', '/v1/handles//grants'), undefined);
      assert.equal(matchPath('/{a}/{b}', '/x/'), undefined);
      assert.equal(matchPath('/{a}/{b}', '//y'), undefined);
    });

    it('refuse bad %-encoding (truncated escapes, non-hex digits, invalid UTF-8)', () => {
      for (const seg of ['%', '%4', '%zz', 'a%', '%G0', '%E2%9C', '%FF', '%C0%80', '%ED%A0%80', '%80']) {
        assert.equal(matchPath('/v1/keys/{keyId}', `/v1/keys/${seg}`), undefined, seg);
      }
    });

    it('refuse a different number of segments or different literals', () => {
      assert.equal(matchPath('/v1/keys/{keyId}', '/v1/keys/a/b'), undefined);
      assert.equal(matchPath('/v1/keys/{keyId}', '/v1/keys'), undefined);
      assert.equal(matchPath('/v1/keys/{keyId}', '/v1/keys/a/'), undefined);
      assert.equal(matchPath('/v1/keys/{keyId}', '/v2/keys/a'), undefined);
      assert.equal(matchPath('/v1/handles/{handle}/grants', '/v1/handles/h/grant'), undefined);
      assert.equal(matchPath('/v1/handles/{handle}/grants', '/v1/handles/h/grants/x'), undefined);
    });
  });

  describe('properties', () => {
    const PATTERNS = ['/health', '/v1/keys', '/v1/keys/{keyId}', '/v1/handles/{handle}/grants/{grantee}', '/admin/dkg/', '/', '/{a}', '/{a}/{b}/', '{x}', ''];
    const segmentChar = fc.constantFrom(...'abcXYZ019-._~%/?#{}', '%2F', '%E2%9C%93', '%zz', '%', ' ', 'é', '💥', '\u0000', '\uD800');
    const pathArb = fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.array(segmentChar, { maxLength: 30 }).map((a) => `/${a.join('')}`));

    it('random paths never throw, and any match is a record of strings', () => {
      fc.assert(
        fc.property(fc.constantFrom(...PATTERNS), pathArb, (pattern, path) => {
          const res = matchPath(pattern, path);
          if (res !== undefined) {
            assert.equal(typeof res, 'object');
            for (const v of Object.values(res)) assert.equal(typeof v, 'string');
          }
        }),
        { numRuns: 2000 },
      );
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 30 }), pathArb, (pattern, path) => {
          matchPath(pattern, path);
        }),
        { numRuns: 1000 },
      );
    });

    it('a parameter survives encodeURIComponent → matchPath, and literals never bind parameters', () => {
      // encodeURIComponent throws on lone surrogates; those cannot come from a URL anyway.
      const value = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 });
      fc.assert(
        fc.property(value, value, (a, b) => {
          assert.deepEqual(matchPath('/v1/handles/{handle}/grants/{grantee}', `/v1/handles/${encodeURIComponent(a)}/grants/${encodeURIComponent(b)}`), { handle: a, grantee: b });
          // A literal pattern (encodeURIComponent leaves no "{") binds nothing and matches only itself.
          const literal = `/v1/${encodeURIComponent(a)}`;
          assert.deepEqual(matchPath(literal, literal), {});
          assert.equal(matchPath(literal, `/v1/${encodeURIComponent(b)}`) !== undefined, a === b);
        }),
        { numRuns: 500 },
      );
    });

    it('a pattern without "{" or a trailing "/" matches a path iff they are equal', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 20 }).filter((p) => !p.includes('{')), fc.string({ maxLength: 20 }), (pattern, path) => {
          assert.equal(matchPath(pattern, path) !== undefined, pattern === path);
          assert.deepEqual(matchPath(pattern, pattern), {});
        }),
        { numRuns: 500 },
      );
    });
  });

  describe('fastify route syntax and base paths', () => {
    it('routerPath: "{name}" segments become ":name"', () => {
      assert.equal(routerPath('/health'), '/health');
      assert.equal(routerPath('/v1/keys/{keyId}'), '/v1/keys/:keyId');
      assert.equal(routerPath('/v1/handles/{handle}/grants/{grantee}'), '/v1/handles/:handle/grants/:grantee');
    });

    it('normalizeBasePath: "" for the root, else a leading slash and no trailing one; anything else refused', () => {
      for (const root of [undefined, '/', '', '//']) assert.equal(normalizeBasePath(root), '', String(root));
      assert.equal(normalizeBasePath('/tkms'), '/tkms');
      assert.equal(normalizeBasePath('/tkms/'), '/tkms');
      assert.equal(normalizeBasePath('/a/b'), '/a/b');
      for (const bad of ['tkms', '/a//b', '/a?b', '/a#b', '/{x}', '/:x', '/a b', '/*']) assert.throws(() => normalizeBasePath(bad), { code: 'bad_request' }, bad);
    });
  });
});
