// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title ISignatureTransfer
 * @notice The SignatureTransfer half of Uniswap Permit2's interface, as far as x402 uses it: the
 *         same struct layouts, function signatures (so the same selectors), errors and events.
 */
interface ISignatureTransfer {
    /// @notice The token and amount a permit allows to be moved.
    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    /// @notice A signed permit for a single token transfer.
    struct PermitTransferFrom {
        TokenPermissions permitted;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice What the spender actually asks for: recipient and an amount up to the permitted one.
    struct SignatureTransferDetails {
        address to;
        uint256 requestedAmount;
    }

    /// @notice Thrown when the requested amount exceeds the permitted one.
    error InvalidAmount(uint256 maxAmount);

    event UnorderedNonceInvalidation(address indexed owner, uint256 word, uint256 mask);

    function nonceBitmap(address owner, uint256 wordPos) external view returns (uint256);

    function DOMAIN_SEPARATOR() external view returns (bytes32);

    function permitTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes calldata signature
    ) external;

    function permitWitnessTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external;

    function invalidateUnorderedNonces(uint256 wordPos, uint256 mask) external;
}

/**
 * @title Permit2
 * @notice A re-implementation of the SignatureTransfer part of Uniswap Permit2
 *         (canonical address 0x000000000022D473030F116dDEE9F6B43aC78BA3) for local chains, modelled
 *         on the public contract's behaviour: same EIP-712 domain ("Permit2", chainId,
 *         verifyingContract, no version), same type hashes, same unordered-nonce bitmap, same
 *         check order and the same custom errors.
 *
 * @dev Written to run from runtime bytecode placed with `anvil_setCode` at the canonical address:
 *      no constructor and no immutables (the public contract caches its domain separator in
 *      immutables; here it is computed on every call from `block.chainid` and `address(this)`,
 *      which yields the same value at the canonical address).
 *
 *      Left out on purpose (x402's proxies do not call them): the batch variants of
 *      permit(Witness)TransferFrom and the whole AllowanceTransfer half (approve, allowance,
 *      permit, transferFrom, lockdown, invalidateNonces).
 *
 *      Like the public contract: signatures are not checked for low s (the nonce stops replays),
 *      64-byte EIP-2098 compact signatures are accepted, and the token transfer is solmate's
 *      safeTransferFrom (no check that the token has code; any failure is "TRANSFER_FROM_FAILED").
 */
