import { Option } from 'commander';
import { integerIn, jsonOption, positiveUpTo, type TkmsCommand } from '../scripts/cli/command.ts';

/**
 * `tkms account|encrypt|grant|revoke|decrypt|sign`: the client library on the command line. This
 * file declares the commands; client/cli-commands.ts (and client/sign-cli-commands.ts), loaded when
 * one runs, implements them.
 */

/** Options of every command that asks a gateway. */
export interface GatewayCommandOptions {
  gateway: string;
  insecure?: true;
  committee?: string;
  json?: true;
}

/** Options of every command that signs requests to a gateway. */
export interface ClientCommandOptions extends GatewayCommandOptions {
  account: string;
  passwordFile?: string;
}

/** --password-file, shared by "account new" (to write) and every command that reads an account. */
function passwordFileOption(): Option {
  return new Option('--password-file <file>', 'file holding the account password (else asked on the terminal)').env('TKMS_ACCOUNT_PASSWORD_FILE');
}

export function withGatewayOptions(cmd: TkmsCommand): TkmsCommand {
  return cmd
    .addOption(
      new Option('--gateway <url>', 'gateway URL; https:// for a remote gateway: plain http:// is refused unless the host is loopback or --insecure is given')
        .env('TKMS_GATEWAY_URL')
        .default('http://127.0.0.1:8080'),
    )
    .addOption(new Option('--insecure', 'allow plain http:// to a non-loopback gateway (plaintexts and signed requests then cross the network unencrypted)'))
    .addOption(
      new Option('--committee <file>', "the committee file: pins the member keys the key's DKG is checked against and the committee id every signature is made for").env(
        'TKMS_COMMITTEE_FILE',
      ),
    )
    .addOption(jsonOption());
}

export function withClientOptions(cmd: TkmsCommand): TkmsCommand {
  return withGatewayOptions(
    cmd.addOption(new Option('--account <file>', 'account file from "tkms account new"').env('TKMS_ACCOUNT_FILE').makeOptionMandatory()).addOption(passwordFileOption()),
  );
}

/** Options of the commands that send a transaction to the TkmsAcl contract instead of the gateway. */
export interface ChainCommandOptions {
  chain?: true;
  rpcUrl?: string;
  contract?: string;
  chainId?: number;
  devnet?: string;
}

/** The flags naming the chain; with --devnet, RPC URL, chain id and contract come from that directory. */
function withChainOptions(cmd: TkmsCommand, what: string): TkmsCommand {
  return cmd
    .addOption(new Option('--chain', `${what} in the TkmsAcl contract: the account sends the transaction (it needs gas money) and the command waits for its block`))
    .addOption(new Option('--rpc-url <url>', 'JSON-RPC URL of the chain (with --chain)').env('TKMS_ACL_RPC_URL'))
    .addOption(new Option('--contract <address>', 'address of the TkmsAcl contract (with --chain)').env('TKMS_ACL_CONTRACT'))
    .addOption(new Option('--chain-id <id>', 'refuse to sign unless the RPC serves this chain (with --chain)').env('TKMS_ACL_CHAIN_ID').argParser(integerIn(1, Number.MAX_SAFE_INTEGER)))
    .addOption(new Option('--devnet <dir>', 'take RPC URL, chain id and contract from the directory of a running "tkms devnet --chain" (with --chain)'));
}

/** --owner: act as an operator the owner approved (grantFor / revokeFor). */
function ownerOption(): Option {
  return new Option('--owner <address>', 'send as an operator the owner approved with setOperator, for this owner (with --chain)');
}

const load = () => import('./cli-commands.ts');

