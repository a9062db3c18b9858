// SPDX-License-Identifier: GPL-3.0
pragma solidity ^0.8.28;

import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {IPaymaster} from "@account-abstraction/contracts/interfaces/IPaymaster.sol";
import {PackedUserOperation} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {_packValidationData} from "@account-abstraction/contracts/core/Helpers.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {SignerSet} from "./SignerSet.sol";

/**
 * @title FiatPaymaster
 * @notice Verifying paymaster for EntryPoint v0.7: pays for a UserOperation when one of its signers has
 *         signed it. The fiat-paymaster server signs only after reserving the user's prepaid (CNY) quota, and
 *         charges the actual cost from the EntryPoint's `UserOperationEvent`, so the contract needs no postOp.
 *
 * paymasterAndData layout (bytes):
 *   [0:20)    paymaster address                  (EntryPoint v0.7)
 *   [20:36)   paymasterVerificationGasLimit      (EntryPoint v0.7)
 *   [36:52)   paymasterPostOpGasLimit            (EntryPoint v0.7)
 *   [52:58)   validUntil, uint48 big-endian      (0 = no expiry)
 *   [58:64)   validAfter, uint48 big-endian
 *   [64:129)  signature r ‖ s ‖ v, 65 bytes, over getHash(...) with the EIP-191 "Ethereum Signed Message" prefix
 */
