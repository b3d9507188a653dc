import { join } from 'node:path';
import { TkmsError, utf8ToBytes } from '../core/index.ts';
import { libp2pCommitteeDecoders } from '../net/committee.ts';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import { MAX_DKG_VOTE_FILE_BYTES, dkgVoteFileName, parseDkgVoteFile, parseDkgVoteFileName } from './dkg-state.ts';
import {
  MAX_APPROVALS,
  MAX_APPROVAL_FILE_BYTES,
  MAX_VOTES,
  MAX_VOTE_FILE_BYTES,
  approvalFileName,
  assertProposalId,
  parseApprovalFileName,
  parseApprovalRecord,
  parseVoteFileName,
  parseVoteRecord,
  sameBytes,
  voteFileName,
  type ApprovalRecord,
} from './epoch-files.ts';
import { isPlainObject } from './keystore-format.ts';
import { listDirectory, publishNewFile, readBounded } from './keystore-fs.ts';
import { described, entries, exactFields, fileText, isDirectory, readText, uniqueKeyId } from './backup-files.ts';

/**
 * The vote locks a keystore backup carries (version 4), and their restore. A member votes in one
 * DKG session per key id, and for one proposal per epoch left, ever: that is what makes a DKG or
 * handover certificate unique. The locks are files written before the vote is sent:
 * - `<stateDir>/dkg/vote.<keyId>.json` (node/dkg-state.ts), outside the keystore directory;
 * - in the keystore directory, the approval ledger (node/epoch-approvals.ts): `approval.<seq>.json`
 *   (an approval names the proposal, hence the epoch it leaves) and `vote.<proposal>.json`.
 * A node restored without them would vote a second time. They are public (a vote is a signature),
 * so they travel as the files' exact text, and are installed as those same bytes, never over
 * different ones: every conflict is found before anything is written.
 */

/** DKG votes in one backup: one per key id ever voted for, failed DKGs included. */
export const MAX_BACKUP_DKG_VOTES = 4096;
/** Approval records in one backup: the ledger keeps MAX_APPROVALS proposals, each approved and perhaps cancelled. */
export const MAX_BACKUP_APPROVALS = 2 * MAX_APPROVALS;
/** Reshare votes in one backup: the ledger keeps at most this many. */
export const MAX_BACKUP_RESHARE_VOTES = MAX_VOTES;

export interface BackupVoteLocks {
  dkgVotes: { keyId: string; sessionId: string; text: string }[];
  approvals: { record: ApprovalRecord; text: string }[];
  reshareVotes: { proposalId: string; text: string }[];
}

/** Where a node keeps its vote locks. */
export interface VoteLockDirs {
  keystoreDir: string;
  /** `<stateDir>/dkg`. */
  dkgStateDir: string;
}

function conflict(message: string, details: Record<string, unknown>): TkmsError {
  return new TkmsError('vote_lock_conflict', message, details);
}

/** A node's vote locks as they are on disk (each file read once; one removed meanwhile is skipped). Parsed: a broken one is keystore_corrupt. */
export async function readVoteLocks(dirs: VoteLockDirs): Promise<BackupVoteLocks> {
  const locks: BackupVoteLocks = { dkgVotes: [], approvals: [], reshareVotes: [] };
  if (await isDirectory(dirs.dkgStateDir)) {
    for (const name of (await listDirectory(dirs.dkgStateDir)).sort()) {
      const keyId = parseDkgVoteFileName(name);
      if (keyId === undefined) continue;
      const file = await readText(dirs.dkgStateDir, name, MAX_DKG_VOTE_FILE_BYTES);
      if (file !== undefined) locks.dkgVotes.push({ keyId, sessionId: parseDkgVoteFile(file.bytes, keyId).sessionId, text: file.text });
    }
  }
  const ledger = await readLedger(dirs.keystoreDir);
  locks.approvals = [...ledger.approvals.values()];
  locks.reshareVotes = [...ledger.votes.values()];
  if (locks.dkgVotes.length > MAX_BACKUP_DKG_VOTES) throw new TkmsError('payload_too_large', `more than ${MAX_BACKUP_DKG_VOTES} DKG votes`);
  if (locks.approvals.length > MAX_BACKUP_APPROVALS) throw new TkmsError('payload_too_large', `more than ${MAX_BACKUP_APPROVALS} approval records`);
  if (locks.reshareVotes.length > MAX_BACKUP_RESHARE_VOTES) throw new TkmsError('payload_too_large', `more than ${MAX_BACKUP_RESHARE_VOTES} reshare votes`);
  return locks;
}

interface Ledger {
  approvals: Map<number, BackupVoteLocks['approvals'][number]>;
  votes: Map<string, BackupVoteLocks['reshareVotes'][number]>;
}

