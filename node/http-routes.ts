import type { Server } from 'node:http';
import { Type } from 'typebox';
import { assertKeyId, keyIdField, TkmsError } from '../core/index.ts';
import type { Committee } from '../net/committee.ts';
import type { Route } from '../net/http.ts';
import { explainWith } from '../net/http-validation.ts';
import { type MemberConnections } from '../net/p2p.ts';
import { errorText } from '../core/errors.ts';
import type { DkgRunner } from './dkg-runner.ts';
import type { NodeMetrics } from './metrics.ts';

/** The node's HTTP routes (health, metrics) and its loopback admin routes (DKG proposals), as the daemon listens with them. */

/** A proposal file names two committees of up to 256 members each: more than the default 64 KiB. */
export const ADMIN_MAX_BODY_BYTES = 1024 * 1024;

/** `GET /health` counts the members of the committee served (a reshare changes them, and this node's id). */
export function healthRoute(served: () => { committee: Committee; selfId: number | undefined }, peerId: string, conns: MemberConnections, runner: DkgRunner): Route {
  return {
    method: 'GET',
    path: '/health',
    handler: () => {
      const { committee, selfId } = served();
      const peers = conns.connectedMembers();
      // The keystore is open whenever the daemon runs (it refuses to start otherwise).
      const ready = peers.length >= committee.t - 1;
      return {
        status: ready ? 200 : 503,
        json: {
          status: ready ? 'ready' : 'not_ready',
          reason: ready ? undefined : `connected to ${peers.length} members, need at least t - 1 = ${committee.t - 1}`,
          selfId: selfId ?? null,
          peerId,
          committeeId: committee.committeeId,
          epoch: committee.epoch,
          t: committee.t,
          n: committee.members.length,
          keystore: 'open',
          peersConnected: peers.length,
          peers,
          keys: runner.heldKeys().map((k) => k.keyId),
        },
      };
    },
  };
}

export function metricsRoute(metrics: NodeMetrics): Route {
  return {
    method: 'GET',
    path: '/metrics',
    handler: async () => ({ status: 200, text: await metrics.registry.metrics(), contentType: metrics.registry.contentType }),
  };
}

const proposedKeyId = keyIdField({ description: 'the key id of the DKG to start' });
/** The operator's `POST /admin/dkg` body: `{ "keyId": "…" }`, nothing else. */
const DKG_PROPOSAL_BODY = Type.Object({ keyId: explainWith(proposedKeyId.schema, proposedKeyId.explain) }, { additionalProperties: false });

export function adminRoutes(runner: DkgRunner): Route[] {
  return [
    {
      method: 'POST',
      path: '/admin/dkg',
      schema: { body: DKG_PROPOSAL_BODY },
      handler: (_req, _url, body) => ({ status: 202, json: runner.propose((body as { keyId: string }).keyId) }),
    },
    {
      method: 'GET',
      path: '/admin/dkg/{keyId}',
      handler: (_req, _url, _body, { keyId }) => {
        assertKeyId(keyId);
        return { status: 200, json: runner.status(keyId) };
      },
    },
    { method: 'GET', path: '/admin/keys', handler: () => ({ status: 200, json: { keys: runner.heldKeys() } }) },
  ];
}

/** Turns a listener's start failure into the error an operator reads ("cannot listen …: EADDRINUSE"). */
export async function listenOrExplain(what: string, start: () => Promise<Server>): Promise<Server> {
  try {
    return await start();
  } catch (e) {
    throw new TkmsError('unavailable', `cannot listen for ${what}: ${(e as NodeJS.ErrnoException).code ?? errorText(e)}`);
  }
}
