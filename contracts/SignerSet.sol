// SPDX-License-Identifier: GPL-3.0
pragma solidity ^0.8.28;

import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

/**
 * @title SignerSet
 * @notice An owner-managed set of addresses allowed to sign sponsorships, so keys rotate without redeploying.
 * @dev Reading the set during validation is a storage read of the paymaster's own slot, which ERC-7562 allows
 *      only to a staked paymaster.
 */
abstract contract SignerSet is Ownable2Step {
    using EnumerableSet for EnumerableSet.AddressSet;

    EnumerableSet.AddressSet private _signers;

    /// @notice Emitted when `signer` is allowed to sign sponsorships.
    event SignerAdded(address indexed signer);
    /// @notice Emitted when `signer` may no longer sign sponsorships.
    event SignerRemoved(address indexed signer);

    /// @notice The zero address can never be a signer (it is what a failed recovery yields).
    error InvalidSigner(address signer);
    /// @notice `signer` is already in the set.
    error SignerAlreadyAdded(address signer);
    /// @notice `signer` is not in the set.
    error SignerNotFound(address signer);

    /**
     * @notice Allows `signer` to sign sponsorships.
     * @param signer The signer's address; must not be zero or already present.
     */
    function addSigner(address signer) external onlyOwner {
        if (signer == address(0)) revert InvalidSigner(signer);
        if (!_signers.add(signer)) revert SignerAlreadyAdded(signer);
        emit SignerAdded(signer);
    }

    /**
     * @notice Stops `signer` from signing sponsorships; data it signed before stops validating at once.
     * @param signer The signer's address; must be present.
     */
    function removeSigner(address signer) external onlyOwner {
        if (!_signers.remove(signer)) revert SignerNotFound(signer);
        emit SignerRemoved(signer);
    }

    /**
     * @notice Whether `account` may sign sponsorships.
     * @param account The address to check.
     * @return True if `account` is in the signer set.
     */
    function isSigner(address account) public view returns (bool) {
        return _signers.contains(account);
    }

    /**
     * @notice Every current signer, in no particular order.
     * @return The signer addresses.
     */
    function signers() external view returns (address[] memory) {
        return _signers.values();
    }
}
