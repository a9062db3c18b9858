/**
 * The operations dashboard: everything through the /admin API with the admin token (kept in sessionStorage for
 * this tab only). Overview (per-chain deposit, stake, signers, settlement lag; top-ups and sponsored gas per
 * hour), orders with their callbacks and refunds, accounts with their ledger and manual adjustments, holds,
 * settlements, refunds, the daily reconciliation (each day's report: ties out, or each difference with its cause;
 * run a day again) with the reconciler's runs, and the audit log.
 */
import { yuan } from "./api";

type Page<T> = { items: T[]; nextBefore: string | null };
type Row = Record<string, unknown>;

const TOKEN_KEY = "fiat-paymaster-admin-token";
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const view = $<HTMLElement>("view");

class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function admin<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const response = await fetch(path, {
    method: init.method ?? "GET",
    headers: { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ""}`, ...(init.body ? { "content-type": "application/json" } : {}) },
    body: init.body ? JSON.stringify(init.body) : undefined,
  });
  const text = await response.text();
  const body = text ? (JSON.parse(text) as { detail?: string }) : {};
  if (!response.ok) throw new AdminError(response.status, body.detail ?? `HTTP ${response.status}`);
  return body as T;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

const fen = (v: unknown) => (v === null || v === undefined ? "—" : `¥${yuan(String(v))}`);
const eth = (wei: unknown) => (wei === null || wei === undefined ? "—" : `${(Number(BigInt(String(wei)) / 10n ** 12n) / 1e6).toFixed(6)} ETH`);
const time = (v: unknown) => (v ? new Date(String(v)).toLocaleString() : "—");
const short = (v: unknown) => (typeof v === "string" && v.length > 18 ? `${v.slice(0, 10)}…${v.slice(-6)}` : String(v ?? "—"));

type Column = [label: string, render: (row: Row) => string];

function table(caption: string, columns: Column[], rows: Row[], onClick?: (row: Row) => void): HTMLElement {
  const head = el("tr", {}, ...columns.map(([label]) => el("th", { scope: "col" }, label)));
  const body = rows.map((row) => {
    const tr = el("tr", {}, ...columns.map(([, render]) => el("td", {}, render(row))));
    if (onClick) {
      tr.className = "clickable";
      tr.tabIndex = 0;
      tr.addEventListener("click", () => onClick(row));
      tr.addEventListener("keydown", (e) => {
        if (e.key === "Enter") onClick(row);
      });
    }
    return tr;
  });
  const t = el("table", {}, el("caption", { className: "muted" }, caption), el("thead", {}, head), el("tbody", {}, ...(body.length ? body : [el("tr", {}, el("td", { colSpan: columns.length }, "nothing yet"))])));
  return el("div", { className: "scroll" }, t);
}

/** A bar chart (SVG) of one series; people read trends from bars faster than from a table. */
function barChart(title: string, points: { label: string; value: number }[], format: (v: number) => string): HTMLElement {
  const width = 600;
  const height = 140;
  const max = Math.max(1, ...points.map((p) => p.value));
  const step = width / Math.max(1, points.length);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const total = points.reduce((s, p) => s + p.value, 0);
  svg.setAttribute("aria-label", `${title}: ${format(total)} in total over ${points.length} buckets`);
  points.forEach((p, i) => {
    const h = (p.value / max) * height;
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("x", String(i * step + 1));
    rect.setAttribute("y", String(height - h));
    rect.setAttribute("width", String(Math.max(1, step - 2)));
    rect.setAttribute("height", String(h));
    const tip = document.createElementNS("http://www.w3.org/2000/svg", "title");
    tip.textContent = `${p.label}: ${format(p.value)}`;
    rect.append(tip);
    svg.append(rect);
  });
  return el("div", { className: "tile" }, el("h3", {}, title), svg as unknown as HTMLElement, el("p", { className: "muted" }, `total ${format(total)}; highest bucket ${format(max)}`));
}

async function overview(bucket: "hour" | "day" = "hour"): Promise<void> {
  const [{ chains }, stats] = await Promise.all([admin<{ chains: Row[] }>("/admin/chains"), admin<{ series: Row[] }>(`/admin/stats?bucket=${bucket}`)]);
  const tiles = chains.map((c) => {
    const deposit = c.deposit as Row;
    const stake = c.stake as Row | null;
    const settlement = c.settlement as Row;
    return el(
      "div",
      { className: "tile" },
      // one tile per (chain, EntryPoint): each EntryPoint has its own paymaster, deposit and holds
      el("h3", {}, `${String(c.name)} (${String(c.chainId)}) · EntryPoint v${String(c.entryPointVersion)}`),
      ...(c.lowDeposit || !c.healthy ? [el("p", { className: "warn", role: "alert" }, `Low deposit: ${String(c.reason ?? "deposit − open holds is below the threshold")}`)] : []),
      el("p", {}, `Deposit ${eth(deposit.depositWei)}; open holds ${String(deposit.openHolds)} (${eth(deposit.outstandingWei)})`),
      el("p", {}, `Stake ${stake ? `${eth(stake.stakeWei)}, ${stake.staked ? "staked" : "not staked"}, unstake delay ${String(stake.unstakeDelaySec)} s` : "—"}`),
      el("p", {}, `Settlement cursor block ${String(settlement.cursorBlock ?? "—")}, lag ${String(settlement.lagBlocks ?? "—")} blocks`),
      el("p", {}, "Paymaster ", el("code", {}, String(c.paymaster))),
      el("p", {}, "Signers ", ...((c.signers as string[] | null) ?? ["—"]).map((s) => el("code", {}, `${s} `))),
    );
  });
  const series = stats.series.map((p) => ({ topUpFen: p.topUpFen, chargedFen: p.chargedFen, settledCount: p.settledCount, label: new Date(String(p.start)).toLocaleString() }));
  view.replaceChildren(
    el("h2", {}, "Overview"),
    el("div", { className: "tiles" }, ...tiles),
    el("h2", {}, bucket === "hour" ? "Last 48 hours" : "Last 30 days"),
    rangeSwitch(bucket),
    el(
      "div",
      { className: "tiles" },
      barChart(`Top-ups per ${bucket}`, series.map((p) => ({ label: p.label, value: Number(p.topUpFen) })), (v) => fen(v)),
      barChart(`Sponsored gas charged per ${bucket}`, series.map((p) => ({ label: p.label, value: Number(p.chargedFen) })), (v) => fen(v)),
      barChart(`Operations settled per ${bucket}`, series.map((p) => ({ label: p.label, value: Number(p.settledCount) })), (v) => String(v)),
    ),
  );
}

function rangeSwitch(current: "hour" | "day"): HTMLElement {
  const other = current === "hour" ? "day" : "hour";
  const button = el("button", { type: "button", className: "small" }, other === "day" ? "Per day (30 days)" : "Per hour (48 hours)");
  button.addEventListener("click", () => void show(() => overview(other)));
  return el("p", {}, button);
}

function filters(fields: [name: string, label: string, options?: string[]][], onApply: (values: Record<string, string>) => void): HTMLElement {
  const form = el("form", { className: "filters" });
  for (const [name, label, options] of fields) {
    const id = `filter-${name}`;
    const input = options ? el("select", { id, name }, el("option", { value: "" }, "any"), ...options.map((o) => el("option", { value: o }, o))) : el("input", { id, name });
    form.append(el("div", {}, el("label", { htmlFor: id }, label), input));
  }
  form.append(el("button", { type: "submit", className: "small" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const values: Record<string, string> = {};
    for (const [name] of fields) {
      const v = (form.elements.namedItem(name) as HTMLInputElement).value.trim();
      if (v) values[name] = v;
    }
    onApply(values);
  });
  return form;
}

async function orders(query: Record<string, string> = {}): Promise<void> {
  const page = await admin<Page<Row>>(`/admin/orders?${new URLSearchParams(query)}`);
  view.replaceChildren(
    el("h2", {}, "Orders"),
    filters([["status", "Status", ["created", "pending", "paid", "closed"]], ["provider", "Provider", ["alipay", "wechat"]], ["account", "Account"]], (v) => void show(() => orders(v))),
    table(
      "newest first; select an order for its callbacks and refunds",
      [["Order", (r) => String(r.id)], ["Account", (r) => short(r.account)], ["Provider", (r) => String(r.provider)], ["Amount", (r) => fen(r.amountFen)], ["Status", (r) => String(r.status)], ["Refunded", (r) => fen(r.refundedFen)], ["Created", (r) => time(r.createdAt)]],
      page.items,
      (r) => void show(() => orderDetail(String(r.id))),
    ),
  );
}

async function orderDetail(id: string): Promise<void> {
  const { order, callbacks, refunds } = await admin<{ order: Row; callbacks: Row[]; refunds: Row[] }>(`/admin/orders/${id}`);
  const refundForm = el("form", { className: "filters" });
  const amountId = "refund-amount";
  refundForm.append(
    el("div", {}, el("label", { htmlFor: amountId }, "Refund (¥, empty = all unspent)"), el("input", { id: amountId, inputMode: "decimal" })),
    el("div", {}, el("label", { htmlFor: "refund-reason" }, "Reason"), el("input", { id: "refund-reason", maxLength: 80 })),
    el("button", { type: "submit", className: "small" }, "Refund"),
  );
  refundForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const amount = ($<HTMLInputElement>(amountId).value || "").trim();
    const body: Row = { orderId: id, idempotencyKey: `dashboard-${crypto.randomUUID()}` };
    if (amount) body.amountFen = Math.round(Number(amount) * 100);
    const reason = $<HTMLInputElement>("refund-reason").value.trim();
    if (reason) body.reason = reason;
    void show(async () => {
      await admin("/v1/refunds", { method: "POST", body });
      await orderDetail(id);
    });
  });
  view.replaceChildren(
    el("h2", {}, `Order ${id}`),
    el("p", {}, `${fen(order.amountFen)} by ${String(order.provider)} for `, el("code", {}, String(order.account)), ` — ${String(order.status)}, refunded ${fen(order.refundedFen)}`),
    table("every callback received, with its verification result", [["Received", (r) => time(r.receivedAt)], ["Verified", (r) => (r.verified ? "yes" : "NO")], ["Outcome", (r) => String(r.outcome)], ["Detail", (r) => String(r.detail ?? "")]], callbacks),
    table("refunds", [["Refund", (r) => String(r.id)], ["Amount", (r) => fen(r.amountFen)], ["Status", (r) => String(r.status)], ["Failure", (r) => String(r.failureReason ?? "")]], refunds),
    ...(order.status === "paid" ? [refundForm] : []),
  );
}

async function accounts(): Promise<void> {
  const page = await admin<Page<Row>>("/admin/accounts");
  view.replaceChildren(
    el("h2", {}, "Accounts"),
    table("most recently changed first; select one for its ledger", [["Account", (r) => String(r.account)], ["Available", (r) => fen(r.availableFen)], ["Held", (r) => fen(r.heldFen)], ["Updated", (r) => time(r.updatedAt)]], page.items, (r) => void show(() => ledger(String(r.account)))),
  );
}

async function ledger(address: string): Promise<void> {
  const page = await admin<Page<Row> & { availableFen: string; heldFen: string }>(`/admin/accounts/${address}/ledger`);
  const form = el("form", { className: "filters" });
  form.append(
    el("div", {}, el("label", { htmlFor: "adjust-amount" }, "Adjustment (¥, negative to debit)"), el("input", { id: "adjust-amount", inputMode: "decimal", required: true })),
    el("div", {}, el("label", { htmlFor: "adjust-reason" }, "Reason (required, audited)"), el("input", { id: "adjust-reason", required: true, minLength: 3, maxLength: 200 })),
    el("button", { type: "submit", className: "small" }, "Adjust"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const amountFen = Math.round(Number($<HTMLInputElement>("adjust-amount").value) * 100);
    const reason = $<HTMLInputElement>("adjust-reason").value.trim();
    void show(async () => {
      await admin("/admin/adjustments", { method: "POST", body: { account: address, amountFen, reason, idempotencyKey: `dashboard-${crypto.randomUUID()}` } });
      await ledger(address);
    });
  });
  view.replaceChildren(
    el("h2", {}, "Account ", el("code", {}, address)),
    el("p", {}, `Available ${fen(page.availableFen)}, held ${fen(page.heldFen)}`),
    form,
    table("ledger entries, newest first", [["Kind", (r) => String(r.kind)], ["Available Δ", (r) => fen(r.availableDeltaFen)], ["Held Δ", (r) => fen(r.heldDeltaFen)], ["Reference", (r) => String(r.reference)], ["Memo", (r) => String(r.memo ?? "")], ["Time", (r) => time(r.createdAt)]], page.items),
  );
}

async function holds(query: Record<string, string> = { status: "open" }): Promise<void> {
  const page = await admin<Page<Row>>(`/admin/holds?${new URLSearchParams(query)}`);
  view.replaceChildren(
    el("h2", {}, "Holds"),
    filters([["status", "Status", ["open", "settled", "released"]], ["account", "Account"]], (v) => void show(() => holds(v))),
    table("reservations of worst-case cost", [["Hold", (r) => short(r.id)], ["Chain", (r) => String(r.chainId)], ["Account", (r) => short(r.account)], ["Nonce", (r) => short(r.nonce)], ["Status", (r) => String(r.status)], ["Held", (r) => fen(r.amountFen)], ["Charged", (r) => fen(r.chargedFen)], ["Valid until", (r) => time(r.validUntil)]], page.items),
  );
}

async function settlements(query: Record<string, string> = {}): Promise<void> {
  const page = await admin<Page<Row>>(`/admin/settlements?${new URLSearchParams(query)}`);
  view.replaceChildren(
    el("h2", {}, "Settlements"),
    filters([["status", "Status", ["settled", "reorged"]], ["unknown", "Unknown only", ["1"]]], (v) => void show(() => settlements(v))),
    table(
      "UserOperationEvents our paymaster paid for",
      [["userOpHash", (r) => short(r.userOpHash)], ["Account", (r) => short(r.account)], ["Success", (r) => (r.success ? "yes" : "reverted")], ["Gas cost", (r) => eth(r.actualGasCostWei)], ["Charged", (r) => fen(r.chargedFen)], ["Released", (r) => fen(r.releasedFen)], ["Block", (r) => String(r.blockNumber)], ["Status", (r) => `${String(r.status)}${r.unknown ? " (UNKNOWN: no hold)" : ""}`]],
      page.items,
    ),
  );
}

/** The daily three-way reconciliation: recent days, one day's report, and a run of a day. */
async function reconciliation(): Promise<void> {
  const [{ days }, runs] = await Promise.all([admin<{ days: Row[] }>("/admin/reconciliation/days?limit=30"), admin<Page<Row>>("/admin/reconciliation-runs?limit=20")]);
  const dayInput = el("input", { type: "date", id: "reconcile-day", required: true });
  const runForm = el("form", { className: "inline" }, el("label", { htmlFor: "reconcile-day" }, "Reconcile a day"), dayInput, el("button", { type: "submit", className: "primary" }, "Run"));
  runForm.addEventListener("submit", (e) => {
    e.preventDefault();
    void show(() => runDay(dayInput.value));
  });
  const state = (d: Row) => (d.tiesOut ? "ties out" : (d.differences as Row[]).some((x) => !x.resolution) ? "DIFFERENCES" : `not final: ${(d.pending as string[]).join(", ")}`);
  view.replaceChildren(
    el("h2", {}, "Daily reconciliation"),
    el("p", { className: "muted" }, "Each day (China Standard Time): the gateways' bills against orders, refunds and ledger; each chain's events against settlements, charges and the deposit."),
    runForm,
    table(
      "recent days, newest first; select one for its report",
      [["Day", (r) => String(r.day)], ["Result", state], ["Scopes", (r) => (r.results as Row[]).map((x) => `${String(x.scope)}: ${String(x.status)}`).join(" · ")], ["Open differences", (r) => String((r.differences as Row[]).filter((x) => !x.resolution).length)]],
      days,
      (r) => void show(() => reconciliationDay(String(r.day))),
    ),
    el("h2", {}, "Reconciler runs"),
    table("open orders and refunds the reconciler queried at the gateways", [["Started", (r) => time(r.startedAt)], ["Checked", (r) => String(r.checked)], ["Credited late", (r) => String(r.credited)], ["Closed", (r) => String(r.closed)], ["Refunds settled", (r) => String(r.refundsSettled)], ["Errors", (r) => String(r.errors)]], runs.items),
  );
}

async function runDay(day: string): Promise<void> {
  view.replaceChildren(el("h2", {}, `Reconciling ${day}…`));
  renderDay(await admin<Row>(`/admin/reconciliation/days/${day}/run`, { method: "POST", body: {} }));
}

async function reconciliationDay(day: string): Promise<void> {
  renderDay(await admin<Row>(`/admin/reconciliation/days/${day}`));
}

function renderDay(report: Row): void {
  const day = String(report.day);
  const again = el("button", { type: "button" }, "Run this day again");
  again.addEventListener("click", () => void show(() => runDay(day)));
  const back = el("button", { type: "button", className: "link" }, "← all days");
  back.addEventListener("click", () => void show(reconciliation));
  const open = (report.differences as Row[]).filter((d) => !d.resolution).length;
  view.replaceChildren(
    back,
    el("h2", {}, `Reconciliation of ${day}`),
    el("p", { className: report.tiesOut ? "ok" : "warn", role: report.tiesOut ? "status" : "alert", id: "reconcile-verdict" }, report.tiesOut ? "Ties out." : open ? `${open} open difference${open === 1 ? "" : "s"}.` : `Not final yet: ${(report.pending as string[]).join(", ")}.`),
    again,
    table("each scope's result and the totals both sides were summed to", [["Scope", (r) => String(r.scope)], ["Status", (r) => String(r.status)], ["Figures", (r) => Object.entries(r.figures as Record<string, string>).map(([k, v]) => `${k} ${v}`).join(" · ")], ["Detail", (r) => String(r.detail ?? "")], ["Runs", (r) => String(r.runs)]], report.results as Row[]),
    table("differences: open ones, and those acted on", [["Scope", (r) => String(r.scope)], ["Kind", (r) => String(r.kind)], ["Reference", (r) => String(r.reference)], ["Ours", (r) => String(r.expected ?? "")], ["Theirs", (r) => String(r.actual ?? "")], ["Cause", (r) => String(r.cause)], ["Resolution", (r) => String(r.resolution ?? "")]], report.differences as Row[]),
  );
}

async function simpleList(title: string, path: string, caption: string, columns: Column[]): Promise<void> {
  const page = await admin<Page<Row>>(path);
  view.replaceChildren(el("h2", {}, title), table(caption, columns, page.items));
}

const SECTIONS: [string, () => Promise<void>][] = [
  ["Overview", () => overview()],
  ["Orders", () => orders()],
  ["Accounts", accounts],
  ["Holds", () => holds()],
  ["Settlements", () => settlements()],
  ["Refunds", () => simpleList("Refunds", "/admin/refunds", "newest first", [["Refund", (r) => String(r.id)], ["Order", (r) => String(r.orderId)], ["Amount", (r) => fen(r.amountFen)], ["Status", (r) => String(r.status)], ["Failure", (r) => String(r.failureReason ?? "")], ["Created", (r) => time(r.createdAt)]])],
  ["Reconciliation", reconciliation],
  ["Audit", () => simpleList("Audit log", "/admin/audit", "every admin action", [["Time", (r) => time(r.createdAt)], ["Action", (r) => String(r.action)], ["Detail", (r) => JSON.stringify(r.detail)], ["Request", (r) => short(r.requestId)], ["IP", (r) => String(r.ip ?? "")]])],
];

async function show(render: () => Promise<void>): Promise<void> {
  const error = $<HTMLParagraphElement>("error");
  error.hidden = true;
  try {
    await render();
  } catch (e) {
    if (e instanceof AdminError && e.status === 401) return signOut("The admin token was refused.");
    error.textContent = (e as Error).message;
    error.hidden = false;
  }
}

function signOut(message?: string): void {
  sessionStorage.removeItem(TOKEN_KEY);
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  view.replaceChildren();
  const error = $<HTMLParagraphElement>("sign-in-error");
  error.textContent = message ?? "";
  error.hidden = !message;
}

function signedIn(): void {
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  const tabs = $<HTMLElement>("tabs");
  tabs.hidden = false;
  tabs.replaceChildren(
    ...SECTIONS.map(([name, render]) => {
      const button = el("button", { type: "button" }, name);
      button.addEventListener("click", () => {
        for (const b of tabs.querySelectorAll("button")) b.removeAttribute("aria-current");
        button.setAttribute("aria-current", "page");
        void show(render);
      });
      return button;
    }),
  );
  (tabs.firstElementChild as HTMLButtonElement).click();
}

$<HTMLFormElement>("sign-in").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $<HTMLInputElement>("token").value);
  signedIn();
});
$("sign-out").addEventListener("click", () => signOut());
if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
