import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { multiaddr } from '@multiformats/multiaddr';
import { committeeToJson } from '../core/committee.ts';
import { TkmsError } from '../core/index.ts';
import { loadCommitteeFile, parseCommittee, refusePlaceholderCommitteeId, type Committee } from '../net/committee.ts';
import { committeeFingerprint } from '../node/status.ts';
import { UsageError, type CommandRun } from '../scripts/cli/command.ts';
import { buildProposal, committeeFileText, describeChange, nextCommittee, proposalFileText, proposalIdHex, summarizeChange, type NewMember } from './committee-change.ts';

/** What the commands declared in deploy/committee-cli.ts do. */

/** Parses "<id>=<multiaddr ending in /p2p/<peerId>>" into its parts (the /p2p part removed from the address). */
function parseMemberArg(text: string): { id: number; peerId: string; multiaddr: string } {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`member "${text}" must look like 1=/ip4/10.0.0.1/tcp/9000/p2p/12D3KooW…`);
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

/** Members from --member (or --add) arguments: the same id repeated gives it more addresses. */
function membersFromArgs(args: string[], option: string): NewMember[] {
  const byId = new Map<number, NewMember>();
  for (const arg of args) {
    const m = parseMemberArg(arg);
    const prev = byId.get(m.id);
    if (prev === undefined) byId.set(m.id, { id: m.id, peerId: m.peerId, multiaddrs: [m.multiaddr] });
    else if (prev.peerId !== m.peerId) throw new UsageError(`${option} ${m.id} is given with two different peer ids`);
    else prev.multiaddrs.push(m.multiaddr);
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/** Builds and validates a committee from --member arguments. */
function buildCommittee(committeeId: string, t: number, members: string[]): Committee {
  return parseCommittee({ committeeId, t, members: membersFromArgs(members, '--member') });
}

function committeeJson(c: Committee): string {
  return `${JSON.stringify({ committeeId: c.committeeId, t: c.t, members: c.members.map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: m.multiaddrs })) }, null, 2)}\n`;
}

function describe(c: Committee, file: string): string {
  const lines = [
    `committee:   ${c.committeeId} (${file})`,
    `epoch:       ${c.epoch}${c.refreshIntervalSeconds === undefined ? '' : ` (members refresh their shares every ${c.refreshIntervalSeconds} s)`}`,
    `threshold:   ${c.t} of ${c.members.length} (any ${c.t} members decrypt; ${c.members.length - c.t} may be down)`,
    `fingerprint: ${committeeFingerprint(c)}`,
    ...c.members.map((m) => `member ${m.id}:  ${m.peerId}  ${m.multiaddrs.join(' ')}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** Writes a new file (never over an existing one) and syncs it. */
async function createFile(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx', 0o644).catch((e: NodeJS.ErrnoException) => {
    throw new TkmsError(e.code === 'EEXIST' ? 'conflict' : 'bad_request', e.code === 'EEXIST' ? `${path} already exists; refusing to overwrite it` : `cannot create ${path}: ${e.code ?? 'error'}`);
  });
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export const committeeNew: CommandRun<{ id: string; exactId?: true; t: number; member: string[]; out: string; json?: true }> = async (args) => {
  const committee = buildCommittee(args.exactId === true ? args.id : uniqueCommitteeId(args.id), args.t, args.member);
  refusePlaceholderCommitteeId(committee.committeeId);
  await createFile(args.out, committeeJson(committee));
  if (args.json) process.stdout.write(`${JSON.stringify({ file: args.out, fingerprint: committeeFingerprint(committee) })}\n`);
  else process.stdout.write(describe(committee, args.out));
  return 0;
};

export const committeeShow: CommandRun<{ file: string; json?: true }> = async (args) => {
  const committee = await loadCommitteeFile(args.file);
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ ...committeeToJson(committee), fingerprint: committeeFingerprint(committee) })}\n`);
  } else process.stdout.write(describe(committee, args.file));
  return 0;
};

export const committeeNext: CommandRun<{ from: string; add?: string[]; remove?: number[]; t?: number; refreshInterval?: number; out: string; json?: true }> = async (args) => {
  const from = await loadCommitteeFile(args.from);
  const refresh = args.refreshInterval === undefined ? {} : { refreshIntervalSeconds: args.refreshInterval === 0 ? null : args.refreshInterval };
  const to = nextCommittee(from, {
    add: membersFromArgs(args.add ?? [], '--add'),
    remove: args.remove ?? [],
    ...(args.t !== undefined ? { t: args.t } : {}),
    ...refresh,
  });
  await createFile(args.out, committeeFileText(to));
  const summary = summarizeChange(from, to);
  if (args.json) process.stdout.write(`${JSON.stringify({ file: args.out, fingerprint: committeeFingerprint(to), change: summary })}\n`);
  else {
    process.stdout.write(describe(to, args.out));
    process.stdout.write(`${describeChange(summary).join('\n')}\n`);
    process.stdout.write(`next:        tkms committee propose-reshare --from ${args.from} --to ${args.out} --admin <a member's admin URL> --out <proposal file>\n`);
  }
  return 0;
};

async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new TkmsError('bad_request', `${what} ${path} is not valid JSON`);
  }
}

/** Every key a member holds, and a check that it serves the epoch the proposal leaves. */
async function keysOfNode(admin: URL, fromEpoch: number): Promise<string[]> {
  const { adminError, adminRequest } = await import('../node/cli-commands.ts');
  const keys = await adminRequest(admin, 'GET', '/admin/keys');
  if (keys.status !== 200) throw adminError(keys.json, keys.status);
  const list = keys.json.keys;
  if (!Array.isArray(list)) throw new TkmsError('internal', `${admin.origin}/admin/keys answered without a key list`);
  const reshare = await adminRequest(admin, 'GET', '/admin/reshare');
  if (reshare.status === 200 && typeof reshare.json.epoch === 'number' && reshare.json.epoch !== fromEpoch) {
    throw new TkmsError('stale_epoch', `the node at ${admin.origin} serves epoch ${reshare.json.epoch}, but --from is the committee of epoch ${fromEpoch}: propose from the committee the nodes serve`);
  }
  return list.map((k: { keyId?: unknown }) => String(k.keyId));
}

export const committeeProposeReshare: CommandRun<{ from: string; to: string; admin?: URL; keys?: string[]; out: string; json?: true }> = async (args) => {
  if (args.admin === undefined && args.keys === undefined) throw new UsageError('give --admin (reshare every key a member holds) or --keys');
  const fromJson = await readJsonFile(args.from, 'committee file');
  const toJson = await readJsonFile(args.to, 'committee file');
  const from = parseCommittee(fromJson);
  const keyIds = args.keys ?? (await keysOfNode(args.admin!, from.epoch));
  const proposal = buildProposal(fromJson, toJson, keyIds);
  await createFile(args.out, proposalFileText(proposal));
  const id = proposalIdHex(proposal);
  const summary = summarizeChange(proposal.from, proposal.to);
  if (args.json) process.stdout.write(`${JSON.stringify({ file: args.out, proposalId: id, keyIds: proposal.keyIds, change: summary })}\n`);
  else {
    const lines = [
      `proposal:    ${args.out}`,
      `proposal id: ${id}`,
      ...describeChange(summary),
      `keys:        ${proposal.keyIds.join(', ')}`,
      `next:        send ${args.out} to every operator of both committees; each checks the proposal id and runs`,
      `             tkms node approve --config <their node config> ${args.out}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return 0;
};
