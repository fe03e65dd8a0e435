// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/**
 * @title SmartWallet
 * @notice Minimal ERC-1271 contract wallet for tests: a signature is valid iff it is the owner's
 *         plain ECDSA signature over the given hash. No "\x19Ethereum Signed Message" prefix is
 *         applied, because EIP-3009 tokens pass the final EIP-712 digest.
 */
contract SmartWallet {
    bytes4 internal constant ERC1271_MAGIC_VALUE = 0x1626ba7e;
    bytes4 internal constant ERC1271_INVALID = 0xffffffff;

    address public immutable owner;

    constructor(address walletOwner) {
        require(walletOwner != address(0), "SmartWallet: owner is the zero address");
        owner = walletOwner;
    }

    receive() external payable {}

    /// @dev Returns the failure value instead of reverting on malformed signatures, as ERC-1271 asks.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        if (err == ECDSA.RecoverError.NoError && recovered == owner) {
            return ERC1271_MAGIC_VALUE;
        }
        return ERC1271_INVALID;
    }

    /// @notice Lets the owner act as the wallet (e.g. call receiveWithAuthorization as payee).
    function execute(address target, uint256 value, bytes calldata data) external returns (bytes memory) {
        require(msg.sender == owner, "SmartWallet: caller is not the owner");
        (bool success, bytes memory result) = target.call{value: value}(data);
        if (!success) {
            // Bubble the callee's revert data unchanged so callers see the original reason.
            assembly {
                revert(add(result, 0x20), mload(result))
            }
        }
        return result;
    }
}

/**
 * @title SmartWalletFactory
 * @notice CREATE2 factory for SmartWallet, used for ERC-6492 (counterfactual wallet) tests:
 *         `predict` gives the address before deployment, `deploy` is the ERC-6492 factory call.
 */
contract SmartWalletFactory {
    event WalletDeployed(address indexed wallet, address indexed owner, bytes32 salt);

    /// @dev Idempotent: if the wallet already exists, returns its address without reverting, so
    ///      an ERC-6492 verifier may replay the factory call safely.
    function deploy(address walletOwner, bytes32 salt) external returns (address wallet) {
        wallet = predict(walletOwner, salt);
        if (wallet.code.length > 0) {
            return wallet;
        }
        SmartWallet deployed = new SmartWallet{salt: salt}(walletOwner);
        require(address(deployed) == wallet, "SmartWalletFactory: address mismatch");
        emit WalletDeployed(wallet, walletOwner, salt);
    }

    function predict(address walletOwner, bytes32 salt) public view returns (address) {
        bytes32 initCodeHash = keccak256(abi.encodePacked(type(SmartWallet).creationCode, abi.encode(walletOwner)));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, initCodeHash)))));
    }
}
