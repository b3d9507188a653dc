export { accountFromSecretKey, generateAccount, type Account } from './account.ts';
export { TkmsClient } from './client.ts';
export type { DecryptResult, HandleInfo, NodeMisbehaviour, RevokeResult, TkmsClientOptions, VerifiedKey } from './client-types.ts';
export { GatewayHttp } from './gateway-http.ts';
export { recoverFromEpochs, recoverSharedSecret, type EpochRecoverInput, type RecoveredSecret, type RejectedPartial, type WrappedPartial } from './partials.ts';
export { followKey, pinnedMembership, type EpochShares, type KeyEpochs } from './epochs.ts';
export {
  fromEip1193,
  fromEthers,
  fromViem,
  type Eip1193Provider,
  type Eip712Signer,
  type EthersTypedDataSigner,
  type ViemTypedDataAccount,
} from './signer.ts';
export type { TypedData, TypedDataDomain, TypedDataField } from '../core/typed-data.ts';
export { memberKeysHex, parseCommittee, parseCommitteeJson, pinnedClientOptions, type Committee, type CommitteeMember } from '../core/committee.ts';
export { KeyAdmin, type CreateKeyOptions, type DeletionWindow, type KeyAdminOptions, type KeyHistoryPage, type KeyListFilter, type KeyPolicyAnswer } from './key-admin.ts';
export type { KeyChangeResult, KeyVersionView, KeyView } from './key-view.ts';
export { signDecryptApproval, type DecryptApproval, type UnsignedDecryptApproval } from '../core/keys/decrypt-approval.ts';
export type { SignatureResult } from './signing.ts';
