// SPDX-License-Identifier: GPL-3.0
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/**
 * @notice The EntryPoint's deposit and stake functions, whose ABI is the same in v0.7, v0.8 and v0.9 (IStakeManager).
 */
interface IEntryPointFunds {
    function depositTo(address account) external payable;
    function withdrawTo(address payable withdrawAddress, uint256 withdrawAmount) external;
    function addStake(uint32 unstakeDelaySec) external payable;
    function unlockStake() external;
    function withdrawStake(address payable withdrawAddress) external;
    function balanceOf(address account) external view returns (uint256);
}

/**
 * @title EntryPointFunds
 * @notice A paymaster's deposit and stake at its EntryPoint, managed by the owner (anyone may add to the deposit),
 *         for the paymasters of EntryPoint v0.8 and v0.9. FiatPaymaster (v0.7) carries the same functions itself:
 *         its bytecode, hence its CREATE2 address, must not move.
 */
abstract contract EntryPointFunds is Ownable2Step {
    /// @notice The EntryPoint this paymaster serves.
    address public immutable entryPoint;

    /// @notice Emitted when anyone adds to the paymaster's EntryPoint deposit.
    event Deposited(address indexed from, uint256 amount);
    /// @notice Emitted when the owner withdraws from the deposit.
    event Withdrawn(address indexed to, uint256 amount);
    /// @notice Emitted when the owner adds stake.
    event StakeAdded(uint256 amount, uint32 unstakeDelaySec);
    /// @notice Emitted when the owner starts the stake's unlock delay.
    event StakeUnlocked();
    /// @notice Emitted when the owner withdraws the unlocked stake.
    event StakeWithdrawn(address indexed to);

    /// @notice The caller is not the EntryPoint.
    error NotFromEntryPoint(address caller);
    /// @notice Renouncing ownership would lock the deposit and stake forever.
    error RenounceOwnershipDisabled();
    /// @notice There is no contract at the EntryPoint address.
    error EntryPointNotDeployed(address entryPoint);

    /// @param entryPoint_ The EntryPoint; it must hold code.
    constructor(address entryPoint_) {
        if (entryPoint_.code.length == 0) revert EntryPointNotDeployed(entryPoint_);
        entryPoint = entryPoint_;
    }

    /// @notice Only the EntryPoint may call validation.
    modifier onlyEntryPoint() {
        if (msg.sender != entryPoint) revert NotFromEntryPoint(msg.sender);
        _;
    }

    /// @notice Adds the sent value to this paymaster's deposit at the EntryPoint. Anyone may fund it.
    function deposit() external payable {
        IEntryPointFunds(entryPoint).depositTo{value: msg.value}(address(this));
        emit Deposited(msg.sender, msg.value);
    }

    /**
     * @notice Withdraws from the deposit.
     * @param to Where the funds go.
     * @param amount Amount in wei.
     */
    function withdrawTo(address payable to, uint256 amount) external onlyOwner {
        IEntryPointFunds(entryPoint).withdrawTo(to, amount);
        emit Withdrawn(to, amount);
    }

    /**
     * @notice Adds the sent value to this paymaster's stake (ERC-7562 requires a staked paymaster to read its
     *         signer set during validation).
     * @param unstakeDelaySec Seconds between unlockStake and withdrawStake; never lower than the current one.
     */
    function addStake(uint32 unstakeDelaySec) external payable onlyOwner {
        IEntryPointFunds(entryPoint).addStake{value: msg.value}(unstakeDelaySec);
        emit StakeAdded(msg.value, unstakeDelaySec);
    }

    /// @notice Starts the unstake delay; bundlers stop treating the paymaster as staked.
    function unlockStake() external onlyOwner {
        IEntryPointFunds(entryPoint).unlockStake();
        emit StakeUnlocked();
    }

    /**
     * @notice Withdraws the whole stake once the unstake delay has passed.
     * @param to Where the stake goes.
     */
    function withdrawStake(address payable to) external onlyOwner {
        IEntryPointFunds(entryPoint).withdrawStake(to);
        emit StakeWithdrawn(to);
    }

    /**
     * @notice This paymaster's deposit at the EntryPoint.
     * @return The deposit in wei.
     */
    function getDeposit() external view returns (uint256) {
        return IEntryPointFunds(entryPoint).balanceOf(address(this));
    }

    /// @notice Disabled: without an owner the deposit and stake could never be withdrawn.
    function renounceOwnership() public view virtual override(Ownable) onlyOwner {
        revert RenounceOwnershipDisabled();
    }
}
