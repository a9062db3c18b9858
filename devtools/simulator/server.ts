/**
 * The gateway simulator as one HTTP server: Alipay's gateway (`/alipay/gateway.do`), WeChat Pay v3 (`/v3/...`),
 * the payer pages behind the QR payloads (`/payer/<provider>/<orderId>`), the phone flows' pages (Alipay's WAP
 * cashier, WeChat's H5 cashier `/payer/wechat/checkmweb`, WeChat's OAuth `/connect/oauth2/authorize` and
 * `/sns/oauth2/access_token`, a WeixinJSBridge stand-in `/sim/wechat/jsbridge.js`), and a small control API for tests and
 * demos (`/sim/...`): pay or cancel a trade, set notification faults, list deliveries.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import express from "express";
import type { SandboxFile } from "../../server/config/sandbox";
import type { Provider } from "../../server/payments/gateway";
import { ALIPAY_GATEWAY_PATH, type AlipaySandbox, createAlipaySimulator, generateAlipaySandbox, newSellerId } from "./alipay";
import type { NotificationFaults } from "./notifier";
import type { BillFault, ProviderSimulator, SimulatorClock } from "./types";
import { type WechatProviderSimulator, type WechatSandbox, createWechatSimulator, generateWechatSandbox, wechatSandboxGatewayConfig } from "./wechat";

export type SimulatorOptions = {
  port?: number;
  host?: string;
  /** Multiplies the gateways' notification retry delays (1 = real time). */
  timeScale?: number;
  faults?: NotificationFaults;
  /** How the simulated WeChat Pay signs: with a platform certificate (serial) or a WeChat Pay public key id. */
  wechatSignWith?: "certificate" | "publicKey";
  /** Reuse these identities (e.g. loaded from a sandbox folder) instead of generating new keys. */
  sandbox?: { alipay: AlipaySandbox; wechat: WechatSandbox };
  /** Business time (trades, payments, refunds, bill days); default the real clock. Signatures always use real time. */
  clock?: SimulatorClock;
  /** The merchant's registered WeChat H5 and OAuth domains (hostnames); default 127.0.0.1 and localhost. */
  wechatRegisteredDomains?: readonly string[];
};

export type Simulator = {
  url: string;
  alipay: ProviderSimulator;
  /** With WeChat's own controls: refund outcomes, the merchant's balance, platform certificate rotation. */
  wechat: WechatProviderSimulator;
  sandbox: { alipay: AlipaySandbox; wechat: WechatSandbox };
  /** The merchant-side configuration matching this simulator, as the server reads it from SANDBOX_DIR. */
  serverSandbox: SandboxFile;
  server: Server;
  close: () => Promise<void>;
};

export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const sandbox = options.sandbox ?? { alipay: generateAlipaySandbox(), wechat: await generateWechatSandbox() };
  // keys written before the simulator played WeChat's OAuth have no AppSecret yet
  sandbox.wechat.appSecret ??= randomBytes(16).toString("hex");
  // and those written before the seller id was part of the sandbox have none
  sandbox.alipay.sellerId ??= newSellerId();
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host && options.host !== "0.0.0.0" ? options.host : "127.0.0.1"}:${port}`;

  const common = { publicUrl: url, timeScale: options.timeScale, faults: options.faults, clock: options.clock };
  const simulators = {
    alipay: createAlipaySimulator({ sandbox: sandbox.alipay, ...common }),
    wechat: createWechatSimulator({ sandbox: sandbox.wechat, ...common, signWith: options.wechatSignWith, registeredDomains: options.wechatRegisteredDomains }),
  };

  const app = express();
  app.disable("x-powered-by");
  app.use(controlRouter(simulators satisfies Record<Provider, ProviderSimulator>));
  app.use(simulators.alipay.router);
  app.use(simulators.wechat.router);
  // browsers ask every page's origin for one; the payer pages have none
  app.get("/favicon.ico", (_req, res) => void res.status(204).end());
  app.get("/", (_req, res) => {
    res.type("text/plain").send(`fiat-paymaster gateway simulator\nAlipay gateway: ${url}${ALIPAY_GATEWAY_PATH}\nWeChat Pay v3: ${url}/v3\n`);
  });
  server.on("request", app);

  const serverSandbox: SandboxFile = {
    alipay: {
      appId: sandbox.alipay.appId,
      sellerId: sandbox.alipay.sellerId,
      privateKey: sandbox.alipay.merchantPrivateKey,
      alipayPublicKey: sandbox.alipay.alipayPublicKey,
      gatewayUrl: `${url}${ALIPAY_GATEWAY_PATH}`,
    },
    wechat: (({ notifyUrl: _n, timeoutMs: _t, flows: _f, ...rest }) => rest)(
      wechatSandboxGatewayConfig(sandbox.wechat, { baseUrl: url, notifyUrl: "", platformMode: options.wechatSignWith }),
    ),
  };

  return {
    url,
    ...simulators,
    sandbox,
    serverSandbox,
    server,
    close: async () => {
      simulators.alipay.notifier.close();
      simulators.wechat.notifier.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Writes `<dir>/sandbox.json` for the server's SANDBOX_DIR, and the simulator's own keys to re-use on restart. */
export function writeSandboxDir(dir: string, simulator: Simulator): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "sandbox.json"), `${JSON.stringify(simulator.serverSandbox, null, 2)}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, "simulator-keys.json"), `${JSON.stringify(simulator.sandbox, null, 2)}\n`, { mode: 0o600 });
}

