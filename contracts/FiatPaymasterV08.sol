// SPDX-License-Identifier: GPL-3.0
pragma solidity ^0.8.28;

import {IPaymaster} from "@account-abstraction/contracts-v08/interfaces/IPaymaster.sol";
import {PackedUserOperation} from "@account-abstraction/contracts-v08/interfaces/PackedUserOperation.sol";
import {Eip7702Support} from "@account-abstraction/contracts-v08/core/Eip7702Support.sol";
import {_packValidationData} from "@account-abstraction/contracts-v08/core/Helpers.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {EntryPointFunds} from "./EntryPointFunds.sol";
import {SignerSet} from "./SignerSet.sol";

/**
 * @title FiatPaymasterV08
 * @notice Verifying paymaster for EntryPoint v0.8 (EIP-7702 accounts): pays for a UserOperation when one of its
 *         signers has signed it. paymasterAndData is laid out as for v0.7 (FiatPaymaster.sol):
 *
 *   [0:20)    paymaster address                  (EntryPoint)
 *   [20:36)   paymasterVerificationGasLimit      (EntryPoint)
 *   [36:52)   paymasterPostOpGasLimit            (EntryPoint)
 *   [52:58)   validUntil, uint48 big-endian      (0 = no expiry)
 *   [58:64)   validAfter, uint48 big-endian
 *   [64:129)  signature r ‖ s ‖ v, 65 bytes, over getHash(...) with the EIP-191 "Ethereum Signed Message" prefix
 *
 * @dev For an EIP-7702 account (initCode starting with the 0x7702 marker) the hash binds the account's delegate
 *      as the EntryPoint's userOpHash does: keccak256(delegate ‖ initCode[20:]) in place of keccak256(initCode).
 */
contract FiatPaymasterV08 is IPaymaster, EntryPointFunds, SignerSet {
    uint256 private constant PAYMASTER_GAS_LIMITS_OFFSET = 20;
    uint256 private constant PAYMASTER_DATA_OFFSET = 52;
    uint256 private constant VALID_UNTIL_OFFSET = PAYMASTER_DATA_OFFSET;
    uint256 private constant VALID_AFTER_OFFSET = VALID_UNTIL_OFFSET + 6;
    uint256 private constant SIGNATURE_OFFSET = VALID_AFTER_OFFSET + 6;
    uint256 private constant SIGNATURE_LENGTH = 65;
    uint256 private constant PAYMASTER_AND_DATA_LENGTH = SIGNATURE_OFFSET + SIGNATURE_LENGTH;

    /// @notice postOp is never requested (validation returns an empty context), so a call to it is a bug.
    error PostOpNotSupported();

    /**
     * @param entryPoint_ The EntryPoint v0.8 (canonical: 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108).
     * @param owner_ The owner; passed explicitly because a CREATE2 deployer is msg.sender here.
     */
    constructor(address entryPoint_, address owner_) Ownable(owner_) EntryPointFunds(entryPoint_) {}

    /**
     * @notice The hash a signer signs (with the EIP-191 prefix) to sponsor `userOp` between the given times.
     * @dev Binds every field the user could change after signing except the signature fields themselves, plus
     *      the chain, this paymaster and the EntryPoint, and a 7702 account's delegate.
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
        bytes calldata initCode = userOp.initCode;
        // as Eip7702Support._getEip7702InitCodeHashOverride, with initCode decoded once
        bytes32 initCodeHash;
        if (Eip7702Support._isEip7702InitCode(initCode)) {
            address delegate = Eip7702Support._getEip7702Delegate(userOp.sender);
            initCodeHash = initCode.length < 21
                ? keccak256(abi.encodePacked(delegate))
                : keccak256(abi.encodePacked(delegate, initCode[20:]));
        } else {
            initCodeHash = keccak256(initCode);
        }
        return keccak256(
            abi.encode(
                block.chainid,
                address(this),
                entryPoint,
                userOp.sender,
                userOp.nonce,
                initCodeHash,
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
     *      estimate gas with a stub of the final length.
     * @param userOp The UserOperation.
     * @return context Always empty: there is no postOp.
     * @return validationData Signature result and validity window, packed for the EntryPoint.
     */
    function validatePaymasterUserOp(PackedUserOperation calldata userOp, bytes32, uint256)
        external
        view
        onlyEntryPoint
        returns (bytes memory context, uint256 validationData)
    {
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

    /// @inheritdoc EntryPointFunds
    function renounceOwnership() public view override(Ownable, EntryPointFunds) onlyOwner {
        revert RenounceOwnershipDisabled();
    }
}
