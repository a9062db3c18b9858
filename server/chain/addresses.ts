import type { Address, Hex } from "viem";

/** EntryPoint v0.7, at the same address on every chain that has it (viem's constant, under the name we use). */
export { entryPoint07Address as ENTRY_POINT_V07 } from "viem/account-abstraction";

/** eth-infinitism's SimpleAccountFactory for EntryPoint v0.7 (permissionless' default). */
export const SIMPLE_ACCOUNT_FACTORY_V07: Address = "0x91E60e0613810449d098b0b5Ec8b51A0FE8c8985";

/** Arachnid's deterministic deployment proxy: CREATE2 with calldata salt ‖ initCode. */
export const DETERMINISTIC_DEPLOYER: Address = "0x4e59b44847b379578588920ca78fbf26c0b4956c";

/** The salt eth-infinitism used for EntryPoint v0.7; the SimpleAccountFactory used zero. */
export const ENTRY_POINT_V07_SALT: Hex = "0x90d8084deab30c2a37c45e8d47f49f2f7965183cb6990a98943ef94940681de3";
export const SIMPLE_ACCOUNT_FACTORY_V07_SALT: Hex = `0x${"00".repeat(32)}`;
