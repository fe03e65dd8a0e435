// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {ISignatureTransfer} from "./Permit2.sol";

/**
 * @title X402BasePermit2Proxy
 * @notice Shared logic of the x402 Permit2 proxies, modelled on the behaviour of the public
 *         x402BasePermit2Proxy (x402-foundation/x402, contracts/evm/src): it is the `spender` the
 *         payer signs for, and it binds the destination through the Permit2 witness, so the
 *         caller cannot redirect the funds.
 *
 * @dev Written to run from runtime bytecode placed with `anvil_setCode` at the canonical
 *      addresses: the public contract takes Permit2's address as a constructor argument into an
 *      immutable, which anvil_setCode would skip; here it is a constant (the same canonical
 *      address the public deployment passes). The reentrancy guard lives in transient storage
 *      (EIP-1153), as in the public contract, so there is no storage to initialise either.
 */
abstract contract X402BasePermit2Proxy is ReentrancyGuardTransient {
    /// @notice The canonical Permit2 (same getter name and selector as the public immutable).
    ISignatureTransfer public constant PERMIT2 = ISignatureTransfer(0x000000000022D473030F116dDEE9F6B43aC78BA3);

    event Settled();
    event SettledWithPermit();

    /// @notice The EIP-2612 permit reverted with Error(string); settlement goes on (an allowance may already exist).
    event EIP2612PermitFailedWithReason(address indexed token, address indexed owner, string reason);
    /// @notice The EIP-2612 permit reverted with Panic(uint256).
    event EIP2612PermitFailedWithPanic(address indexed token, address indexed owner, uint256 errorCode);
    /// @notice The EIP-2612 permit reverted with a custom error or no data.
    event EIP2612PermitFailedWithData(address indexed token, address indexed owner, bytes data);

    /// @notice Public contract: constructor argument zero. Never thrown here (no constructor); kept for the ABI.
    error InvalidPermit2Address();
    error InvalidDestination();
    error PaymentTooEarly();
    error InvalidOwner();
    error InvalidAmount();
    error Permit2612AmountMismatch();

    struct EIP2612Permit {
        uint256 value;
        uint256 deadline;
        bytes32 r;
        bytes32 s;
        uint8 v;
    }

    /// @dev Checks in the public order: amount > 0, owner, destination, validAfter; then Permit2
    ///      checks deadline, amount <= permitted, nonce, signature (over the witness, so a changed
    ///      `to` or `validAfter` fails as InvalidSigner) and moves the tokens straight to `to`.
    function _settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 settlementAmount,
        address owner,
        address to,
        uint256 validAfter,
        bytes32 witnessHash,
        string memory witnessTypeString,
        bytes calldata signature
    ) internal {
        if (settlementAmount == 0) revert InvalidAmount();
        if (owner == address(0)) revert InvalidOwner();
        if (to == address(0)) revert InvalidDestination();
        if (block.timestamp < validAfter) revert PaymentTooEarly();

        ISignatureTransfer.SignatureTransferDetails memory transferDetails =
            ISignatureTransfer.SignatureTransferDetails({to: to, requestedAmount: settlementAmount});

        PERMIT2.permitWitnessTransferFrom(permit, transferDetails, owner, witnessHash, witnessTypeString, signature);
    }

    /// @dev The permit must approve exactly the Permit2 permitted amount. A failing permit does not
    ///      revert (the allowance may already be there, or someone front-ran the permit); it emits
    ///      an event and the Permit2 transfer decides.
    function _executePermit(address token, address owner, EIP2612Permit calldata permit2612, uint256 permittedAmount)
        internal
    {
        if (permit2612.value != permittedAmount) revert Permit2612AmountMismatch();

        try IERC20Permit(token).permit(
            owner, address(PERMIT2), permit2612.value, permit2612.deadline, permit2612.v, permit2612.r, permit2612.s
        ) {
            // approved
        } catch Error(string memory reason) {
            emit EIP2612PermitFailedWithReason(token, owner, reason);
        } catch Panic(uint256 errorCode) {
            emit EIP2612PermitFailedWithPanic(token, owner, errorCode);
        } catch (bytes memory data) {
            emit EIP2612PermitFailedWithData(token, owner, data);
        }
    }
}

/**
 * @title X402ExactPermit2Proxy
 * @notice Local stand-in for x402ExactPermit2Proxy (canonical 0x402085c248EeA27D92E8b30b2C58ed07f9E20001):
 *         always transfers the full permitted amount to witness.to. Anyone may call it.
 */
contract X402ExactPermit2Proxy is X402BasePermit2Proxy {
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";

    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,uint256 validAfter)");

    struct Witness {
        address to;
        uint256 validAfter;
    }

    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _settleExact(permit, owner, witness, signature);
        emit Settled();
    }

    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _executePermit(permit.permitted.token, owner, permit2612, permit.permitted.amount);
        _settleExact(permit, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _settleExact(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.validAfter));
        _settle(
            permit,
            permit.permitted.amount,
            owner,
            witness.to,
            witness.validAfter,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
    }
}

/**
 * @title X402UptoPermit2Proxy
 * @notice Local stand-in for x402UptoPermit2Proxy (canonical 0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002):
 *         transfers a caller-chosen amount up to the permitted one, and only the facilitator the
 *         payer named in the witness may call it (it chooses the amount).
 */
contract X402UptoPermit2Proxy is X402BasePermit2Proxy {
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";

    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,address facilitator,uint256 validAfter)");

    error UnauthorizedFacilitator();
    error AmountExceedsPermitted();

    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
        _settleUpto(permit, amount, owner, witness, signature);
        emit Settled();
    }

    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
        _executePermit(permit.permitted.token, owner, permit2612, permit.permitted.amount);
        _settleUpto(permit, amount, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _settleUpto(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        bytes32 witnessHash =
            keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.facilitator, witness.validAfter));
        _settle(permit, amount, owner, witness.to, witness.validAfter, witnessHash, WITNESS_TYPE_STRING, signature);
    }
}