/** The approval ledger's files in a keystore directory, parsed as the node parses them (node/epoch-approvals.ts). */
async function readLedger(keystoreDir: string): Promise<Ledger> {
  const ledger: Ledger = { approvals: new Map(), votes: new Map() };
  if (!(await isDirectory(keystoreDir))) return ledger;
  for (const name of (await listDirectory(keystoreDir)).sort()) {
    const seq = parseApprovalFileName(name);
    const proposalId = parseVoteFileName(name);
    if (seq !== undefined) {
      const file = await readText(keystoreDir, name, MAX_APPROVAL_FILE_BYTES);
      if (file !== undefined) ledger.approvals.set(seq, { record: parseApprovalRecord(file.bytes, seq, libp2pCommitteeDecoders), text: file.text });
    } else if (proposalId !== undefined) {
      const file = await readText(keystoreDir, name, MAX_VOTE_FILE_BYTES);
      if (file !== undefined) {
        parseVoteRecord(file.bytes, proposalId);
        ledger.votes.set(proposalId, { proposalId, text: file.text });
      }
    }
  }
  return ledger;
}

/** The backup's `voteLocks` field: each lock as its file's exact text. */
export function voteLocksToJson(locks: BackupVoteLocks): Record<string, unknown> {
  return {
    dkgVotes: locks.dkgVotes.map((v) => ({ keyId: v.keyId, file: v.text })),
    approvals: locks.approvals.map((a) => ({ seq: a.record.seq, file: a.text })),
    reshareVotes: locks.reshareVotes.map((v) => ({ proposalId: v.proposalId, file: v.text })),
  };
}

// ---------------------------------------------------------------------------
// Reading a backup's locks

/** Thrown as plain Errors: the backup parser types them (bad_request, with the field's path). */
/** Structural parse of a backup's `voteLocks`, each file parsed as the node would read it; a mistake is a plain Error naming the entry. */
export function parseVoteLocks(value: unknown): BackupVoteLocks {
  if (!isPlainObject(value)) throw new Error('voteLocks must be an object');
  exactFields(value, ['dkgVotes', 'approvals', 'reshareVotes'], 'voteLocks');
  const locks: BackupVoteLocks = { dkgVotes: [], approvals: [], reshareVotes: [] };
  const keyIds = new Set<string>();
  entries(value.dkgVotes, 'voteLocks.dkgVotes', MAX_BACKUP_DKG_VOTES).forEach((entry, i) => {
    const what = `voteLocks.dkgVotes[${i}]`;
    exactFields(entry, ['keyId', 'file'], what);
    const keyId = uniqueKeyId(entry, what, keyIds);
    const { text, bytes } = fileText(entry, MAX_DKG_VOTE_FILE_BYTES, what);
    try {
      locks.dkgVotes.push({ keyId, sessionId: parseDkgVoteFile(bytes, keyId).sessionId, text });
    } catch (e) {
      throw described(what, e);
    }
  });
  const seqs = new Set<number>();
  entries(value.approvals, 'voteLocks.approvals', MAX_BACKUP_APPROVALS).forEach((entry, i) => {
    const what = `voteLocks.approvals[${i}]`;
    exactFields(entry, ['seq', 'file'], what);
    const seq = entry.seq;
    if (typeof seq !== 'number' || parseApprovalFileName(approvalFileName(seq)) !== seq) throw new Error(`${what}.seq must be a record number`);
    if (seqs.has(seq)) throw new Error(`${what}: record ${seq} appears twice`);
    seqs.add(seq);
    const { text, bytes } = fileText(entry, MAX_APPROVAL_FILE_BYTES, what);
    try {
      locks.approvals.push({ record: parseApprovalRecord(bytes, seq, libp2pCommitteeDecoders), text });
    } catch (e) {
      throw described(what, e);
    }
  });
  const proposalIds = new Set<string>();
  entries(value.reshareVotes, 'voteLocks.reshareVotes', MAX_BACKUP_RESHARE_VOTES).forEach((entry, i) => {
    const what = `voteLocks.reshareVotes[${i}]`;
    exactFields(entry, ['proposalId', 'file'], what);
    try {
      assertProposalId(entry.proposalId);
    } catch {
      throw new Error(`${what}.proposalId is not a proposal id`);
    }
    const proposalId = entry.proposalId;
    if (proposalIds.has(proposalId)) throw new Error(`${what}: proposal ${proposalId} appears twice`);
    proposalIds.add(proposalId);
    const { text, bytes } = fileText(entry, MAX_VOTE_FILE_BYTES, what);
    try {
      parseVoteRecord(bytes, proposalId);
    } catch (e) {
      throw described(what, e);
    }
    locks.reshareVotes.push({ proposalId, text });
  });
  return locks;
}

// ---------------------------------------------------------------------------
// Restoring

/**
 * Refuses (vote_lock_conflict, writing nothing) when the node already holds a lock the backup's
 * contradicts: a DKG vote of the same key id in another session (or other bytes), another vote for
 * the same proposal, a vote for another proposal leaving the same epoch of the same committee, an
 * approval record of the same number with other content, or a cancellation that would take effect
 * over a vote (a cancelled proposal's vote is pruned, and with it the lock).
 */
