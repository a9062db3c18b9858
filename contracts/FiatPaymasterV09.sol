// SPDX-License-Identifier: GPL-3.0
pragma solidity ^0.8.28;

import {IPaymaster} from "@account-abstraction/contracts-v09/interfaces/IPaymaster.sol";
import {PackedUserOperation} from "@account-abstraction/contracts-v09/interfaces/PackedUserOperation.sol";
import {_packValidationData} from "@account-abstraction/contracts-v09/core/Helpers.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {EntryPointFunds} from "./EntryPointFunds.sol";
import {SignerSet} from "./SignerSet.sol";

/**
 * @title FiatPaymasterV09
 * @notice Verifying paymaster for EntryPoint v0.9, signing in parallel with the account: the paymaster's signature
 *         travels outside the userOpHash (v0.9's paymasterSignature suffix), so the server signs the userOpHash
 *         itself, which already binds every field, this paymaster, the chain, the EntryPoint and a 7702 delegate.
 *
 * paymasterAndData layout (bytes):
 *   [0:20)     paymaster address                   (EntryPoint)
 *   [20:36)    paymasterVerificationGasLimit       (EntryPoint)
 *   [36:52)    paymasterPostOpGasLimit             (EntryPoint)
 *   [52:58)    validUntil, uint48 big-endian       (0 = no expiry)  ─┐ paymasterData, covered by the userOpHash
 *   [58:64)    validAfter, uint48 big-endian                        ─┘
 *   [64:129)   paymasterSignature r ‖ s ‖ v over getHash(userOpHash), EIP-191 prefixed
 *   [129:131)  uint16 paymasterSignature length (65)  (EntryPoint v0.9)
 *   [131:139)  magic 0x22e325a297439656               (EntryPoint v0.9)
 */
contract FiatPaymasterV09 is IPaymaster, EntryPointFunds, SignerSet {
    uint256 private constant PAYMASTER_DATA_OFFSET = 52;
    uint256 private constant VALID_UNTIL_OFFSET = PAYMASTER_DATA_OFFSET;
    uint256 private constant VALID_AFTER_OFFSET = VALID_UNTIL_OFFSET + 6;
    uint256 private constant SIGNATURE_OFFSET = VALID_AFTER_OFFSET + 6;
    uint256 private constant SIGNATURE_LENGTH = 65;
    uint256 private constant SUFFIX_OFFSET = SIGNATURE_OFFSET + SIGNATURE_LENGTH;
    /// @notice The EntryPoint's paymaster signature suffix: uint16 length ‖ keccak256("PaymasterSignature")[:8].
    bytes10 private constant SIGNATURE_SUFFIX = bytes10(abi.encodePacked(uint16(SIGNATURE_LENGTH), bytes8(0x22e325a297439656)));
    uint256 private constant PAYMASTER_AND_DATA_LENGTH = SUFFIX_OFFSET + 10;

    /// @notice postOp is never requested (validation returns an empty context), so a call to it is a bug.
    error PostOpNotSupported();

    /**
     * @param entryPoint_ The EntryPoint v0.9 (canonical: 0x433709009B8330FDa32311DF1C2AFA402eD8D009).
     * @param owner_ The owner; passed explicitly because a CREATE2 deployer is msg.sender here.
     */
    constructor(address entryPoint_, address owner_) Ownable(owner_) EntryPointFunds(entryPoint_) {}

    /**
     * @notice The hash a signer signs (with the EIP-191 prefix) to sponsor the operation whose userOpHash is given.
     * @dev The userOpHash covers paymasterData (the validity window) but not paymasterSignature; this paymaster's
     *      address is hashed in again so the signature is good for this contract only.
     * @param userOpHash The EntryPoint v0.9 userOpHash.
     * @return The hash to sign.
     */
    function getHash(bytes32 userOpHash) public view returns (bytes32) {
        return keccak256(abi.encode(userOpHash, address(this)));
    }

    /**
     * @notice Called by the EntryPoint during validation: sponsors the operation if a current signer signed it.
     * @dev A malformed or wrong signature returns SIG_VALIDATION_FAILED instead of reverting, so bundlers can
     *      estimate gas with a stub of the final length.
     * @param userOp The UserOperation.
     * @param userOpHash Its hash, as the EntryPoint computed it.
     * @return context Always empty: there is no postOp.
     * @return validationData Signature result and validity window, packed for the EntryPoint.
     */
    function validatePaymasterUserOp(PackedUserOperation calldata userOp, bytes32 userOpHash, uint256)
        external
        view
        onlyEntryPoint
        returns (bytes memory context, uint256 validationData)
    {
        bytes calldata paymasterAndData = userOp.paymasterAndData;
        if (
            paymasterAndData.length != PAYMASTER_AND_DATA_LENGTH
                || bytes10(paymasterAndData[SUFFIX_OFFSET:PAYMASTER_AND_DATA_LENGTH]) != SIGNATURE_SUFFIX
        ) return ("", _packValidationData(true, 0, 0));

        uint48 validUntil = uint48(bytes6(paymasterAndData[VALID_UNTIL_OFFSET:VALID_AFTER_OFFSET]));
        uint48 validAfter = uint48(bytes6(paymasterAndData[VALID_AFTER_OFFSET:SIGNATURE_OFFSET]));
        bytes32 hash = MessageHashUtils.toEthSignedMessageHash(getHash(userOpHash));
        (address recovered, ECDSA.RecoverError error,) =
            ECDSA.tryRecoverCalldata(hash, paymasterAndData[SIGNATURE_OFFSET:SUFFIX_OFFSET]);
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
