// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title TestUSDC
 * @notice A USDC-like token for local tests, modelled on the behaviour of Circle's FiatToken v2.2:
 *         ERC-20 with USDC's revert strings, EIP-3009 (transfer/receive/cancel with authorization,
 *         both the (v,r,s) and the `bytes signature` overloads), EIP-2612 permit (both overloads,
 *         as Permit2 gas sponsoring uses it) and v2.2's signature rules (ERC-1271 when the signer
 *         has code, otherwise strict ECDSA: low s, v in {27,28}).
 *
 * @dev Written to run from runtime bytecode placed with `anvil_setCode` at an arbitrary address
 *      (e.g. the real Base Sepolia USDC address). Therefore: no constructor, no immutables; all
 *      state is set by `initialize`, and the EIP-712 domain separator is computed on every call
 *      from storage, `block.chainid` and `address(this)`. State sits in an ERC-7201 namespace, so
 *      the code also works on a fork, placed over the real token's proxy and its storage.
 *
 *      Left out on purpose (not needed by the facilitator's tests): pausing, blacklisting,
 *      minter allowances, rescuing, upgradeability.
 *
 *      Test-only quirk: `setQuirkSilentUsedNonce(true)` makes transfer/receiveWithAuthorization
 *      with an already used (or canceled) nonce succeed silently: it emits `AuthorizationUsed`
 *      again and moves nothing. Some real EIP-3009 tokens behave like that; a facilitator must
 *      not count such a receipt as a payment.
 */
contract TestUSDC {
    // keccak256("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH =
        0x7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267;

    // keccak256("ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH =
        0xd099cc98ef71107a616c4f0f941f04c322d8e254fe26b3c6668db87aae413de8;

    // keccak256("CancelAuthorization(address authorizer,bytes32 nonce)")
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH =
        0x158b0a9edf7a828aad02f63cd515c68ef2f50ba807396f6d12842833a1597429;

    // keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)")
    bytes32 public constant PERMIT_TYPEHASH = 0x6e71edae12b1b97f4d1f60370fef10105fa2faae0126114a169c64845d6126c9;

    // keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    bytes32 private constant EIP712_DOMAIN_TYPEHASH =
        0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f;

    // Upper bound of the lower half of secp256k1's order (same constant as USDC's ECRecover).
    uint256 private constant SECP256K1_HALF_N =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // bytes4(keccak256("isValidSignature(bytes32,bytes)"))
    bytes4 private constant ERC1271_MAGIC_VALUE = 0x1626ba7e;

    /// @dev All state lives in one ERC-7201 namespaced struct instead of slots 0..n: when the code
    ///      is placed over a forked chain's real token (a proxy with its own storage at low slots),
    ///      that storage cannot be mistaken for ours (e.g. read as "already initialized").
    /// @custom:storage-location erc7201:x402facilitator.storage.TestUSDC
    struct TokenStorage {
        string name;
        string symbol;
        string version;
        uint8 decimals;
        address minter;
        bool initialized;
        bool quirkSilentUsedNonce;
        uint256 totalSupply;
        mapping(address => uint256) balances;
        mapping(address => mapping(address => uint256)) allowed;
        mapping(address => mapping(bytes32 => bool)) authorizationStates;
        // Appended after the EIP-3009 fields: earlier members keep their slots.
        mapping(address => uint256) permitNonces;
    }

    // keccak256(abi.encode(uint256(keccak256("x402facilitator.storage.TestUSDC")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant STORAGE_LOCATION = 0xdc41eddb64c486e609ce02c866aa1cc39b4672e18b769a9dd286295fcad2ee00;

    function _s() private pure returns (TokenStorage storage $) {
        assembly {
            $.slot := STORAGE_LOCATION
        }
    }

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event Mint(address indexed minter, address indexed to, uint256 amount);
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);
    event QuirkSilentUsedNonceSet(bool enabled);

    modifier onlyMinter() {
        require(msg.sender == _s().minter, "FiatToken: caller is not a minter");
        _;
    }

    // ---------------------------------------------------------------- initialization

    function initialize(
        string calldata tokenName,
        string calldata tokenSymbol,
        string calldata tokenVersion,
        uint8 tokenDecimals,
        address tokenMinter
    ) external {
        TokenStorage storage $ = _s();
        require(!$.initialized, "FiatToken: contract is already initialized");
        require(tokenMinter != address(0), "FiatToken: new masterMinter is the zero address");
        $.name = tokenName;
        $.symbol = tokenSymbol;
        $.version = tokenVersion;
        $.decimals = tokenDecimals;
        $.minter = tokenMinter;
        $.initialized = true;
    }

    // ---------------------------------------------------------------- ERC-20 views

    function name() external view returns (string memory) {
        return _s().name;
    }

    function symbol() external view returns (string memory) {
        return _s().symbol;
    }

    function version() external view returns (string memory) {
        return _s().version;
    }

    function decimals() external view returns (uint8) {
        return _s().decimals;
    }

    function totalSupply() external view returns (uint256) {
        return _s().totalSupply;
    }

    function balanceOf(address account) external view returns (uint256) {
        return _s().balances[account];
    }

    function allowance(address owner, address spender) external view returns (uint256) {
        return _s().allowed[owner][spender];
    }

    function minter() external view returns (address) {
        return _s().minter;
    }

    function isMinter(address account) external view returns (bool) {
        return account == _s().minter;
    }

    function quirkSilentUsedNonce() external view returns (bool) {
        return _s().quirkSilentUsedNonce;
    }

    // ---------------------------------------------------------------- ERC-20 mutations

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        _approve(msg.sender, spender, value);
        return true;
    }

    /// @dev Like USDC: the allowance is always decremented (no "infinite allowance" special case).
    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        require(value <= _s().allowed[from][msg.sender], "ERC20: transfer amount exceeds allowance");
        _transfer(from, to, value);
        _s().allowed[from][msg.sender] -= value;
        return true;
    }

    function mint(address to, uint256 amount) external onlyMinter returns (bool) {
        require(to != address(0), "FiatToken: mint to the zero address");
        require(amount > 0, "FiatToken: mint amount not greater than 0");
        TokenStorage storage $ = _s();
        $.totalSupply += amount;
        $.balances[to] += amount;
        emit Mint(msg.sender, to, amount);
        emit Transfer(address(0), to, amount);
        return true;
    }

    function setQuirkSilentUsedNonce(bool enabled) external onlyMinter {
        _s().quirkSilentUsedNonce = enabled;
        emit QuirkSilentUsedNonceSet(enabled);
    }

    // ---------------------------------------------------------------- EIP-712

    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @dev Recomputed on every call (no cache): the code may be moved with anvil_setCode and the
    ///      chain id may differ between forks.
    function _domainSeparator() internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                EIP712_DOMAIN_TYPEHASH,
                keccak256(bytes(_s().name)),
                keccak256(bytes(_s().version)),
                block.chainid,
                address(this)
            )
        );
    }

    // ---------------------------------------------------------------- EIP-2612

    function nonces(address owner) external view returns (uint256) {
        return _s().permitNonces[owner];
    }

    function permit(
        address owner,
        address spender,
        uint256 value,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _permit(owner, spender, value, deadline, abi.encodePacked(r, s, v));
    }

    function permit(address owner, address spender, uint256 value, uint256 deadline, bytes memory signature)
        external
    {
        _permit(owner, spender, value, deadline, signature);
    }

    /// @dev USDC v2.2's EIP2612._permit: deadline (type(uint256).max never expires), the nonce is
    ///      taken and incremented inside the hash, then the signature (same rules as EIP-3009 but
    ///      its own revert string), then the approval.
    function _permit(address owner, address spender, uint256 value, uint256 deadline, bytes memory signature)
        internal
    {
        require(deadline == type(uint256).max || deadline >= block.timestamp, "FiatTokenV2: permit is expired");
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, _s().permitNonces[owner]++, deadline));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", _domainSeparator(), structHash));
        require(_isValidSignatureNow(owner, digest, signature), "EIP2612: invalid signature");
        _approve(owner, spender, value);
    }

    // ---------------------------------------------------------------- EIP-3009

    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool) {
        return _s().authorizationStates[authorizer][nonce];
    }

    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _transferWithAuthorization(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce,
            abi.encodePacked(r, s, v)
        );
    }

    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external {
        _transferWithAuthorization(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature
        );
    }

    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        require(to == msg.sender, "FiatTokenV2: caller must be the payee");
        _transferWithAuthorization(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce,
            abi.encodePacked(r, s, v)
        );
    }

    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external {
        require(to == msg.sender, "FiatTokenV2: caller must be the payee");
        _transferWithAuthorization(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature
        );
    }

    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external {
        _cancelAuthorization(authorizer, nonce, abi.encodePacked(r, s, v));
    }

    function cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) external {
        _cancelAuthorization(authorizer, nonce, signature);
    }

    /// @dev Check order follows USDC v2.2: validAfter, validBefore, nonce unused, signature; then
    ///      mark used, emit AuthorizationUsed, transfer.
    function _transferWithAuthorization(
        bytes32 typehash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) internal {
        require(block.timestamp > validAfter, "FiatTokenV2: authorization is not yet valid");
        require(block.timestamp < validBefore, "FiatTokenV2: authorization is expired");

        bool used = _s().authorizationStates[from][nonce];
        // The quirk still demands a valid signature so that its receipt looks like a genuine one.
        require(!used || _s().quirkSilentUsedNonce, "FiatTokenV2: authorization is used or canceled");

        _requireValidSignature(
            from,
            keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce)),
            signature
        );

        if (used) {
            // Quirk: success without a transfer, with a receipt that resembles a real settlement.
            emit AuthorizationUsed(from, nonce);
            return;
        }

        _s().authorizationStates[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
        _transfer(from, to, value);
    }

    function _cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) internal {
        require(!_s().authorizationStates[authorizer][nonce], "FiatTokenV2: authorization is used or canceled");
        _requireValidSignature(
            authorizer, keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)), signature
        );
        _s().authorizationStates[authorizer][nonce] = true;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    // ---------------------------------------------------------------- signatures (USDC v2.2 rules)

    function _requireValidSignature(address signer, bytes32 structHash, bytes memory signature) internal view {
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", _domainSeparator(), structHash));
        require(_isValidSignatureNow(signer, digest, signature), "FiatTokenV2: invalid signature");
    }

    /// @dev USDC v2.2 SignatureChecker: ERC-1271 if the signer has code, else ECRecover. Note that
    ///      ECRecover reverts with its own strings (bad length, high s, bad v, zero signer) instead
    ///      of returning false; only a well-formed signature by someone else yields "invalid signature".
    function _isValidSignatureNow(address signer, bytes32 digest, bytes memory signature)
        internal
        view
        returns (bool)
    {
        if (signer.code.length == 0) {
            return _recover(digest, signature) == signer;
        }
        (bool success, bytes memory result) =
            signer.staticcall(abi.encodeWithSelector(ERC1271_MAGIC_VALUE, digest, signature));
        return success && result.length >= 32 && abi.decode(result, (bytes32)) == bytes32(ERC1271_MAGIC_VALUE);
    }

    /// @dev USDC's ECRecover.recover(bytes32, bytes): exactly 65 bytes r||s||v, v not normalised.
    function _recover(bytes32 digest, bytes memory signature) internal pure returns (address) {
        require(signature.length == 65, "ECRecover: invalid signature length");
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(signature, 0x20))
            s := mload(add(signature, 0x40))
            v := byte(0, mload(add(signature, 0x60)))
        }
        if (uint256(s) > SECP256K1_HALF_N) {
            revert("ECRecover: invalid signature 's' value");
        }
        if (v != 27 && v != 28) {
            revert("ECRecover: invalid signature 'v' value");
        }
        address recovered = ecrecover(digest, v, r, s);
        require(recovered != address(0), "ECRecover: invalid signature");
        return recovered;
    }

    // ---------------------------------------------------------------- internals

    function _transfer(address from, address to, uint256 value) internal {
        require(from != address(0), "ERC20: transfer from the zero address");
        require(to != address(0), "ERC20: transfer to the zero address");
        TokenStorage storage $ = _s();
        require(value <= $.balances[from], "ERC20: transfer amount exceeds balance");
        unchecked {
            $.balances[from] -= value;
        }
        $.balances[to] += value;
        emit Transfer(from, to, value);
    }

    function _approve(address owner, address spender, uint256 value) internal {
        require(owner != address(0), "ERC20: approve from the zero address");
        require(spender != address(0), "ERC20: approve to the zero address");
        _s().allowed[owner][spender] = value;
        emit Approval(owner, spender, value);
    }
}
