/**
 * The checkout page: an end user tops up the gas quota of a smart account. ?account=0x… from a DApp (or typed),
 * an amount within the server's limits, Alipay or WeChat Pay → the gateway's QR payload rendered as a QR code
 * (or Alipay page pay's redirect) → live status until the callback has credited the quota, then the new balance.
 */
import QRCode from "qrcode";
import { type Order, type PublicConfig, api, parseYuan, yuan } from "./api";
import { type Lang, initialLang, t, translatePage } from "./i18n";

const PRESETS_FEN = [1_000, 5_000, 10_000, 50_000];
const POLL_MS = 1_000;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>("order-form");
const accountInput = $<HTMLInputElement>("account");
const customInput = $<HTMLInputElement>("custom");
const payButton = $<HTMLButtonElement>("pay");
const status = $<HTMLParagraphElement>("status");
const balance = $<HTMLParagraphElement>("balance");
const again = $<HTMLButtonElement>("again");
const payment = $<HTMLElement>("payment");

let lang: Lang = initialLang();
let config: PublicConfig | undefined;
let amountFen: number | undefined = PRESETS_FEN[0];
let provider: "alipay" | "wechat" = "alipay";
let current: Order | undefined;
let poll: number | undefined;

function showError(id: string, message: string | undefined): void {
  const el = $<HTMLParagraphElement>(id);
  el.textContent = message ?? "";
  el.hidden = !message;
}

function renderChoices(): void {
  const presets = $<HTMLDivElement>("presets");
  presets.replaceChildren(
    ...PRESETS_FEN.filter((fen) => !config || (fen >= Number(config.orders.minFen) && fen <= Number(config.orders.maxFen))).map((fen) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      button.textContent = `¥${yuan(fen).replace(/\.00$/, "")}`;
      button.setAttribute("aria-pressed", String(amountFen === fen && !customInput.value));
      button.addEventListener("click", () => {
        amountFen = fen;
        customInput.value = "";
        showError("amount-error", undefined);
        renderChoices();
      });
      return button;
    }),
  );
  const providers = $<HTMLDivElement>("providers");
  providers.setAttribute("role", "radiogroup");
  providers.replaceChildren(
    ...(config?.providers ?? ["alipay", "wechat"]).map((p) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      button.setAttribute("role", "radio");
      button.setAttribute("aria-checked", String(provider === p));
      button.dataset.provider = p;
      button.textContent = t(lang, p === "alipay" ? "checkout.alipay" : "checkout.wechat");
      button.addEventListener("click", () => {
        provider = p;
        renderChoices();
      });
      return button;
    }),
  );
}

function setStatus(text: string, ok = false): void {
  status.textContent = text;
  status.classList.toggle("ok", ok);
}

function validAccount(): string | undefined {
  const value = accountInput.value.trim();
  return /^0x[0-9a-fA-F]{40}$/.test(value) ? value : undefined;
}

function chosenAmount(): number | undefined {
  if (!customInput.value.trim()) return amountFen;
  const fen = parseYuan(customInput.value);
  if (fen === undefined || !config) return fen;
  return fen >= Number(config.orders.minFen) && fen <= Number(config.orders.maxFen) ? fen : undefined;
}

async function submit(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const account = validAccount();
  const fen = chosenAmount();
  showError("account-error", account ? undefined : t(lang, "error.account"));
  showError("amount-error", fen ? undefined : t(lang, "error.amount", { min: yuan(config?.orders.minFen ?? 100), max: yuan(config?.orders.maxFen ?? 500_000) }));
  showError("form-error", undefined);
  if (!account) return accountInput.focus();
  if (!fen) return customInput.focus();
  payButton.disabled = true;
  try {
    const order = await api.createOrder({ account, amountFen: fen, provider, idempotencyKey: `checkout-${crypto.randomUUID()}` });
    await showOrder(order);
  } catch (error) {
    showError("form-error", error instanceof TypeError ? t(lang, "error.network") : (error as Error).message);
  } finally {
    payButton.disabled = false;
  }
}

async function showOrder(order: Order): Promise<void> {
  current = order;
  form.hidden = true;
  payment.hidden = false;
  const providerName = t(lang, order.provider === "alipay" ? "checkout.alipay" : "checkout.wechat");
  $("payment-title").textContent = t(lang, "checkout.scan", { provider: providerName, amount: yuan(order.amountFen) });
  $("order-id").textContent = order.id;
  $("expires").textContent = t(lang, "checkout.expiresAt", { time: new Date(order.expiresAt).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en") });
  const link = $<HTMLAnchorElement>("payer-link");
  const canvas = $<HTMLCanvasElement>("qr");
  if (order.qrCode) {
    await QRCode.toCanvas(canvas, order.qrCode, { width: 240, margin: 1 });
    canvas.hidden = false;
    link.href = order.qrCode;
    link.textContent = t(lang, "checkout.openPayer");
  } else if (order.payUrl) {
    canvas.hidden = true;
    link.href = order.payUrl;
    link.textContent = t(lang, "checkout.redirect");
    link.removeAttribute("target");
  }
  setStatus(t(lang, "checkout.waiting"));
  history.replaceState(null, "", `?account=${order.account}&order=${order.id}${new URLSearchParams(location.search).get("lang") ? `&lang=${lang}` : ""}`);
  schedulePoll();
}

function schedulePoll(): void {
  window.clearTimeout(poll);
  poll = window.setTimeout(() => void refresh(), POLL_MS);
}

async function refresh(): Promise<void> {
  if (!current) return;
  try {
    current = await api.order(current.id);
  } catch {
    return schedulePoll(); // a blip: keep polling
  }
  if (current.status === "paid") {
    payment.hidden = true;
    setStatus(t(lang, "checkout.paid"), true);
    const view = await api.account(current.account).catch(() => undefined);
    if (view) balance.textContent = t(lang, "checkout.balance", { available: yuan(view.availableFen) });
    again.hidden = false;
    return;
  }
  if (current.status === "closed") {
    payment.hidden = true;
    setStatus(t(lang, "checkout.expired"));
    again.hidden = false;
    return;
  }
  schedulePoll();
}

function startAgain(): void {
  window.clearTimeout(poll);
  current = undefined;
  form.hidden = false;
  payment.hidden = true;
  again.hidden = true;
  balance.textContent = "";
  setStatus("");
  history.replaceState(null, "", accountInput.value ? `?account=${accountInput.value.trim()}` : location.pathname);
  payButton.focus();
}

function applyLang(): void {
  translatePage(lang);
  renderChoices();
  if (current) void showOrder(current);
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  accountInput.value = params.get("account") ?? "";
  translatePage(lang);
  renderChoices();
  $<HTMLButtonElement>("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    applyLang();
  });
  form.addEventListener("submit", (e) => void submit(e));
  again.addEventListener("click", startAgain);
  customInput.addEventListener("input", () => renderChoices());
  try {
    config = await api.config();
    renderChoices();
  } catch {
    showError("form-error", t(lang, "error.network"));
  }
  const orderId = params.get("order");
  if (orderId) {
    // reopened (or refreshed) while paying: pick the order up again
    const order = await api.order(orderId).catch(() => undefined);
    if (order) await showOrder(order);
  }
}

void main();