function readBillFault(body: unknown): BillFault | undefined {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b.orderId !== "string" || b.orderId === "") return undefined;
  if (b.kind === "silent_payment" || b.kind === "amount_off_by_one_fen") return { kind: b.kind, orderId: b.orderId };
  if (b.kind === "console_refund" && (typeof b.amountFen === "number" || typeof b.amountFen === "string") && /^[1-9]\d*$/.test(String(b.amountFen))) {
    return { kind: "console_refund", orderId: b.orderId, amountFen: BigInt(b.amountFen) };
  }
  return undefined;
}

function controlRouter(simulators: Record<Provider, ProviderSimulator>): express.Router {
  const router = express.Router();
  const pick = (provider: string): ProviderSimulator | undefined => (provider === "alipay" || provider === "wechat" ? simulators[provider] : undefined);

  router.post("/sim/:provider/trades/:orderId/:action", async (req, res) => {
    const simulator = pick(req.params.provider);
    const action = req.params.action;
    if (!simulator || (action !== "pay" && action !== "cancel")) {
      res.status(404).json({ error: "unknown provider or action" });
      return;
    }
    if (!simulator.trade(req.params.orderId)) {
      res.status(404).json({ error: `no ${simulator.provider} trade ${req.params.orderId}` });
      return;
    }
    try {
      await simulator[action](req.params.orderId);
      res.json({ ok: true, status: simulator.trade(req.params.orderId)?.status });
    } catch (error) {
      res.status(409).json({ error: (error as Error).message });
    }
  });

  router.put("/sim/:provider/faults", express.json(), (req, res) => {
    const simulator = pick(req.params.provider);
    if (!simulator) {
      res.status(404).json({ error: "unknown provider" });
      return;
    }
    simulator.notifier.setFaults((req.body ?? {}) as NotificationFaults);
    res.json(simulator.notifier.getFaults());
  });

  // a difference in the bills: {"kind":"silent_payment"|"amount_off_by_one_fen","orderId"} or {"kind":"console_refund","orderId","amountFen"}
  router.post("/sim/:provider/bill-faults", express.json(), async (req, res) => {
    const simulator = pick(req.params.provider);
    const fault = readBillFault(req.body);
    if (!simulator || !fault) {
      res.status(simulator ? 400 : 404).json({ error: simulator ? "body must be a bill fault: kind silent_payment, amount_off_by_one_fen or console_refund" : "unknown provider" });
      return;
    }
    try {
      await simulator.injectBillFault(fault);
      res.json({ ok: true });
    } catch (error) {
      res.status(409).json({ error: (error as Error).message });
    }
  });

  router.get("/sim/:provider/deliveries", (req, res) => {
    const simulator = pick(req.params.provider);
    if (!simulator) {
      res.status(404).json({ error: "unknown provider" });
      return;
    }
    res.json(simulator.notifier.deliveries());
  });
  return router;
}
