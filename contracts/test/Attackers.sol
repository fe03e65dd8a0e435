// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SmartWallet} from "../SmartWallet.sol";

/**
 * Contracts a hostile payer controls, for the attack tests (test/integration/attacks/). None is
 * used outside tests.
 */

/// @notice An ERC-6492 "factory" that is a gas pump: it writes junk storage, calls other contracts
///         and emits a decoy Transfer-shaped event, then deploys a working SmartWallet so the
///         payment itself looks genuine.
contract JunkFactory {
    event Transfer(address indexed from, address indexed to, uint256 value);

    mapping(uint256 => uint256) private junk;
    uint256 private cursor;

    function deploy(address walletOwner, bytes32 salt, uint256 junkSlots, address decoyFrom, address decoyTo, uint256 decoyValue)
        external
        returns (address wallet)
    {
        for (uint256 i = 0; i < junkSlots; ++i) {
            junk[cursor++] = uint256(keccak256(abi.encode(i, block.number)));
        }
        // Calls into other contracts at our expense (the precompile is cheap to reach, any would do).
        for (uint256 i = 0; i < 16; ++i) {
            (bool ok,) = address(0x04).call(abi.encode(i));
            ok;
        }
        emit Transfer(decoyFrom, decoyTo, decoyValue);
        wallet = predict(walletOwner, salt);
        if (wallet.code.length == 0) new SmartWallet{salt: salt}(walletOwner);
    }

    function predict(address walletOwner, bytes32 salt) public view returns (address) {
        bytes32 initCodeHash = keccak256(abi.encodePacked(type(SmartWallet).creationCode, abi.encode(walletOwner)));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, initCodeHash)))));
    }
}

/// @notice A factory that "succeeds" without deploying anything (an EOA's 6492 wrapper around it
///         would make us run it for nothing).
contract HollowFactory {
    function deploy(address, bytes32) external pure returns (address) {
        return address(0);
    }
}

/// @notice A deployed ERC-1271 wallet whose signature check burns every unit of gas it is given.
contract GasBurnerWallet {
    uint256 private sink;

    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        uint256 x;
        while (gasleft() > 1_000) {
            x = uint256(keccak256(abi.encode(x, sink)));
        }
        return bytes4(uint32(x));
    }
}

/// @notice An EIP-7702 delegate: an EOA that points its code here makes every ERC-1271 check of
///         its signatures (USDC v2.2 asks one of any address with code) burn all the gas it gets.
contract GasBurnerDelegate {
    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        uint256 x;
        while (gasleft() > 1_000) {
            x = uint256(keccak256(abi.encode(x)));
        }
        return bytes4(uint32(x));
    }
}

/// @notice An EIP-7702 delegate that tells a simulation from a real transaction by its gas price:
///         it accepts every signature while GASPRICE is 0 (an eth_call or estimate without fees)
///         and burns all gas otherwise, so a facilitator that simulates without fees pays for a
///         failing transaction on every settle.
contract SimulationAwareDelegate {
    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        if (tx.gasprice == 0) return 0x1626ba7e;
        uint256 x;
        while (gasleft() > 1_000) {
            x = uint256(keccak256(abi.encode(x)));
        }
        return bytes4(uint32(x));
    }
}

/// @notice An EIP-7702 delegate with a switch: it accepts signatures until armed, then burns all
///         gas. Armed between our simulation and our transaction, it makes a settlement fail on
///         chain although everything before looked fine; disarmed, its next payment simulates fine.
contract SwitchableDelegate {
    bytes32 private constant ARMED_SLOT = keccak256("x402.test.SwitchableDelegate.armed");

    function arm(bool armed) external {
        bytes32 slot = ARMED_SLOT;
        assembly {
            sstore(slot, armed)
        }
    }

    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        bytes32 slot = ARMED_SLOT;
        bool armed;
        assembly {
            armed := sload(slot)
        }
        if (!armed) return 0x1626ba7e;
        uint256 x;
        while (gasleft() > 1_000) {
            x = uint256(keccak256(abi.encode(x)));
        }
        return bytes4(uint32(x));
    }
}
