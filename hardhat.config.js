// @ts-check
// Plain CommonJS so Hardhat needs no TypeScript loader (ts-node) of its own.
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

// The compiler comes from the npm `solc` package (pinned in package-lock.json), so compiling never downloads
// anything and the bytecode, hence the CREATE2 address, is the same on every machine.
/** @type {string} */
const SOLC_VERSION = require("solc/package.json").version;

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (/** @type {{ solcVersion: string }} */ args, _hre, runSuper) => {
  if (args.solcVersion !== SOLC_VERSION) return runSuper();
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: require("solc").version(),
  };
});

/** @type {import("hardhat/types").HardhatUserConfig} */
module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: {
      evmVersion: "cancun",
      viaIR: true,
      optimizer: { enabled: true, runs: 1_000_000 },
    },
  },
  paths: { sources: "./contracts", artifacts: "./artifacts", cache: "./cache" },
};
