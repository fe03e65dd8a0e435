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
 *          target (20 bytes) ‖ gasLimit (4 bytes, big-endian) ‖ length (2 bytes) ‖ callData (length bytes)
 *
 *      back to back in `packed`. Calldata past `packed` (an ERC-8021 builder-code suffix) is not
 *      read. A call whose framing runs past the end reverts the whole batch: only our encoder
 *      writes these bytes, and a batch that reverts pays nobody, so every row is settled again.
 */
contract BatchSettler {
    /// @notice A call that failed or was skipped (not enough gas left to give it its whole limit).
    event CallFailed(uint256 indexed index, bool skipped);

    /// @notice The packed calls end in the middle of a call's framing or data.
    error MalformedBatch(uint256 index);

    /// Bytes of framing before each call's data: target, gasLimit, length.
    uint256 private constant HEADER_BYTES = 26;

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
        // Unchecked: cursor and length are calldata offsets and sizes (far below 2^64), gasLimit is
        // below 2^32 and i counts calls: none of the sums can overflow. Checked arithmetic cost
        // ~300 gas a call here.
        unchecked {
            for (uint256 i = 0; cursor < end; ++i) {
                address target;
                uint256 gasLimit;
                uint256 length;
                assembly {
                    let header := calldataload(cursor)
                    target := shr(96, header)
                    gasLimit := and(shr(64, header), 0xffffffff)
                    length := and(shr(48, header), 0xffff)
                    cursor := add(cursor, HEADER_BYTES)
                }
                if (cursor + length > end) revert MalformedBatch(i);
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
