import type { Address, Hex } from "viem";
import { entryPoint07Address, entryPoint08Address, entryPoint09Address } from "viem/account-abstraction";

/** EntryPoint v0.7, at the same address on every chain that has it (viem's constant, under the name we use). */
export { entryPoint07Address as ENTRY_POINT_V07 } from "viem/account-abstraction";

/** eth-infinitism's SimpleAccountFactory for EntryPoint v0.7 (permissionless' default). */
export const SIMPLE_ACCOUNT_FACTORY_V07: Address = "0x91E60e0613810449d098b0b5Ec8b51A0FE8c8985";

/** Arachnid's deterministic deployment proxy: CREATE2 with calldata salt ‖ initCode. */
export const DETERMINISTIC_DEPLOYER: Address = "0x4e59b44847b379578588920ca78fbf26c0b4956c";

/** The salt eth-infinitism used for EntryPoint v0.7; the SimpleAccountFactory used zero. */
export const ENTRY_POINT_V07_SALT: Hex = "0x90d8084deab30c2a37c45e8d47f49f2f7965183cb6990a98943ef94940681de3";
export const SIMPLE_ACCOUNT_FACTORY_V07_SALT: Hex = `0x${"00".repeat(32)}`;

/** The EntryPoint versions served: each has its own paymaster contract, userOpHash and paymasterData layout. */
export const ENTRY_POINT_VERSIONS = ["0.7", "0.8", "0.9"] as const;
export type EntryPointVersion = (typeof ENTRY_POINT_VERSIONS)[number];

/** EntryPoint v0.8 (EIP-7702 accounts, EIP-712 userOpHash) and v0.9 (parallel paymaster signing). */
export const ENTRY_POINT_V08: Address = entryPoint08Address;
export const ENTRY_POINT_V09: Address = entryPoint09Address;
export const ENTRY_POINT_V08_SALT: Hex = "0x0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9";

/** eth-infinitism's SimpleAccountFactory for v0.8 (permissionless' default) and v0.9. */
export const SIMPLE_ACCOUNT_FACTORY_V08: Address = "0x13E9ed32155810FDbd067D4522C492D6f68E5944";
export const SIMPLE_ACCOUNT_FACTORY_V09: Address = "0xf4A7018FdBF22804526eC4b77DcE4f9b0D27a395";

/** eth-infinitism's Simple7702Account, the delegate of an EIP-7702 EOA (viem's toSimple7702SmartAccount default). */
export const SIMPLE_7702_ACCOUNT_V08: Address = "0xe6Cae83BdE06E4c305530e199D7217f42808555B";
export const SIMPLE_7702_ACCOUNT_V09: Address = "0xa46cc63eBF4Bd77888AA327837d20b23A63a56B5";

/** Each version's EntryPoint, at the same address on every chain that has it. */
export const CANONICAL_ENTRY_POINTS: Readonly<Record<EntryPointVersion, Address>> = {
  "0.7": entryPoint07Address,
  "0.8": entryPoint08Address,
  "0.9": entryPoint09Address,
};
