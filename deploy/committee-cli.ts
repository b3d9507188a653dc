import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { multiaddr } from '@multiformats/multiaddr';
import { isTkmsError } from '../core/index.ts';
import { loadCommitteeFile, parseCommittee, refusePlaceholderCommitteeId, type Committee } from '../net/committee.ts';
import { committeeFingerprint } from '../node/status.ts';

/**
 * `tkms committee new|show`: write the committee file from what each operator's
 * `tkms node init` printed, and show a committee file with its fingerprint, which every
 * member compares (it must be the same file on every node and on the gateway).
 */
export const COMMITTEE_HELP = `Usage: tkms committee <command> [options]

Commands:
  new  --id <name> [--exact-id] --t <threshold> --member <id>=<multiaddr>/p2p/<peerId> [--member …]
       --out <file> [--json]
       write a committee file. The committee id is <name> plus a random suffix (every signature
       is bound to it, so no two deployments may share one); --exact-id keeps <name> as it is,
       e.g. to re-address the members of a running committee. Give one --member per node, with
       the member id (1..65535, the Shamir x-coordinate; never reuse one) and the multiaddr its
       operator's "tkms node init" printed, with the host replaced by an address the other
       members can reach. Several addresses for one member: repeat --member with the same id.
       Refuses to overwrite <file>.
  show --file <file> [--json]
       check a committee file and print its members, t and fingerprint

Every member and the gateway must load byte-for-byte the same committee: compare the
fingerprint ("tkms committee show", "tkms node status") across operators.
`;

const NEW_HELP = `Usage: tkms committee new --id <name> [--exact-id] --t <threshold> --member <id>=<multiaddr>/p2p/<peerId> [--member …] --out <file> [--json]

The committee id is <name>-<10 random hex digits>, unique to this deployment: signatures (grants,
revocations) are bound to it, so deployments must never share one. --exact-id uses <name> as the
id unchanged (only to rewrite the file of an existing committee, e.g. with new addresses). Ids
containing "example" are placeholders nodes refuse.

Example (three members, 2 of 3; the id becomes e.g. acme-prod-3f9c1a7be2):
  tkms committee new --id acme-prod --t 2 --out committee.json \\
    --member 1=/ip4/10.0.0.1/tcp/9000/p2p/12D3KooW… \\
    --member 2=/ip4/10.0.0.2/tcp/9000/p2p/12D3KooW… \\
    --member 3=/dns4/kms3.example.org/tcp/9000/p2p/12D3KooW…
`;
const SHOW_HELP = `Usage: tkms committee show --file <file> [--json]

Validates the committee file (as a node would at start) and prints the committee id, t, the
members with their peer ids and addresses, and the fingerprint (SHA-256 of its canonical form).
`;

class UsageError extends Error {}

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>): Record<string, string | boolean | string[] | undefined> {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | string[] | undefined
    >;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : 'bad arguments');
  }
}

/** Parses "<id>=<multiaddr ending in /p2p/<peerId>>" into its parts (the /p2p part removed from the address). */
export function parseMemberArg(text: string): { id: number; peerId: string; multiaddr: string } {
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
export function uniqueCommitteeId(name: string): string {
  return `${name}-${randomBytes(5).toString('hex')}`;
}

/** Builds and validates a committee from --member arguments (same id repeated = more addresses). */
export function buildCommittee(committeeId: string, t: number, members: string[]): Committee {
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

export function committeeJson(c: Committee): string {
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

async function committeeNew(argv: string[]): Promise<number> {
  const args = parse(argv, {
    id: { type: 'string' },
    'exact-id': { type: 'boolean' },
    t: { type: 'string' },
    member: { type: 'string', multiple: true },
    out: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (args.help) {
    process.stdout.write(NEW_HELP);
    return 0;
  }
  if (typeof args.id !== 'string') throw new UsageError('--id is required');
  if (typeof args.t !== 'string' || !/^[0-9]{1,5}$/.test(args.t)) throw new UsageError('--t is required (an integer)');
  if (typeof args.out !== 'string') throw new UsageError('--out is required');
  const members = (args.member as string[] | undefined) ?? [];
  if (members.length === 0) throw new UsageError('give at least one --member');
  const committee = buildCommittee(args['exact-id'] === true ? args.id : uniqueCommitteeId(args.id), Number(args.t), members);
  refusePlaceholderCommitteeId(committee.committeeId);
  const handle = await open(args.out, 'wx', 0o644).catch((e: NodeJS.ErrnoException) => {
    throw new Error(e.code === 'EEXIST' ? `${args.out} already exists; refusing to overwrite it` : `cannot create ${args.out}: ${e.code ?? 'error'}`);
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
}

async function committeeShow(argv: string[]): Promise<number> {
  const args = parse(argv, { file: { type: 'string' }, json: { type: 'boolean' } });
  if (args.help) {
    process.stdout.write(SHOW_HELP);
    return 0;
  }
  if (typeof args.file !== 'string') throw new UsageError('--file is required');
  const committee = await loadCommitteeFile(args.file);
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ ...JSON.parse(committeeJson(committee)), fingerprint: committeeFingerprint(committee) })}\n`);
  } else process.stdout.write(describe(committee, args.file));
  return 0;
}

export async function runCommitteeCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(COMMITTEE_HELP);
    return sub === undefined ? 2 : 0;
  }
  const fn = ({ new: committeeNew, show: committeeShow } as Record<string, (a: string[]) => Promise<number>>)[sub];
  if (fn === undefined) {
    process.stderr.write(`tkms committee: unknown command "${sub}"\n\n${COMMITTEE_HELP}`);
    return 2;
  }
  try {
    return await fn(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`tkms committee ${sub}: ${e.message} (see --help)\n`);
      return 2;
    }
    const code = isTkmsError(e) ? ` [${e.code}]` : '';
    process.stderr.write(`tkms committee ${sub}: error${code}: ${e instanceof Error ? e.message : 'unexpected error'}\n`);
    return 1;
  }
}
