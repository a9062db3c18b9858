// SPDX-License-Identifier: GPL-3.0
pragma solidity ^0.8.28;

/// @notice Test helper: the read side of a Chainlink AggregatorV3 with an answer the test sets.
contract MockAggregator {
    uint8 public immutable decimals;
    int256 private _answer;
    uint256 private _updatedAt;
    uint80 private _round;

    constructor(uint8 decimals_, int256 answer_) {
        decimals = decimals_;
        setAnswer(answer_, block.timestamp);
    }

    /// @notice Sets the answer and the time it was last updated.
    function setAnswer(int256 answer_, uint256 updatedAt_) public {
        _answer = answer_;
        _updatedAt = updatedAt_;
        ++_round;
    }

    /// @notice The latest round, as AggregatorV3Interface answers it.
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (_round, _answer, _updatedAt, _updatedAt, _round);
    }
}
