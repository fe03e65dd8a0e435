// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title BatchSettler
 * @notice Several token calls in one transaction, each with its own gas limit, none able to sink
 *         the others. Multicall3's aggregate3 forwards all remaining gas to every call: a payer whose
 *         signature check runs its own code (an EIP-7702 delegate, say) could burn 63/64 of a whole
 *         batch's gas inside one call and starve every later one. Here a call gets at most its
 *         `gasLimit` and its failure is only recorded; each settlement proves itself by its own logs.
 * @dev Stateless and permissionless: it holds nothing and any caller may use it (the token does not
 *      care who submits a transferWithAuthorization). Deployed at a deterministic address through the
 *      deterministic-deployment proxy, so one address serves every chain.
 */
contract BatchSettler {
    struct Call {
        address target;
        uint256 gasLimit;
        bytes callData;
    }

    /// @notice A call that failed or was skipped (not enough gas left to give it its whole limit).
    event CallFailed(uint256 indexed index, bool skipped);

    /// @return failures a bit per call (bit i set: call i failed or was skipped), for eth_call callers.
    function settle(Call[] calldata calls) external returns (uint256 failures) {
        for (uint256 i = 0; i < calls.length; ++i) {
            Call calldata c = calls[i];
            // EIP-150 keeps 1/64 of the gas back from a call: give the callee its whole limit or skip
            // it, never a truncated budget that fails it for a reason of ours.
            if (gasleft() < c.gasLimit + c.gasLimit / 63 + 10_000) {
                failures |= 1 << i;
                emit CallFailed(i, true);
                continue;
            }
            bytes calldata data = c.callData;
            address target = c.target;
            uint256 gasLimit = c.gasLimit;
            bool ok;
            assembly {
                let ptr := mload(0x40)
                calldatacopy(ptr, data.offset, data.length)
                // No return data is copied: a callee cannot make us pay for a large return.
                ok := call(gasLimit, target, 0, ptr, data.length, 0, 0)
            }
            if (!ok) {
                failures |= 1 << i;
                emit CallFailed(i, false);
            }
        }
    }
}
