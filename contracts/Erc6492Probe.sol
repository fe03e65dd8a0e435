// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Erc6492Probe
 * @notice Never deployed: its creation code runs in an eth_call (a "deployless" call) and returns a
 *         verdict on an ERC-6492 counterfactual wallet. It runs the factory call with a gas limit,
 *         then checks that the wallet now has code and accepts the signature through ERC-1271.
 *         Returns abi.encode(uint256 status, uint256 deployGasUsed):
 *         0 valid, 1 the factory call reverted, 2 no code at the wallet afterwards, 3 the wallet
 *         rejects the signature.
 */
contract Erc6492Probe {
    bytes4 internal constant ERC1271_MAGIC_VALUE = 0x1626ba7e;

    constructor(
        address factory,
        bytes memory factoryData,
        address wallet,
        bytes32 digest,
        bytes memory signature,
        uint256 deployGasLimit,
        uint256 checkGasLimit
    ) {
        uint256 status;
        uint256 gasBefore = gasleft();
        (bool deployed,) = factory.call{gas: deployGasLimit}(factoryData);
        uint256 deployGasUsed = gasBefore - gasleft();
        if (!deployed) {
            status = 1;
        } else if (wallet.code.length == 0) {
            status = 2;
        } else {
            (bool ok, bytes memory result) =
                wallet.staticcall{gas: checkGasLimit}(abi.encodeWithSelector(ERC1271_MAGIC_VALUE, digest, signature));
            bool valid = ok && result.length >= 32 && bytes4(abi.decode(result, (bytes32))) == ERC1271_MAGIC_VALUE;
            status = valid ? 0 : 3;
        }
        bytes memory answer = abi.encode(status, deployGasUsed);
        assembly {
            return(add(answer, 32), mload(answer))
        }
    }
}
