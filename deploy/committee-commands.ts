import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { multiaddr } from '@multiformats/multiaddr';
import { TkmsError } from '../core/index.ts';
import { loadCommitteeFile, parseCommittee, refusePlaceholderCommitteeId, type Committee } from '../net/committee.ts';
import { committeeFingerprint } from '../node/status.ts';
import { UsageError, type CommandRun } from '../scripts/cli/command.ts';

/** What the commands declared in deploy/committee-cli.ts do. */

/** Parses "<id>=<multiaddr ending in /p2p/<peerId>>" into its parts (the /p2p part removed from the address). */
function parseMemberArg(text: string): { id: number; peerId: string; multiaddr: string } {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`--member "${text}" must look like 1=/ip4/10.0.0.1/tcp/9000/p2p/12D3KooW…`);
  const idText = text.slice(0, eq);
  if (!/^[0-9]{1,5}$/.test(idText)) throw new UsageError(`--member: the id before "=" must be an integer in 1..65535`);
  let ma;
  try {
    ma = multiaddr(text.slice(eq + 1));
  } catch {
    throw new UsageError(`--member ${idText}: "${text.slice(eq + 1)}" is not a valid multiaddr`);
  }
  const components = ma.getComponents();
  const p2p = components.filter((c) => c.name === 'p2p');
  if (p2p.length !== 1 || p2p[0]!.value === undefined || components[components.length - 1]!.name !== 'p2p') {
    throw new UsageError(`--member ${idText}: the multiaddr must end with /p2p/<peer id> (as "tkms node init" prints it)`);
  }
  const address = ma.toString().slice(0, ma.toString().lastIndexOf('/p2p/'));
  if (address.length === 0) throw new UsageError(`--member ${idText}: the multiaddr needs an address before /p2p/`);
  return { id: Number(idText), peerId: p2p[0]!.value, multiaddr: address };
}

/** `name` plus 40 random bits: two deployments named alike still get different ids (and signing domains). */
function uniqueCommitteeId(name: string): string {
  return `${name}-${randomBytes(5).toString('hex')}`;
}

/** Builds and validates a committee from --member arguments (same id repeated = more addresses). */
function buildCommittee(committeeId: string, t: number, members: string[]): Committee {
  const byId = new Map<number, { id: number; peerId: string; multiaddrs: string[] }>();
  for (const arg of members) {
    const m = parseMemberArg(arg);
    const prev = byId.get(m.id);
    if (prev === undefined) byId.set(m.id, { id: m.id, peerId: m.peerId, multiaddrs: [m.multiaddr] });
    else if (prev.peerId !== m.peerId) throw new UsageError(`--member ${m.id} is given with two different peer ids`);
    else prev.multiaddrs.push(m.multiaddr);
  }
  return parseCommittee({ committeeId, t, members: [...byId.values()].sort((a, b) => a.id - b.id) });
}

function committeeJson(c: Committee): string {
  return `${JSON.stringify({ committeeId: c.committeeId, t: c.t, members: c.members.map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: m.multiaddrs })) }, null, 2)}\n`;
}

function describe(c: Committee, file: string): string {
  const lines = [
    `committee:   ${c.committeeId} (${file})`,
    `threshold:   ${c.t} of ${c.members.length} (any ${c.t} members decrypt; ${c.members.length - c.t} may be down)`,
    `fingerprint: ${committeeFingerprint(c)}`,
    ...c.members.map((m) => `member ${m.id}:  ${m.peerId}  ${m.multiaddrs.join(' ')}`),
  ];
  return `${lines.join('\n')}\n`;
}

export const committeeNew: CommandRun<{ id: string; exactId?: true; t: number; member: string[]; out: string; json?: true }> = async (args) => {
  const committee = buildCommittee(args.exactId === true ? args.id : uniqueCommitteeId(args.id), args.t, args.member);
  refusePlaceholderCommitteeId(committee.committeeId);
  const handle = await open(args.out, 'wx', 0o644).catch((e: NodeJS.ErrnoException) => {
    throw new TkmsError(e.code === 'EEXIST' ? 'conflict' : 'bad_request', e.code === 'EEXIST' ? `${args.out} already exists; refusing to overwrite it` : `cannot create ${args.out}: ${e.code ?? 'error'}`);
  });
  try {
    await handle.writeFile(committeeJson(committee));
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (args.json) process.stdout.write(`${JSON.stringify({ file: args.out, fingerprint: committeeFingerprint(committee) })}\n`);
  else process.stdout.write(describe(committee, args.out));
  return 0;
};

export const committeeShow: CommandRun<{ file: string; json?: true }> = async (args) => {
  const committee = await loadCommitteeFile(args.file);
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ ...JSON.parse(committeeJson(committee)), fingerprint: committeeFingerprint(committee) })}\n`);
  } else process.stdout.write(describe(committee, args.file));
  return 0;
};
