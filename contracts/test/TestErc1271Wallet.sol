// SPDX-License-Identifier: GPL-3.0
pragma solidity ^0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @notice Test helper: the smallest ERC-1271 wallet, valid signatures are its owner's over the hash itself.
/// @dev Stands in for smart accounts with ERC-1271 (Safe, Kernel, LightAccount…) in proof-of-control tests;
/// deployed through the deterministic deployer, it also serves the counterfactual (ERC-6492) case.
contract TestErc1271Wallet {
    bytes4 private constant MAGIC_VALUE = 0x1626ba7e;
    bytes4 private constant INVALID = 0xffffffff;

    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice ERC-1271: whether `signature` is the owner's over `hash`.
    /// @param hash The signed hash.
    /// @param signature An ECDSA signature (r ‖ s ‖ v).
    /// @return magicValue 0x1626ba7e when valid.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4 magicValue) {
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecoverCalldata(hash, signature);
        return error == ECDSA.RecoverError.NoError && signer == owner ? MAGIC_VALUE : INVALID;
    }
}