export async function checkVoteLocks(locks: BackupVoteLocks, dirs: VoteLockDirs): Promise<void> {
  const problems: string[] = [];
  const hasDkgState = await isDirectory(dirs.dkgStateDir);
  for (const vote of locks.dkgVotes) {
    const held = hasDkgState ? await readText(dirs.dkgStateDir, dkgVoteFileName(vote.keyId), MAX_DKG_VOTE_FILE_BYTES) : undefined;
    if (held === undefined || held.text === vote.text) continue;
    const sessionId = parseDkgVoteFile(held.bytes, vote.keyId).sessionId;
    problems.push(
      sessionId === vote.sessionId
        ? `key id ${vote.keyId}: this node holds another vote in DKG session ${sessionId}`
        : `key id ${vote.keyId}: this node voted in DKG session ${sessionId}, the backup in session ${vote.sessionId}`,
    );
  }
  const target = await readLedger(dirs.keystoreDir);
  for (const a of locks.approvals) {
    const held = target.approvals.get(a.record.seq);
    if (held !== undefined && held.text !== a.text) {
      problems.push(`approval record ${a.record.seq}: this node's is of proposal ${held.record.approval.proposalId} (${held.record.approval.status}), the backup's of proposal ${a.record.approval.proposalId} (${a.record.approval.status})`);
    }
  }
  for (const v of locks.reshareVotes) {
    const held = target.votes.get(v.proposalId);
    if (held !== undefined && held.text !== v.text) problems.push(`proposal ${v.proposalId}: this node holds another vote for it`);
  }
  // The union of both ledgers, as the node would read it once the backup's files are in place.
  const records = [...target.approvals.values(), ...locks.approvals].map((a) => a.record).sort((x, y) => x.seq - y.seq);
  const latest = new Map<string, ApprovalRecord>();
  for (const r of records) latest.set(r.approval.proposalId, r);
  const leaves = (proposalId: string): string | undefined => {
    const p = latest.get(proposalId)?.approval.proposal;
    return p === undefined ? undefined : `${p.from.committeeId} epoch ${p.from.epoch}`;
  };
  const backupVotes = new Set(locks.reshareVotes.map((v) => v.proposalId));
  for (const mine of target.votes.keys()) {
    for (const theirs of backupVotes) {
      if (mine === theirs) continue;
      const epoch = leaves(mine);
      if (epoch !== undefined && epoch === leaves(theirs)) problems.push(`${epoch}: this node voted for proposal ${mine}, the backup for proposal ${theirs}`);
    }
  }
  const latestOf = (ledger: Iterable<{ record: ApprovalRecord }>, proposalId: string): ApprovalRecord | undefined =>
    [...ledger].map((a) => a.record).filter((r) => r.approval.proposalId === proposalId).sort((x, y) => y.seq - x.seq)[0];
  for (const proposalId of new Set([...target.votes.keys(), ...backupVotes])) {
    const merged = latest.get(proposalId);
    const sides = [latestOf(target.approvals.values(), proposalId), latestOf(locks.approvals, proposalId)];
    if (merged?.approval.status === 'cancelled' && sides.some((r) => r?.approval.status === 'approved')) {
      problems.push(`proposal ${proposalId}: voted for, and the other ledger's record ${merged.seq} would cancel it`);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
    throw conflict(
      `restore refused, nothing installed: this node's vote locks contradict the backup's (${shown}). A vote is never withdrawn; restore onto this node only a backup of its own history, or restore onto an empty state and keystore directory`,
      { conflicts: problems.length },
    );
  }
}

/** Installs the locks checked by checkVoteLocks: each file published whole, never over another (a lock that appeared meanwhile must be the same). */
export async function installVoteLocks(locks: BackupVoteLocks, dirs: VoteLockDirs): Promise<void> {
  if (locks.dkgVotes.length > 0) await ensurePrivateDirectory(dirs.dkgStateDir, 'DKG state');
  for (const v of locks.dkgVotes) await installSame(dirs.dkgStateDir, dkgVoteFileName(v.keyId), v.text, MAX_DKG_VOTE_FILE_BYTES);
  // Approvals before votes: the ledger finds the epoch a vote leaves in its proposal's approval.
  for (const a of locks.approvals) await installSame(dirs.keystoreDir, approvalFileName(a.record.seq), a.text, MAX_APPROVAL_FILE_BYTES);
  for (const v of locks.reshareVotes) await installSame(dirs.keystoreDir, voteFileName(v.proposalId), v.text, MAX_VOTE_FILE_BYTES);
}

async function installSame(dir: string, name: string, text: string, maxBytes: number): Promise<void> {
  const bytes = utf8ToBytes(text);
  if ((await publishNewFile(dir, name, bytes)) === 'written') return;
  const held = await readBounded(join(dir, name), maxBytes, () => new TkmsError('keystore_corrupt', `${name} is not a regular file`));
  if (held === undefined || !sameBytes(held, bytes)) throw conflict(`${name} appeared with other content during the restore; a vote lock is never replaced`, { file: name });
}