contract FiatPaymaster is IPaymaster, SignerSet {
    /// @notice Byte offset of paymasterVerificationGasLimit in paymasterAndData.
    uint256 private constant PAYMASTER_GAS_LIMITS_OFFSET = 20;
    /// @notice Byte offset of paymasterData (end of the EntryPoint's fixed fields).
    uint256 private constant PAYMASTER_DATA_OFFSET = 52;
    /// @notice Byte offset of validUntil.
    uint256 private constant VALID_UNTIL_OFFSET = PAYMASTER_DATA_OFFSET;
    /// @notice Byte offset of validAfter.
    uint256 private constant VALID_AFTER_OFFSET = VALID_UNTIL_OFFSET + 6;
    /// @notice Byte offset of the signature.
    uint256 private constant SIGNATURE_OFFSET = VALID_AFTER_OFFSET + 6;
    /// @notice Length of the signature: r (32) ‖ s (32) ‖ v (1).
    uint256 private constant SIGNATURE_LENGTH = 65;
    /// @notice Exact length of a well-formed paymasterAndData.
    uint256 private constant PAYMASTER_AND_DATA_LENGTH = SIGNATURE_OFFSET + SIGNATURE_LENGTH;

    /// @notice The EntryPoint this paymaster serves (v0.7).
    IEntryPoint public immutable entryPoint;

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
    /// @notice postOp is never requested (validation returns an empty context), so a call to it is a bug.
    error PostOpNotSupported();
    /// @notice Renouncing ownership would lock the deposit and stake forever.
    error RenounceOwnershipDisabled();
    /// @notice There is no contract at the EntryPoint address.
    error EntryPointNotDeployed(address entryPoint);

    /**
     * @param entryPoint_ The EntryPoint v0.7 (canonical: 0x0000000071727De22E5E9d8BAf0edAc6f37da032).
     * @param owner_ The owner; passed explicitly because a CREATE2 deployer is msg.sender here.
     */
    constructor(IEntryPoint entryPoint_, address owner_) Ownable(owner_) {
        if (address(entryPoint_).code.length == 0) revert EntryPointNotDeployed(address(entryPoint_));
        entryPoint = entryPoint_;
    }

    /**
     * @notice The hash a signer signs (with the EIP-191 prefix) to sponsor `userOp` between the given times.
     * @dev Binds every field the user could change after signing except the signature fields themselves, plus
     *      the chain, this paymaster and the EntryPoint, so the data is good for exactly one operation.
     * @param userOp The packed UserOperation; its paymasterAndData must hold at least the gas limits.
     * @param validUntil Last timestamp the sponsorship is valid (0 = no expiry).
     * @param validAfter First timestamp the sponsorship is valid.
     * @return The hash to sign.
     */
    function getHash(PackedUserOperation calldata userOp, uint48 validUntil, uint48 validAfter)
        public
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                block.chainid,
                address(this),
                address(entryPoint),
                userOp.sender,
                userOp.nonce,
                keccak256(userOp.initCode),
                keccak256(userOp.callData),
                userOp.accountGasLimits,
                bytes32(userOp.paymasterAndData[PAYMASTER_GAS_LIMITS_OFFSET:PAYMASTER_DATA_OFFSET]),
                userOp.preVerificationGas,
                userOp.gasFees,
                validUntil,
                validAfter
            )
        );
    }

    /**
     * @notice Called by the EntryPoint during validation: sponsors `userOp` if a current signer signed it.
     * @dev A malformed or wrong signature returns SIG_VALIDATION_FAILED instead of reverting, so bundlers can
     *      estimate gas with a stub of the final length (EntryPoint reports AA34; an expired window, AA32).
     * @param userOp The UserOperation.
     * @return context Always empty: there is no postOp.
     * @return validationData Signature result and validity window, packed for the EntryPoint.
     */
    function validatePaymasterUserOp(PackedUserOperation calldata userOp, bytes32, uint256)
        external
        view
        returns (bytes memory context, uint256 validationData)
    {
        if (msg.sender != address(entryPoint)) revert NotFromEntryPoint(msg.sender);
        bytes calldata paymasterAndData = userOp.paymasterAndData;
        if (paymasterAndData.length != PAYMASTER_AND_DATA_LENGTH) return ("", _packValidationData(true, 0, 0));

        uint48 validUntil = uint48(bytes6(paymasterAndData[VALID_UNTIL_OFFSET:VALID_AFTER_OFFSET]));
        uint48 validAfter = uint48(bytes6(paymasterAndData[VALID_AFTER_OFFSET:SIGNATURE_OFFSET]));
        bytes32 hash = MessageHashUtils.toEthSignedMessageHash(getHash(userOp, validUntil, validAfter));
        (address recovered, ECDSA.RecoverError error,) =
            ECDSA.tryRecoverCalldata(hash, paymasterAndData[SIGNATURE_OFFSET:PAYMASTER_AND_DATA_LENGTH]);
        bool sigFailed = error != ECDSA.RecoverError.NoError || !isSigner(recovered);
        return ("", _packValidationData(sigFailed, validUntil, validAfter));
    }

    /// @notice Never called: validation returns an empty context. Reverts if anything calls it.
    function postOp(PostOpMode, bytes calldata, uint256, uint256) external pure {
        revert PostOpNotSupported();
    }

    /// @notice Adds the sent value to this paymaster's deposit at the EntryPoint. Anyone may fund it.
    function deposit() external payable {
        entryPoint.depositTo{value: msg.value}(address(this));
        emit Deposited(msg.sender, msg.value);
    }

    /**
     * @notice Withdraws from the deposit.
     * @param to Where the funds go.
     * @param amount Amount in wei.
     */
    function withdrawTo(address payable to, uint256 amount) external onlyOwner {
        entryPoint.withdrawTo(to, amount);
        emit Withdrawn(to, amount);
    }

    /**
     * @notice Adds the sent value to this paymaster's stake (ERC-7562 requires a staked paymaster to read its
     *         signer set during validation).
     * @param unstakeDelaySec Seconds between unlockStake and withdrawStake; never lower than the current one.
     */
    function addStake(uint32 unstakeDelaySec) external payable onlyOwner {
        entryPoint.addStake{value: msg.value}(unstakeDelaySec);
        emit StakeAdded(msg.value, unstakeDelaySec);
    }

    /// @notice Starts the unstake delay; bundlers stop treating the paymaster as staked.
    function unlockStake() external onlyOwner {
        entryPoint.unlockStake();
        emit StakeUnlocked();
    }

    /**
     * @notice Withdraws the whole stake once the unstake delay has passed.
     * @param to Where the stake goes.
     */
    function withdrawStake(address payable to) external onlyOwner {
        entryPoint.withdrawStake(to);
        emit StakeWithdrawn(to);
    }

    /**
     * @notice This paymaster's deposit at the EntryPoint.
     * @return The deposit in wei.
     */
    function getDeposit() external view returns (uint256) {
        return entryPoint.balanceOf(address(this));
    }

    /// @notice Disabled: without an owner the deposit and stake could never be withdrawn.
    function renounceOwnership() public view override onlyOwner {
        revert RenounceOwnershipDisabled();
    }
}
