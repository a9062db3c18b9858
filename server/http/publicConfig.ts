/**
 * `GET /v1/config`: what the pages need to know — the order limits, the enabled gateways, the sponsored chains, and
 * (sandbox only) each chain's RPC and bundler URLs and the demo API key, for the demo DApp page.
 */
import express, { type Router } from "express";
import type { ChainRuntime } from "../chain/chainRuntime";
import type { Config } from "../config/env";
import type { PaymentGateway, Provider } from "../payments/gateway";
import { type PublicConfig, publicConfigSchema } from "../schemas/common";
import { INTERNAL, type ApiRegistry, jsonAnswer, problems } from "./openapiResponses";

export type PublicConfigDeps = {
  config: Pick<Config, "orders" | "sandbox" | "bootstrapApiKey"> & { wechat?: Pick<NonNullable<Config["wechat"]>, "jsBridgeShimUrl"> };
  gateways: ReadonlyMap<Provider, PaymentGateway>;
  chains: ReadonlyMap<number, ChainRuntime>;
};

export function publicConfig({ config, gateways, chains }: PublicConfigDeps): PublicConfig {
  return {
    orders: { minFen: config.orders.minFen.toString(), maxFen: config.orders.maxFen.toString() },
    providers: [...gateways.keys()],
    flows: Object.fromEntries([...gateways].map(([provider, g]) => [provider, [g.defaultFlow, ...g.flows.filter((f) => f !== g.defaultFlow)]])),
    // the stand-in for WeChat's own WeixinJSBridge is the simulator's: never named outside sandbox mode
    ...(config.sandbox && config.wechat?.jsBridgeShimUrl ? { wechatJsBridgeShim: config.wechat.jsBridgeShimUrl } : {}),
    sandbox: config.sandbox,
    chains: [...chains.values()].map((c) => ({
      chainId: c.config.chainId,
      name: c.config.name,
      paymaster: c.entryPoints[0]!.paymaster,
      entryPoint: c.entryPoints[0]!.address,
      entryPoints: c.entryPoints.map((ep) => ({ version: ep.version, entryPoint: ep.address, paymaster: ep.paymaster })),
      ...(config.sandbox ? { rpcUrl: c.config.rpcUrl, bundlerUrl: c.config.bundlerUrl } : {}),
    })),
    ...(config.sandbox && config.bootstrapApiKey ? { demoApiKey: config.bootstrapApiKey } : {}),
  };
}

export function publicConfigRoutes(deps: PublicConfigDeps): Router {
  const router = express.Router();
  router.get("/v1/config", (_req, res) => {
    res.json(publicConfig(deps));
  });
  return router;
}

/** The OpenAPI path of `publicConfigRoutes`. */
export function registerPublicConfigPaths(registry: ApiRegistry): void {
  registry.registerPath({
    method: "get",
    path: "/v1/config",
    tags: ["payments"],
    operationId: "getConfig",
    summary: "What the web pages need to know",
    description: "The order limits and enabled gateways, and the sponsored chains; in sandbox mode also each chain's RPC and bundler URLs and the demo API key, for the demo DApp page.",
    responses: { "200": jsonAnswer("the public configuration", publicConfigSchema), ...problems([INTERNAL]) },
  });
}
