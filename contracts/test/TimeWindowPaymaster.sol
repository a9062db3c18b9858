// SPDX-License-Identifier: GPL-3.0
pragma solidity ^0.8.28;

import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {IPaymaster} from "@account-abstraction/contracts/interfaces/IPaymaster.sol";
import {PackedUserOperation} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/**
 * @title TimeWindowPaymaster
 * @notice Test only, deliberately breaks ERC-7562: sponsors every operation before a block timestamp and block
 *         number, read in validatePaymasterUserOp (TIMESTAMP and NUMBER are banned there, OP-011: the result can
 *         change between the bundler's simulation and the block). The right way is validUntil in validationData.
 */
contract TimeWindowPaymaster is IPaymaster {
    /// @notice The EntryPoint v0.7 this paymaster serves.
    IEntryPoint public immutable entryPoint;
    /// @notice First timestamp at which operations are no longer sponsored.
    uint256 public immutable windowEndTime;
    /// @notice First block at which operations are no longer sponsored.
    uint256 public immutable windowEndBlock;

    /// @notice The caller is not the EntryPoint.
    error NotFromEntryPoint(address caller);
    /// @notice Validation returns no context, so postOp is never called.
    error PostOpNotSupported();

    /**
     * @param entryPoint_ The EntryPoint v0.7.
     * @param windowEndTime_ First block timestamp no longer sponsored.
     * @param windowEndBlock_ First block number no longer sponsored.
     */
    constructor(IEntryPoint entryPoint_, uint256 windowEndTime_, uint256 windowEndBlock_) {
        entryPoint = entryPoint_;
        windowEndTime = windowEndTime_;
        windowEndBlock = windowEndBlock_;
    }

    /**
     * @notice Sponsors any operation while the block is inside the window, else fails validation.
     * @return context Always empty.
     * @return validationData 0 inside the window, 1 (failure) outside.
     */
    function validatePaymasterUserOp(PackedUserOperation calldata, bytes32, uint256)
        external
        view
        returns (bytes memory context, uint256 validationData)
    {
        if (msg.sender != address(entryPoint)) revert NotFromEntryPoint(msg.sender);
        // solhint-disable-next-line not-rely-on-time
        bool inWindow = block.timestamp < windowEndTime && block.number < windowEndBlock;
        return ("", inWindow ? 0 : 1);
    }

    /// @notice Never called: validation returns an empty context.
    function postOp(PostOpMode, bytes calldata, uint256, uint256) external pure {
        revert PostOpNotSupported();
    }

    /// @notice Adds the sent value to this paymaster's EntryPoint deposit.
    function deposit() external payable {
        entryPoint.depositTo{value: msg.value}(address(this));
    }

    /**
     * @notice Stakes the sent value for this paymaster (anyone may: a test contract).
     * @param unstakeDelaySec The stake's unstake delay.
     */
    function addStake(uint32 unstakeDelaySec) external payable {
        entryPoint.addStake{value: msg.value}(unstakeDelaySec);
    }
}
