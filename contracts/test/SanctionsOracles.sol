// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * Stand-ins for an on-chain sanctions oracle (the Chainalysis oracle's interface:
 * `isSanctioned(address) view returns (bool)`), for the screening tests
 * (test/integration/screening/). None is used outside tests.
 */

/// @notice An oracle whose list anyone may set. `sanctioned` is storage slot 0, so a test can also
///         flip an entry with anvil_setStorageAt, without a new block.
contract TestSanctionsOracle {
    mapping(address => bool) private sanctioned;

    function setSanctioned(address account, bool value) external {
        sanctioned[account] = value;
    }

    function isSanctioned(address account) external view returns (bool) {
        return sanctioned[account];
    }
}

/// @notice An oracle that never answers: `mode` 0 reverts, 1 burns every unit of gas it is given,
///         2 answers a word that is not a bool.
contract BrokenSanctionsOracle {
    uint256 public mode;
    uint256 private sink;

    function setMode(uint256 value) external {
        mode = value;
    }

    function isSanctioned(address account) external view returns (bool) {
        if (mode == 0) revert("sanctions oracle unavailable");
        if (mode == 2) {
            assembly {
                mstore(0, 7)
                return(0, 32)
            }
        }
        uint256 x = uint256(uint160(account));
        while (x != 1) {
            x = uint256(keccak256(abi.encode(x, sink)));
        }
        return false;
    }
}
