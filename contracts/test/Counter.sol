// SPDX-License-Identifier: GPL-3.0
pragma solidity ^0.8.28;

/// @notice Test helper: a call target whose state shows that a sponsored UserOperation executed.
contract Counter {
    mapping(address => uint256) public counts;

    /// @notice Counts one call from msg.sender.
    function increment() external {
        ++counts[msg.sender];
    }
}