contract Permit2 is ISignatureTransfer {
    // ---------------------------------------------------------------- errors (same as Permit2's)

    /// @notice Thrown when the permit's deadline has passed (PermitErrors.sol).
    error SignatureExpired(uint256 signatureDeadline);
    /// @notice Thrown when the nonce was already used or invalidated (PermitErrors.sol).
    error InvalidNonce();
    /// @notice SignatureVerification.sol: an ECDSA signature neither 65 nor 64 bytes long.
    error InvalidSignatureLength();
    /// @notice SignatureVerification.sol: ecrecover returned the zero address.
    error InvalidSignature();
    /// @notice SignatureVerification.sol: the recovered signer is not the owner.
    error InvalidSigner();
    /// @notice SignatureVerification.sol: an owner with code did not return the ERC-1271 magic value.
    error InvalidContractSignature();

    // ---------------------------------------------------------------- EIP-712 (PermitHash.sol, EIP712.sol)
    // Private: on the public contract these are library constants, not getters of Permit2.

    bytes32 private constant _TOKEN_PERMISSIONS_TYPEHASH = keccak256("TokenPermissions(address token,uint256 amount)");

    bytes32 private constant _PERMIT_TRANSFER_FROM_TYPEHASH = keccak256(
        "PermitTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline)TokenPermissions(address token,uint256 amount)"
    );

    /// @notice The witness type hash is keccak256(stub ‖ witnessTypeString): the caller supplies the
    ///         rest of the type, e.g. "Witness witness)TokenPermissions(...)Witness(...)".
    string private constant _PERMIT_TRANSFER_FROM_WITNESS_TYPEHASH_STUB =
        "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,";

    bytes32 private constant _HASHED_NAME = keccak256("Permit2");
    bytes32 private constant _TYPE_HASH = keccak256("EIP712Domain(string name,uint256 chainId,address verifyingContract)");

    // Lower 255 bits: the s of an EIP-2098 compact signature's vs word.
    bytes32 private constant UPPER_BIT_MASK = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;

    // bytes4(keccak256("isValidSignature(bytes32,bytes)"))
    bytes4 private constant ERC1271_MAGIC_VALUE = 0x1626ba7e;

    // ---------------------------------------------------------------- state

    /// @notice owner => word position => bitmap of used nonces. At slot 0 like the public contract's.
    mapping(address => mapping(uint256 => uint256)) public nonceBitmap;

    // ---------------------------------------------------------------- EIP-712 domain

    /// @notice Recomputed on every call (the public contract caches it at construction, which
    ///         anvil_setCode would skip); equal to the public value at the canonical address.
    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        return keccak256(abi.encode(_TYPE_HASH, _HASHED_NAME, block.chainid, address(this)));
    }

    // ---------------------------------------------------------------- SignatureTransfer

    function permitTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes calldata signature
    ) external {
        _permitTransferFrom(permit, transferDetails, owner, _hashPermit(permit), signature);
    }

    function permitWitnessTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external {
        _permitTransferFrom(
            permit, transferDetails, owner, _hashPermitWithWitness(permit, witness, witnessTypeString), signature
        );
    }

    /// @notice Marks the nonces in `mask` of word `wordPos` as used for msg.sender.
    function invalidateUnorderedNonces(uint256 wordPos, uint256 mask) external {
        nonceBitmap[msg.sender][wordPos] |= mask;
        emit UnorderedNonceInvalidation(msg.sender, wordPos, mask);
    }

    /// @dev Check order as in SignatureTransfer._permitTransferFrom: deadline, amount, nonce
    ///      (consumed before the signature check, undone by the revert if that fails), signature,
    ///      then the token transfer.
    function _permitTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 dataHash,
        bytes calldata signature
    ) private {
        uint256 requestedAmount = transferDetails.requestedAmount;

        if (block.timestamp > permit.deadline) revert SignatureExpired(permit.deadline);
        if (requestedAmount > permit.permitted.amount) revert InvalidAmount(permit.permitted.amount);

        _useUnorderedNonce(owner, permit.nonce);

        _verify(signature, keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), dataHash)), owner);

        _safeTransferFrom(permit.permitted.token, owner, transferDetails.to, requestedAmount);
    }

    /// @dev Nonce n lives in word n >> 8 (248 bits), bit n & 0xff. Flipping an already set bit
    ///      means the nonce was used.
    function _useUnorderedNonce(address from, uint256 nonce) private {
        uint256 wordPos = uint248(nonce >> 8);
        uint256 bitPos = uint8(nonce);
        uint256 bit = uint256(1) << bitPos;
        uint256 flipped = nonceBitmap[from][wordPos] ^= bit;
        if (flipped & bit == 0) revert InvalidNonce();
    }

    // ---------------------------------------------------------------- hashing (PermitHash.sol)

    /// @dev The spender is msg.sender: a permit signed for one spender is useless to any other.
    function _hashPermit(PermitTransferFrom calldata permit) private view returns (bytes32) {
        return keccak256(
            abi.encode(
                _PERMIT_TRANSFER_FROM_TYPEHASH,
                _hashTokenPermissions(permit.permitted),
                msg.sender,
                permit.nonce,
                permit.deadline
            )
        );
    }

    function _hashPermitWithWitness(PermitTransferFrom calldata permit, bytes32 witness, string calldata witnessTypeString)
        private
        view
        returns (bytes32)
    {
        bytes32 typeHash = keccak256(abi.encodePacked(_PERMIT_TRANSFER_FROM_WITNESS_TYPEHASH_STUB, witnessTypeString));
        return keccak256(
            abi.encode(
                typeHash, _hashTokenPermissions(permit.permitted), msg.sender, permit.nonce, permit.deadline, witness
            )
        );
    }

    function _hashTokenPermissions(TokenPermissions calldata permitted) private pure returns (bytes32) {
        return keccak256(abi.encode(_TOKEN_PERMISSIONS_TYPEHASH, permitted.token, permitted.amount));
    }

    // ---------------------------------------------------------------- signatures (SignatureVerification.sol)

    /// @dev An owner without code: ECDSA over 65 bytes r‖s‖v or 64 bytes r‖vs (EIP-2098), v taken
    ///      as is. An owner with code (a contract wallet, or an EIP-7702 delegated EOA): ERC-1271
    ///      only, no ECDSA fallback; a reverting isValidSignature reverts the whole call.
    function _verify(bytes calldata signature, bytes32 hash, address claimedSigner) private view {
        if (claimedSigner.code.length == 0) {
            bytes32 r;
            bytes32 s;
            uint8 v;
            if (signature.length == 65) {
                (r, s) = abi.decode(signature, (bytes32, bytes32));
                v = uint8(signature[64]);
            } else if (signature.length == 64) {
                bytes32 vs;
                (r, vs) = abi.decode(signature, (bytes32, bytes32));
                s = vs & UPPER_BIT_MASK;
                v = uint8(uint256(vs >> 255)) + 27;
            } else {
                revert InvalidSignatureLength();
            }
            address signer = ecrecover(hash, v, r, s);
            if (signer == address(0)) revert InvalidSignature();
            if (signer != claimedSigner) revert InvalidSigner();
        } else {
            bytes4 magicValue = IERC1271(claimedSigner).isValidSignature(hash, signature);
            if (magicValue != ERC1271_MAGIC_VALUE) revert InvalidContractSignature();
        }
    }

    // ---------------------------------------------------------------- token transfer (solmate SafeTransferLib)

    /// @dev solmate's safeTransferFrom: success means the call did not revert and returned either
    ///      nothing or a word equal to 1. No extcodesize check, and the token's revert reason is
    ///      replaced by "TRANSFER_FROM_FAILED", as on the public contract.
    function _safeTransferFrom(address token, address from, address to, uint256 amount) private {
        (bool success, bytes memory data) =
            token.call(abi.encodeWithSelector(0x23b872dd, from, to, amount)); // transferFrom(address,address,uint256)
        bool returnedOk = data.length == 0 || (data.length >= 32 && abi.decode(data, (uint256)) == 1);
        require(success && returnedOk, "TRANSFER_FROM_FAILED");
    }
}

interface IERC1271 {
    function isValidSignature(bytes32 hash, bytes memory signature) external view returns (bytes4 magicValue);
}
