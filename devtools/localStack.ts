import path from "node:path";

/** Where `npm start` records the running local stack's URLs and demo API key, for `npm run demo` and tools. */
export const LOCAL_STACK_FILE = path.resolve(__dirname, "..", ".data", "local-stack.json");

export type LocalStackInfo = {
  serverUrl: string;
  bundlerUrl: string;
  rpcUrl: string;
  chainId: number;
  simulatorUrl: string;
  apiKey: string;
  paymaster: string;
};
