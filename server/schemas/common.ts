/** What every page and probe reads: the public configuration (`GET /v1/config`) and the health answers. */
import { ENTRY_POINT_VERSIONS } from "../chain/addresses";
import { paymentFlowSchema, providerSchema } from "./payments";
import { addressOut, fenOut } from "./primitives";
import { z } from "./zod";

export const publicConfigSchema = z
  .object({
    orders: z.object({ minFen: fenOut.describe("the smallest order"), maxFen: fenOut.describe("the largest order") }),
    providers: z.array(providerSchema).describe("the enabled payment gateways"),
    flows: z
      .partialRecord(providerSchema, z.array(paymentFlowSchema))
      .optional()
      .describe("each enabled gateway's enabled payment flows, the default first (what POST /v1/orders takes as flow)"),
    wechatJsBridgeShim: z.url().optional().describe("sandbox only: the simulator's WeixinJSBridge stand-in, for JSAPI outside WeChat's browser"),
    sandbox: z.boolean().describe("the server runs against the gateway simulator"),
    chains: z.array(
      z.object({
        chainId: z.number().int(),
        name: z.string(),
        paymaster: addressOut.describe("the first served EntryPoint's paymaster (see entryPoints)"),
        entryPoint: addressOut.describe("the first served EntryPoint (see entryPoints)"),
        entryPoints: z
          .array(z.object({ version: z.enum(ENTRY_POINT_VERSIONS), entryPoint: addressOut, paymaster: addressOut }))
          .describe("every EntryPoint sponsored on the chain, with its paymaster"),
        rpcUrl: z.url().optional().describe("sandbox only"),
        bundlerUrl: z.url().optional().describe("sandbox only, when configured"),
      }),
    ),
    demoApiKey: z.string().optional().describe("sandbox only, when a bootstrap API key is configured: the key the demo DApp page uses"),
  })
  .openapi("PublicConfig");
export type PublicConfig = z.input<typeof publicConfigSchema>;

export const chainStatusSchema = z
  .object({
    chainId: z.number().int(),
    rpc: z.enum(["ok", "unreachable"]),
    block: z.string().regex(/^\d+$/).optional().describe("the latest block number, when the RPC answered"),
    depositHealthy: z.boolean().describe("whether the paymaster's deposit covers its open holds plus the threshold (if not, sponsorship on the chain is paused)"),
  })
  .openapi("ChainStatus");

export const healthSchema = z.object({ status: z.literal("ok") });
export const readySchema = z.object({
  status: z.literal("ready"),
  database: z.enum(["postgres", "pglite"]),
  providers: z.array(providerSchema).describe("the enabled payment gateways"),
  sponsorship: z.enum(["on", "off"]),
  chains: z.array(chainStatusSchema),
});
