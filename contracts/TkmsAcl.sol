// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title tkms on-chain ACL
/// @notice Grants keyed by (handle, owner, grantee). Every tkms node reads `isGranted` at one block
/// number B named by the gateway, taking `owner` from the handle's own commitment; so writing under
/// an address is all an account can do, and nobody can grant access to somebody else's handle.
/// @dev Compiled for the Paris EVM (no PUSH0, no Cancun opcodes) so it runs on older dev chains too.
contract TkmsAcl {
    /// @notice Interface version; nodes refuse to start against any other.
    uint256 public constant VERSION = 1;

    struct GrantEntry {
        /// Unix seconds, compared with the block's timestamp; 0 = no grant.
        uint64 notAfter;
        /// The owner's epoch when the grant was made: revokeAll() moves the epoch on.
        uint64 epoch;
    }

    mapping(bytes32 => mapping(address => mapping(address => GrantEntry))) private grants;
    /// @notice Bumped by revokeAll(): grants made under an earlier epoch no longer count.
    mapping(address => uint64) public epochOf;
    /// owner => operator => 1 + the owner's epoch when approved (0: never approved or withdrawn).
    /// Bound to the epoch so that revokeAll(), the owner's panic button, also cuts every operator.
    mapping(address => mapping(address => uint64)) private operatorEpochPlusOne;
    /// @notice The owner a handle was registered by (zero when unregistered): only for isViewer.
    mapping(bytes32 => address) public ownerOf;

    event Granted(bytes32 indexed handle, address indexed owner, address indexed grantee, uint64 notAfter, uint64 epoch, address by);
    event Revoked(bytes32 indexed handle, address indexed owner, address indexed grantee, address by);
    event AllRevoked(address indexed owner, uint64 epoch);
    event OperatorSet(address indexed owner, address indexed operator, bool approved);
    event HandleRegistered(bytes32 indexed handle, address indexed owner);

    error NotOperator(address owner, address caller);
    error ZeroGrantee();
    error AlreadyExpired(uint64 notAfter);
    error HandleMismatch(bytes32 handle, bytes32 computed);
    error AlreadyRegistered(bytes32 handle, address owner);

    modifier onlyOperatorOf(address owner) {
        if (!isOperator(owner, msg.sender)) revert NotOperator(owner, msg.sender);
        _;
    }

    /// @notice Lets `grantee` decrypt `handle` of msg.sender until `notAfter` (unix seconds).
    function grant(bytes32 handle, address grantee, uint64 notAfter) external {
        _grant(handle, msg.sender, grantee, notAfter);
    }

    function revoke(bytes32 handle, address grantee) external {
        _revoke(handle, msg.sender, grantee);
    }

    function grantFor(address owner, bytes32 handle, address grantee, uint64 notAfter) external onlyOperatorOf(owner) {
        _grant(handle, owner, grantee, notAfter);
    }

    function revokeFor(address owner, bytes32 handle, address grantee) external onlyOperatorOf(owner) {
        _revoke(handle, owner, grantee);
    }

    /// @notice Approves (or withdraws) `operator` to grant and revoke under msg.sender, until the next revokeAll().
    function setOperator(address operator, bool approved) external {
        if (approved) operatorEpochPlusOne[msg.sender][operator] = epochOf[msg.sender] + 1;
        else delete operatorEpochPlusOne[msg.sender][operator];
        emit OperatorSet(msg.sender, operator, approved);
    }

    /// @notice Cancels every grant msg.sender has made, on every handle, and every operator approval, at once.
    function revokeAll() external {
        uint64 epoch = epochOf[msg.sender] + 1;
        epochOf[msg.sender] = epoch;
        emit AllRevoked(msg.sender, epoch);
    }

    /// @notice Whether `operator` may grant and revoke under `owner`: approved, and no revokeAll() since.
    function isOperator(address owner, address operator) public view returns (bool) {
        uint64 approvedAt = operatorEpochPlusOne[owner][operator];
        return approvedAt != 0 && approvedAt - 1 == epochOf[owner];
    }

    /// @notice True when `owner` granted `grantee` access to `handle`, the grant has not expired at this
    /// block's timestamp, and neither revoke nor revokeAll cancelled it since.
    function isGranted(bytes32 handle, address owner, address grantee) public view returns (bool) {
        GrantEntry memory g = grants[handle][owner][grantee];
        return g.notAfter != 0 && g.notAfter >= block.timestamp && g.epoch == epochOf[owner];
    }

    /// @notice The stored grant and whether it counts now (for listings).
    function grantOf(bytes32 handle, address owner, address grantee) external view returns (uint64 notAfter, uint64 epoch, bool live) {
        GrantEntry memory g = grants[handle][owner][grantee];
        return (g.notAfter, g.epoch, isGranted(handle, owner, grantee));
    }

    /// @notice Records msg.sender as the owner of a handle, proven from the handle's own commitment:
    /// handle = sha256(lp("tkms/handle/v1") ‖ lp(keyId) ‖ lp(K) ‖ lp(nonce) ‖ lp(ciphertextHash) ‖ lp(owner)),
    /// lp(x) = uint32be(len(x)) ‖ x. Only the committed owner can register, so nobody claims another's handle.
    function registerHandle(bytes32 handle, bytes calldata keyId, bytes calldata K, bytes12 nonce, bytes32 ciphertextHash) external {
        bytes32 computed = sha256(
            abi.encodePacked(
                uint32(14), "tkms/handle/v1",
                uint32(keyId.length), keyId,
                uint32(K.length), K,
                uint32(12), nonce,
                uint32(32), ciphertextHash,
                uint32(20), msg.sender
            )
        );
        if (computed != handle) revert HandleMismatch(handle, computed);
        address current = ownerOf[handle];
        if (current != address(0)) revert AlreadyRegistered(handle, current);
        ownerOf[handle] = msg.sender;
        emit HandleRegistered(handle, msg.sender);
    }

    /// @notice Nox's vocabulary: may `account` view `handle`? True for the registered owner and for
    /// anyone the owner granted. False for handles nobody registered (their owner is not known here).
    function isViewer(bytes32 handle, address account) external view returns (bool) {
        address owner = ownerOf[handle];
        if (owner == address(0)) return false;
        return account == owner || isGranted(handle, owner, account);
    }

    function _grant(bytes32 handle, address owner, address grantee, uint64 notAfter) private {
        if (grantee == address(0)) revert ZeroGrantee();
        if (notAfter < block.timestamp) revert AlreadyExpired(notAfter);
        uint64 epoch = epochOf[owner];
        grants[handle][owner][grantee] = GrantEntry(notAfter, epoch);
        emit Granted(handle, owner, grantee, notAfter, epoch, msg.sender);
    }

    function _revoke(bytes32 handle, address owner, address grantee) private {
        delete grants[handle][owner][grantee];
        emit Revoked(handle, owner, grantee, msg.sender);
    }
}