export function registerClientCommands(program: TkmsCommand): void {
  const account = program
    .command('account')
    .description('create an account (secp256k1 key, Ethereum address) for signing requests')
    .examples('tkms account new --out alice.json');
  account
    .command('new')
    .description('create an account; --out writes it as an encrypted Ethereum keystore v3 file (mode 0600, never overwritten)')
    .addOption(new Option('--out <file>', 'write the account to this file, encrypted under a password (without --out the secret key is printed once)'))
    .addOption(passwordFileOption())
    .addOption(jsonOption())
    .examples('tkms account new --out alice.json', 'TKMS_ACCOUNT_PASSWORD_FILE=pw.txt tkms account new --out bob.json --json')
    .lazyAction(async () => (await load()).accountNew);

  withClientOptions(
    program
      .command('encrypt')
      .description('encrypt to a network key and store the ciphertext; prints the handle')
      .addOption(new Option('--key <keyId>', 'the network key to encrypt to').makeOptionMandatory())
      .addOption(new Option('--text <string>', 'the plaintext').conflicts('in'))
      .addOption(new Option('--in <file>', 'read the plaintext from a file ("-": standard input)'))
      .addOption(new Option('--local', 'encrypt here and only register the ciphertext, so the gateway never sees the plaintext (needs --committee)')),
  )
    .examples(
      'tkms encrypt --account alice.json --key default --text "hello"',
      'tar c notes | tkms encrypt --account alice.json --key default --in - --local --committee committee.json --json',
    )
    .lazyAction(async () => (await load()).encrypt);

  withChainOptions(
    withClientOptions(
      program
        .command('grant')
        .description('grant another account the right to decrypt a handle: a signed grant through the gateway, or with --chain a grant in the TkmsAcl contract')
        .addOption(new Option('--handle <handle>', 'the handle "tkms encrypt" printed').makeOptionMandatory())
        .addOption(new Option('--to <address>', "the grantee's address (0x + 40 hex)").makeOptionMandatory())
        .addOption(new Option('--days <n>', 'how long the grant is valid').argParser(positiveUpTo(36_500, 'days')).default(30)),
    ),
    'grant',
  )
    .addOption(ownerOption())
    .addHelpText('after', '\nA signed grant is revoked with "tkms revoke"; an on-chain grant with "tkms revoke --chain". Nodes honour\non-chain grants only when their acl.mode is "chain" or "either".')
    .examples(
      'tkms grant --account alice.json --handle 0x… --to 0xB0b… --days 7',
      'tkms grant --chain --devnet .devnet --account alice.json --handle 0x… --to 0xB0b…',
      'TKMS_ACL_RPC_URL=https://rpc.example TKMS_ACL_CONTRACT=0xAc1… tkms grant --chain --account alice.json --handle 0x… --to 0xB0b… --days 1',
    )
    .lazyAction(async () => (await load()).grant);

  withChainOptions(
    withClientOptions(
      program
        .command('revoke')
        .description('revoke a grant (reaches every node); exit 1 while fewer nodes than needed acknowledged it; with --chain, revoke an on-chain grant')
        .addOption(new Option('--handle <handle>', 'the handle').makeOptionMandatory())
        .addOption(new Option('--to <address>', 'the grantee whose grant ends').makeOptionMandatory()),
    ),
    'revoke',
  )
    .addOption(ownerOption())
    .addHelpText('after', '\nAn on-chain revocation binds every node from the block the gateway names once that block reaches the\nrevocation\'s (after the gateway\'s confirmations), and at the latest maxBlockLag blocks after it.')
    .examples('tkms revoke --account alice.json --handle 0x… --to 0xB0b…', 'tkms revoke --chain --devnet .devnet --account alice.json --handle 0x… --to 0xB0b…')
    .lazyAction(async () => (await load()).revoke);

  withChainOptions(
    program
      .command('revoke-all')
      .description("end every on-chain grant the account made, at once (TkmsAcl.revokeAll moves the owner to a new epoch); signed grants are revoked one by one with \"tkms revoke\"")
      .addOption(new Option('--account <file>', 'account file of the owner').env('TKMS_ACCOUNT_FILE').makeOptionMandatory())
      .addOption(passwordFileOption())
      .addOption(jsonOption()),
    'end every grant',
  )
    .examples('tkms revoke-all --chain --devnet .devnet --account alice.json')
    .lazyAction(async () => (await load()).revokeAll);

  withChainOptions(
    program
      .command('operator')
      .description('approve (--add) or withdraw (--remove) an operator that may grant and revoke on chain under the account\'s name (TkmsAcl.setOperator)')
      .addOption(new Option('--account <file>', 'account file of the owner').env('TKMS_ACCOUNT_FILE').makeOptionMandatory())
      .addOption(new Option('--add <address>', 'the operator to approve').conflicts('remove'))
      .addOption(new Option('--remove <address>', 'the operator to withdraw'))
      .addOption(passwordFileOption())
      .addOption(jsonOption()),
    'approve or withdraw an operator',
  )
    .addHelpText('after', '\nAn approved operator grants and revokes for the owner with "tkms grant --chain --owner <owner>" and\n"tkms revoke --chain --owner <owner>"; "tkms revoke-all --chain" by the owner ends those grants too.')
    .examples(
      'tkms operator --chain --devnet .devnet --account alice.json --add 0xB0b…',
      'TKMS_ACL_RPC_URL=https://rpc.example TKMS_ACL_CONTRACT=0xAc1… tkms operator --chain --account alice.json --remove 0xB0b…',
    )
    .lazyAction(async () => (await load()).operator);

  withChainOptions(
    withClientOptions(
      program
        .command('register')
        .description("record the account as a handle's owner in the TkmsAcl contract (registerHandle), so that isViewer(handle, account) answers for it; the handle's key id, K, nonce and ciphertext hash come from the gateway")
        .addOption(new Option('--handle <handle>', 'the handle "tkms encrypt" printed').makeOptionMandatory()),
    ),
    'register the handle',
  )
    .addHelpText('after', '\nThe contract recomputes the handle from its parts with the sender as owner, so only the owner can register it.\nNodes do not need it: they take the owner from the handle itself. It is for applications that call isViewer.')
    .examples('tkms register --chain --devnet .devnet --account alice.json --handle 0x…', 'tkms register --chain --rpc-url https://rpc.example --contract 0xAc1… --gateway https://gw.example --account alice.json --handle 0x…')
    .lazyAction(async () => (await load()).register);

  withClientOptions(
    program
      .command('decrypt')
      .description('decrypt a handle: delegation to the nodes, proofs checked, combined locally')
      .addOption(new Option('--handle <handle>', 'the handle').makeOptionMandatory())
      .addOption(new Option('--out <file>', 'write the plaintext to this file (mode 0600) instead of standard output'))
      .addOption(new Option('--force', 'let --out replace an existing file')),
  )
    .examples('tkms decrypt --account bob.json --handle 0x…', 'tkms decrypt --account bob.json --handle 0x… --out notes.tar --force')
    .lazyAction(async () => (await load()).decrypt);

  const sign = withClientOptions(
    program
      .command('sign')
      .description("sign a message or a Bitcoin transaction with a SIGN_VERIFY key: t members sign (FROST), each checking the key's policy; the signature is verified here under the key's verified public key")
      .addOption(new Option('--key <idOrAlias>', 'the signing key: its id, or one of its aliases (alias/…)').makeOptionMandatory())
      .addOption(new Option('--message-file <file>', 'sign the bytes of this file as they are').conflicts(['message', 'psbt']))
      .addOption(new Option('--message <text>', 'sign the UTF-8 bytes of this text').conflicts('psbt'))
      .addOption(new Option('--psbt <file>', "sign every input of this PSBT file (binary, or base64 text) that spends the key's Taproot output, and finalise it here"))
      .addOption(new Option('--out <file>', 'also write the signature (a PSBT: the signed transaction) to this file as hex, one line, mode 0600'))
      .addOption(new Option('--force', 'let --out replace an existing file')),
  )
    .addHelpText('after', '\nGive exactly one of --message-file, --message or --psbt. --json prints the whole result: algorithm, key version,\npublic key, signatures, signers, blamed members and, for a PSBT, the finalised PSBT and the transaction.')
    .examples(
      'tkms sign --account alice.json --key alias/release --message-file release.tar.gz.sha256',
      'tkms sign --account alice.json --key hot-wallet --psbt spend.psbt --out spend.tx --json',
    )
    .lazyAction(async () => (await import('./sign-cli-commands.ts')).sign);
  // The size limits are core's, loaded only when `tkms sign` is about to run or show its help.
  program.hook('preSubcommand', async (_program, sub) => {
    if (sub !== sign) return;
    const [{ MAX_RAW_MESSAGE_BYTES }, { MAX_PSBT_BYTES }] = await Promise.all([import('../core/signing/sign-request.ts'), import('../core/signing/psbt.ts')]);
    const limits: Record<string, string> = { '--message-file': ` (1 to ${MAX_RAW_MESSAGE_BYTES} bytes)`, '--message': ` (1 to ${MAX_RAW_MESSAGE_BYTES} bytes)`, '--psbt': ` (a PSBT of at most ${MAX_PSBT_BYTES} bytes)` };
    for (const option of sign.options) if (option.long !== undefined && limits[option.long] !== undefined) option.description += limits[option.long];
  });
}
