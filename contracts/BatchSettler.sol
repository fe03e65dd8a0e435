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
 *
 *      The calls come packed, not as an ABI array of structs: calldata is most of what a batch pays
 *      per call besides the token's own work, and an ABI `(address,uint256,bytes)[]` spends five
 *      32-byte words of mostly zeros plus padding on each call's framing (~1.1k gas) and its
 *      decoding checks about as much again. Packed, each call is
 *
 *          head (2 bytes) ‖ gasLimit (4 bytes) ‖ target (20 bytes, absent when the head says
 *          "same target as the call before") ‖ callData (the head's length, in bytes)
 *
 *      back to back in `packed`, big-endian; the head's top bit is "same target", its low 15 bits
 *      the call data's length. A batch's calls usually all go to one token, whose address (20
 *      non-zero bytes, 320 gas) is then written once. Calldata past `packed` (an ERC-8021
 *      builder-code suffix) is not read. Framing that runs past the end, or a call without a
 *      target, reverts the whole batch: only our encoder writes these bytes, and a batch that
 *      reverts pays nobody, so every row is settled again.
 */
contract BatchSettler {
    /// @notice A call that failed or was skipped (not enough gas left to give it its whole limit).
    event CallFailed(uint256 indexed index, bool skipped);

    /// @notice Call `index` ends past the packed calls, or has no target (the first call must name one).
    error MalformedBatch(uint256 index);

    /// @return failures a bit per call (bit i set: call i failed or was skipped; calls from 256 on are
    ///         only logged), for eth_call callers.
    function settle(bytes calldata packed) external returns (uint256 failures) {
        uint256 cursor;
        uint256 end;
        uint256 buffer;
        assembly {
            cursor := packed.offset
            end := add(packed.offset, packed.length)
            // Every call's data is copied to the same place: memory grows to the longest call only.
            buffer := mload(0x40)
        }
        address target;
        // Unchecked: cursor and length are calldata offsets and sizes (far below 2^64), gasLimit is
        // below 2^32 and i counts calls: none of the sums can overflow. Checked arithmetic cost
        // ~360 gas a call here.
        unchecked {
            for (uint256 i = 0; cursor < end; ++i) {
                uint256 gasLimit;
                uint256 length;
                assembly {
                    let header := calldataload(cursor)
                    let head := shr(240, header)
                    gasLimit := and(shr(208, header), 0xffffffff)
                    length := and(head, 0x7fff)
                    switch and(head, 0x8000)
                    case 0 {
                        target := shr(96, shl(48, header))
                        cursor := add(cursor, 26)
                    }
                    default {
                        cursor := add(cursor, 6)
                    }
                }
                if (cursor + length > end || target == address(0)) revert MalformedBatch(i);
                // EIP-150 keeps 1/64 of the gas back from a call: give the callee its whole limit or
                // skip it, never a truncated budget that fails it for a reason of ours.
                if (gasleft() < gasLimit + gasLimit / 63 + 10_000) {
                    if (i < 256) failures |= 1 << i;
                    emit CallFailed(i, true);
                } else {
                    bool ok;
                    assembly {
                        calldatacopy(buffer, cursor, length)
                        // No return data is copied: a callee cannot make us pay for a large return.
                        ok := call(gasLimit, target, 0, buffer, length, 0, 0)
                    }
                    if (!ok) {
                        if (i < 256) failures |= 1 << i;
                        emit CallFailed(i, false);
                    }
                }
                cursor += length;
            }
        }
    }
}
