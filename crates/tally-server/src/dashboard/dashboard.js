"use strict";
// Tally's dashboard: plain JS, no build step, no CDN. Every number comes
// from /api/v1/reports/* with the admin token the user logs in with.

const REPORTS = ["versions", "platforms", "commands", "flags", "errors", "durations",
  "installs", "environments", "deprecation", "health", "deps", "events"];
const TITLES = {
  overview: "Overview", versions: "Versions", platforms: "Platforms", commands: "Commands",
  flags: "Flags", errors: "Errors", durations: "Durations", installs: "Installs",
  environments: "Environments", deprecation: "Deprecation", health: "Release health", deps: "Dependencies",
  events: "Custom events", compare: "Compare versions",
};
const TABLE_TITLES = {
  "versions/versions": "Installs per version", "versions/latest": "Latest release",
  "versions/adoption": "Adoption over time (installs per day)", "platforms/os": "Operating systems",
  "platforms/os_version": "OS versions", "platforms/arch": "Architectures", "platforms/container": "In a container",
  "platforms/wsl": "Under WSL", "commands/commands": "Commands", "flags/flags": "Flags per command",
  "errors/errors": "Errors and crash locations", "errors/outcomes": "How runs ended",
  "errors/commands": "The commands that hit them",
  "durations/durations": "Duration percentiles (ms)", "installs/active": "Active installs",
  "installs/new": "New installs per week", "installs/retention": "Retention by first-seen week",
  "environments/env": "Humans, CI and agents", "environments/ci": "CI vendors", "environments/agents": "AI agents",
  "environments/tty": "Interactive terminal", "deprecation/usage": "Usage in the window",
  "deprecation/by_version": "By version", "health/versions": "Per version, against the previous one",
  "health/commands": "Per command and version", "deps/deps": "Tool versions",
  "events/events": "Custom events", "events/versions": "Per version", "events/trend": "Runs per day",
  "events/properties": "Property values (those the app's schema shows)",
};
// The key of the row that sums what a report's limit left out (and values
// the server stored as "(other)").
const OTHER = "(other)";
// What the overview lists per table.
const OVERVIEW_LIMIT = 10;
const COLORS = ["#3367d6", "#e8710a", "#2e7d32", "#c62828", "#8e24aa", "#00897b", "#6d4c41", "#5c6bc0"];

const state = { token: sessionStorage.getItem("tally-token") || "", apps: [], last: "", routed: 0 };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (response.status === 401) throw new Unauthorized("The admin token was refused.");
  const body = await response.json();
  if (!response.ok) throw new Error(body.reason || response.statusText);
  return body;
}

function show(id, visible) { $(id).hidden = !visible; }

function showLogin(message) {
  state.token = "";
  sessionStorage.removeItem("tally-token");
  show("app", false); show("nav", false); show("logout", false); show("login", true);
  $("login-error").textContent = message || "";
  show("login-error", Boolean(message));
  $("token").focus();
}

async function login(token) {
  state.token = token;
  try {
    state.apps = await api("/api/v1/apps");
  } catch (e) {
    showLogin(e instanceof Unauthorized ? "That is not the admin token." : e.message);
    return;
  }
  sessionStorage.setItem("tally-token", token);
  show("login", false); show("app", true); show("nav", true); show("logout", true);
  const select = $("f-app");
  select.replaceChildren(...state.apps.map((a) => el("option", { value: a.name }, a.name)));
  const nav = $("nav");
  nav.replaceChildren(...["overview", ...REPORTS, "compare"].map((name) =>
    el("a", { href: "#/" + name, id: "nav-" + name }, TITLES[name])));
  await route();
}

// The filters of the form, each kept in the URL (after the page:
// "#/commands?app=mycli&env=ci"), so that a link opens the same view and
// the back button goes back to the last one.
const FILTERS = ["app", "since", "until", "version", "os", "env", "source", "flag", "command", "days", "a", "b"];
// What the URL can focus on, the column that holds it, and the pages
// that show its rows alone: one command (`cmd=`) or one error (`err=`).
const FOCI = {
  cmd: { column: "command", pages: ["commands", "flags", "durations", "health"] },
  err: { column: "kind", pages: ["errors"] },
};
// The quick ranges: the last so many hours, as `last=` in the URL.
const RANGES = { "24h": 24, "7d": 7 * 24, "30d": 30 * 24, "90d": 90 * 24 };

function currentPage() {
  const name = location.hash.replace(/^#\//, "").split("?")[0];
  return name === "" || !(name in TITLES) ? "overview" : name;
}

/// The filters the URL holds.
function urlFilters() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

/// Puts the URL's filters into the form (the first app when it names none).
function restoreFilters() {
  const q = urlFilters();
  for (const id of FILTERS) {
    const input = $("f-" + id);
    const value = q.get(id);
    if (id === "app" && !value) continue;
    input.value = value || (id === "days" ? "30" : "");
  }
  state.last = RANGES[q.get("last")] ? q.get("last") : "";
  for (const b of document.querySelectorAll("#ranges button[data-last]")) {
    b.classList.toggle("active", b.dataset.last === state.last);
  }
}

/// The form's filters as the URL keeps them, with `changes` made.
function formFilters(changes) {
  const q = new URLSearchParams();
  for (const id of FILTERS) {
    const value = $("f-" + id).value.trim();
    if (value && !(id === "days" && value === "30")) q.set(id, value);
  }
  if (state.last) q.set("last", state.last);
  // What is in focus goes along, until a link lets it go.
  for (const param of Object.keys(FOCI)) {
    const focus = urlFilters().get(param);
    if (focus) q.set(param, focus);
  }
  for (const [k, v] of Object.entries(changes || {})) {
    if (v) q.set(k, v); else q.delete(k);
  }
  return q;
}

/// The link to `page` with the form's filters and `changes`.
function link(page, changes) {
  const q = formFilters(changes).toString();
  return "#/" + page + (q ? "?" + q : "");
}

/// Goes to `href`; the same view again is shown afresh.
function go(href) {
  if (location.hash === href) route(); else location.hash = href;
}

/// What the API is asked for `page`: the filters, a quick range as the
/// time it starts, and the page's own.
function params(page) {
  const p = new URLSearchParams();
  for (const id of ["app", "since", "until", "version", "os", "env", "source"]) {
    const value = $("f-" + id).value.trim();
    if (value) p.set(id, value);
  }
  if (state.last) {
    p.set("since", new Date(Date.now() - RANGES[state.last] * 3600e3).toISOString().replace(/\.\d+Z$/, "Z"));
    p.delete("until");
  }
  if (page === "overview") p.set("limit", String(OVERVIEW_LIMIT));
  if (page === "deprecation") {
    for (const id of ["flag", "command", "days"]) {
      const value = $("f-" + id).value.trim();
      if (value) p.set(id, value);
    }
  }
  return p;
}

async function report(name, page) {
  return api("/api/v1/reports/" + name + "?" + params(page || name).toString());
}

// ---------- rendering ----------

function isRate(column) { return /(rate|share)/.test(column); }

function formatCell(column, value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" && isRate(column)) return (value * 100).toFixed(1) + "%";
  if (typeof value === "number") return value.toLocaleString("en-US", { maximumFractionDigits: 2 });
  return String(value);
}

function isOther(row) { return row[0] === OTHER; }

/// The largest of `values`, at least 1; a loop, since `Math.max(...values)`
/// throws once there are more values than a call may take arguments.
function maxOf(values) {
  let max = 1;
  for (const v of values) if (typeof v === "number" && v > max) max = v;
  return max;
}

// Columns whose values are filters: a click on one filters every page by it.
const DRILLS = { version: "version", os: "os", env: "env" };

/// A cell, as a link that filters by its value where its column is a
/// filter; a command leads to its flags (and from there its durations and
/// health).
function cellView(column, value, row) {
  // The (other) row's installs are not the sum of its rows' installs.
  const text = value === null && isOther(row) ? "–" : formatCell(column, value);
  if (column === "command" && typeof value === "string" && value !== OTHER) {
    const page = currentPage() === "flags" ? "durations" : "flags";
    return el("a", { href: link(page, { cmd: value }), class: "drill", title: `The ${page} of ${value}` }, text || "(root)");
  }
  if (column === "kind" && currentPage() === "errors" && typeof value === "string" && value !== OTHER) {
    return el("a", { href: link("errors", { err: value }), class: "drill", title: `Where ${value} happens` }, text);
  }
  const filter = DRILLS[column];
  if (!filter || typeof value !== "string" || value === OTHER || value === "") return text;
  return el("a", { href: link(currentPage(), { [filter]: value }), class: "drill", title: `Only ${column} ${value}` }, text);
}

/// A table of every row the API answered; when a limit left rows out, the
/// last row sums them and a note says how many there are in all. Rows that
/// are a regression come first, in red.
function tableView(table) {
  for (const [param, { column, pages }] of Object.entries(FOCI)) {
    const focus = urlFilters().get(param);
    const at = table.columns.indexOf(column);
    if (focus !== null && at >= 0 && pages.includes(currentPage())) {
      table = { ...table, rows: table.rows.filter((r) => r[at] === focus) };
    }
  }
  if (table.rows.length === 0) return el("p", { class: "empty" }, "No data for these filters.");
  const flagged = table.columns.indexOf("regression");
  const better = table.columns.indexOf("improvement");
  const rank = (r) => (r[flagged] === true ? 0 : better >= 0 && r[better] === true ? 1 : 2);
  // Regressions first, then improvements, each in the report's order.
  const rows = flagged < 0 ? table.rows
    : table.rows.map((r, i) => [r, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map(([r]) => r);
  const view = el("table", { "data-table": table.name },
    el("thead", {}, el("tr", {}, table.columns.map((c) => el("th", {}, c.replaceAll("_", " "))))),
    el("tbody", {}, rows.map((row) => {
      const classes = [isOther(row) ? "other" : "", flagged >= 0 && row[flagged] === true ? "regression" : "",
        better >= 0 && row[better] === true ? "improvement" : ""];
      return el("tr", { class: classes.join(" ").trim() }, row.map((value, i) => {
        const kind = typeof value === "number" ? "num" : "";
        const flag = table.columns[i] === "regression" && value === true ? " flag-true" : "";
        return el("td", { class: (kind + flag).trim() }, cellView(table.columns[i], value, row));
      }));
    })));
  const total = table.total_rows || 0;
  if (total <= table.rows.length) return view;
  const listed = (table.rows.length - 1).toLocaleString("en-US");
  return el("div", {}, view, el("p", { class: "note total", "data-total-rows": total },
    `The top ${listed} of ${total.toLocaleString("en-US")} rows; ${OTHER} sums the rest.`));
}

/// The rows a chart shows: not the (other) row, whose scale is not theirs.
function charted(table) { return table.rows.filter((r) => !isOther(r)); }

function barChart(labels, values, format) {
  const max = maxOf(values);
  const height = labels.length * 24 + 4;
  const chart = svg("svg", { viewBox: `0 0 480 ${height}`, width: "100%", role: "img" });
  labels.forEach((label, i) => {
    const y = i * 24 + 2;
    const width = Math.max(1, (values[i] / max) * 280);
    chart.append(
      svg("text", { x: 0, y: y + 15 }, String(label).slice(0, 20)),
      svg("rect", { x: 130, y, width, height: 18, rx: 3, fill: COLORS[0] }),
      svg("text", { x: 136 + width, y: y + 15 }, format ? format(values[i]) : Number(values[i]).toLocaleString("en-US")));
  });
  return chart;
}

/// Lines of `series` over `xs`; with `fit`, the axis spans the values
/// (so a drop of three points is seen), else it starts at zero.
function lineChart(xs, series, fit) {
  const W = 800, H = 240, L = 48, B = 26;
  const values = series.flatMap((s) => s.values).filter((v) => typeof v === "number");
  let max = maxOf(values);
  let min = 0;
  if (fit && values.length) {
    const low = Math.min(...values.slice(0, 10000)), high = Math.max(...values.slice(0, 10000));
    const pad = Math.max((high - low) * 0.15, 0.5);
    [min, max] = [Math.max(0, low - pad), high + pad];
  }
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
  const x = (i) => L + (xs.length <= 1 ? 0 : (i / (xs.length - 1)) * (W - L - 10));
  const y = (v) => H - B - ((v - min) / (max - min || 1)) * (H - B - 10);
  for (const frac of [0, 0.5, 1]) {
    const at = min + (max - min) * frac;
    const label = fit ? at.toFixed(1) : Math.round(at).toLocaleString("en-US");
    chart.append(svg("line", { x1: L, x2: W - 10, y1: y(at), y2: y(at), stroke: "#e3e7ee" }),
      svg("text", { x: 4, y: y(at) + 4 }, label));
  }
  const step = Math.max(1, Math.ceil(xs.length / 8));
  xs.forEach((label, i) => {
    if (i % step === 0) chart.append(svg("text", { x: x(i) - 20, y: H - 6 }, label));
  });
  series.forEach((s, k) => {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points, fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 2 }));
  });
  const legend = el("div", { class: "legend" },
    series.map((s, k) => el("span", { style: `--c: ${COLORS[k % COLORS.length]}` }, s.name)));
  return el("div", {}, chart, legend);
}

function column(table, name) {
  const i = table.columns.indexOf(name);
  return table.rows.map((r) => r[i]);
}

/// Turns (x, series, value) rows into a line chart with the top series.
function pivotChart(table, xName, seriesName, valueName, top) {
  const xs = [...new Set(column(table, xName))].sort();
  const totals = new Map();
  for (const row of table.rows) {
    if (row[table.columns.indexOf(seriesName)] === OTHER) continue;
    const s = row[table.columns.indexOf(seriesName)];
    totals.set(s, (totals.get(s) || 0) + row[table.columns.indexOf(valueName)]);
  }
  const names = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map((e) => e[0]);
  const series = names.map((name) => {
    const byX = new Map();
    for (const row of table.rows) {
      if (row[table.columns.indexOf(seriesName)] === name) {
        byX.set(row[table.columns.indexOf(xName)], row[table.columns.indexOf(valueName)]);
      }
    }
    return { name: String(name), values: xs.map((xv) => byX.get(xv) || 0) };
  });
  return lineChart(xs, series);
}

/// The chart that goes with a table, if one does.
function chartFor(reportName, table) {
  if (table.rows.length === 0) return null;
  const key = reportName + "/" + table.name;
  if (key === "versions/adoption") return pivotChart(table, "day", "version", "installs", 6);
  if (key === "installs/active") {
    const xs = column(table, "day");
    return lineChart(xs, ["daily", "weekly", "monthly"].map((n) => ({ name: n, values: column(table, n) })));
  }
  if (key === "events/trend") return pivotChart(table, "day", "event", "runs", 6);
  if (key === "installs/new") return barChart(column(table, "week").slice(-12), column(table, "new_installs").slice(-12));
  if (key === "commands/commands") {
    const rows = charted(table).slice(0, 12);
    return barChart(rows.map((r) => r[0]), rows.map((r) => r[1]));
  }
  if (["platforms", "environments"].includes(reportName) || key === "versions/versions") {
    const rows = charted(table).slice(0, 12);
    const label = (r) => table.columns.indexOf("installs") > 1 ? r.slice(0, table.columns.indexOf("installs")).join(" ") : r[0];
    return barChart(rows.map((r) => label(r) === "" || label(r) === null ? "(none)" : label(r)),
      rows.map((r) => r[table.columns.indexOf("installs")]));
  }
  if (key === "health/versions") {
    const rows = charted(table).reverse();
    return el("div", {},
      lineChart(rows.map((r) => r[0]), [
        { name: "success rate %", values: rows.map((r) => Math.round(r[2] * 1000) / 10) },
      ], true),
      lineChart(rows.map((r) => r[0]), [
        { name: "crash rate %", values: rows.map((r) => Math.round(r[5] * 1000) / 10) },
      ], true));
  }
  return null;
}

function card(title, ...content) {
  return el("div", { class: "card" }, el("h2", {}, title), ...content);
}

/// Downloads table `table` of report `name` as the API renders it (`csv`
/// or `json`): the numbers `tally report` prints.
async function download(name, table, format) {
  const p = params(name);
  p.set("format", format);
  p.set("table", table);
  const response = await fetch("/api/v1/reports/" + name + "?" + p.toString(),
    { headers: { Authorization: "Bearer " + state.token } });
  if (!response.ok) throw new Error((await response.json()).reason || response.statusText);
  const url = URL.createObjectURL(await response.blob());
  const a = el("a", { href: url, download: `${name}-${table}.${format}` });
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}

/// The buttons that download a table.
function exports(name, table) {
  return el("div", { class: "exports" }, ["csv", "json"].map((format) => {
    const button = el("button", { type: "button", "data-format": format, "data-table": table }, format.toUpperCase());
    button.addEventListener("click", () => download(name, table, format).catch((e) => {
      $("error").textContent = e.message;
      show("error", true);
    }));
    return button;
  }));
}

/// A table's card: its title, chart, rows and download buttons; a table
/// of many columns takes the page's whole width, so none is cut off.
function tableCard(name, table) {
  const view = card(TABLE_TITLES[name + "/" + table.name] || table.name,
    chartFor(name, table), tableView(table), exports(name, table.name));
  if (table.columns.length > 5) view.classList.add("wide");
  return view;
}

/// What Release health says first: each regression beyond noise, the
/// worst first, in a sentence; or that there is none.
function healthHeadline(answer) {
  const pct = (x) => (x * 100).toFixed(1) + "%";
  const lines = [];
  for (const name of ["commands", "versions"]) {
    const table = answer.tables.find((t) => t.name === name);
    if (!table || lines.length) continue;
    const at = (row, c) => row[table.columns.indexOf(c)];
    const drop = (r) => at(r, "success_rate") - at(r, "previous_success_rate");
    const flagged = table.rows.filter((r) => at(r, "regression") === true).sort((a, b) => drop(a) - drop(b));
    for (const r of flagged) {
      const what = name === "commands" ? `\`${at(r, "command")}\` success` : "success";
      lines.push(`${at(r, "version")}: ${what} ${drop(r) < 0 ? "fell" : "rose"} from ${pct(at(r, "previous_success_rate"))} ` +
        `to ${pct(at(r, "success_rate"))}, ${at(r, "runs").toLocaleString("en-US")} runs, ${pct(at(r, "crash_rate"))} crashes`);
    }
  }
  return el("div", { class: "headline", id: "headline" },
    lines.length
      ? [el("h1", { class: "bad" }, lines[0]), ...lines.slice(1, 4).map((l) => el("p", { class: "bad" }, l))]
      : el("h1", {}, "No regression beyond noise against the previous versions."),
    el("p", { class: "note" },
      "Beyond noise: a two-proportion z-test, |z| > 3, with at least 30 runs on each side."));
}

/// The note a report's hidden small groups get, if it hid any.
function hiddenNote(answer) {
  const hidden = answer.hidden;
  if (!hidden || !hidden.groups) return null;
  return el("p", { class: "note hidden-groups", "data-hidden": hidden.groups },
    `${hidden.groups.toLocaleString("en-US")} groups of fewer than ${hidden.min_installs} installs are hidden, ` +
    "so that no one can be singled out.");
}

/// What the page shows alone, with links to its other pages.
function focusBar(name) {
  for (const [param, { pages }] of Object.entries(FOCI)) {
    const focus = urlFilters().get(param);
    if (focus === null || !pages.includes(name)) continue;
    const all = param === "cmd" ? "every command" : "every error";
    return el("p", { class: "focus", id: "focus" }, `Only \`${focus || "(root)"}\`: `,
      ...pages.filter((p) => p !== name).flatMap((p) => [el("a", { href: link(p) }, TITLES[p]), " · "]),
      el("a", { href: link(name, { [param]: null }) }, all));
  }
  return null;
}

async function renderReport(name) {
  const answer = await report(name);
  return el("div", { id: "report-" + name },
    focusBar(name),
    name === "health" ? healthHeadline(answer) : null,
    el("div", { class: "grid" }, answer.tables.map((table) => tableCard(name, table))),
    hiddenNote(answer));
}

/// Two versions side by side: every command's runs, success and crash
/// rates, and p95 duration in each, the biggest change in success first.
async function renderCompare() {
  const versions = await report("versions", "compare");
  const listed = (versions.tables.find((t) => t.name === "versions") || { rows: [] }).rows
    .map((r) => r[0]).filter((v) => v !== OTHER);
  for (const id of ["a", "b"]) {
    $("f-" + id).replaceChildren(...listed.map((v) => el("option", { value: v }, v)));
  }
  const q = urlFilters();
  $("f-a").value = q.get("a") || listed[1] || listed[0] || "";
  $("f-b").value = q.get("b") || listed[0] || "";
  const [a, b] = [$("f-a").value, $("f-b").value];
  if (!a || !b) return el("p", { class: "empty" }, "No versions for these filters.");
  const p = params("compare");
  p.set("limit", "all");
  p.delete("version");
  const [health, durations] = await Promise.all(["health", "durations"].map((n) =>
    api("/api/v1/reports/" + n + "?" + p.toString())));
  const commands = health.tables.find((t) => t.name === "commands");
  const timings = durations.tables[0];
  const by = new Map();
  const entry = (command) => by.get(command) || by.set(command, {}).get(command);
  const at = (table, row, c) => row[table.columns.indexOf(c)];
  for (const row of commands.rows) {
    const v = at(commands, row, "version");
    if (v === a || v === b) entry(at(commands, row, "command"))[v === a ? "a" : "b"] = {
      runs: at(commands, row, "runs"), success: at(commands, row, "success_rate"), crash: at(commands, row, "crash_rate"),
    };
  }
  for (const row of timings.rows) {
    const v = at(timings, row, "version");
    const side = by.get(at(timings, row, "command"));
    if (side && (v === a || v === b) && side[v === a ? "a" : "b"]) side[v === a ? "a" : "b"].p95 = at(timings, row, "p95_ms");
  }
  const change = (e) => (e.b && e.a ? e.b.success - e.a.success : 0);
  const rows = [...by.entries()].sort((x, y) => change(x[1]) - change(y[1])).map(([command, e]) => [
    command, e.a?.runs ?? null, e.b?.runs ?? null, e.a?.success ?? null, e.b?.success ?? null,
    e.a && e.b ? Math.round((e.b.success - e.a.success) * 10000) / 10000 : null,
    e.a?.crash ?? null, e.b?.crash ?? null, e.a?.p95 ?? null, e.b?.p95 ?? null,
  ]);
  const table = {
    name: "compare",
    columns: ["command", `runs ${a}`, `runs ${b}`, `success rate ${a}`, `success rate ${b}`, "success rate change",
      `crash rate ${a}`, `crash rate ${b}`, `p95 ms ${a}`, `p95 ms ${b}`],
    rows, total_rows: rows.length,
  };
  const view = card(`${a} against ${b}`, tableView(table));
  view.classList.add("wide");
  return el("div", { id: "report-compare" }, el("div", { class: "grid" }, view));
}

/// The range the view shows, in milliseconds since the epoch: the quick
/// range, or the dates given, or the last 30 days.
function range() {
  const now = Date.now();
  if (state.last) return [now - RANGES[state.last] * 3600e3, now];
  const day = (v) => (v ? Date.parse(v + "T00:00:00Z") : null);
  const until = day($("f-until").value) || now;
  const since = day($("f-since").value) || until - 30 * 86400e3;
  return [since, until];
}

/// Runs and success of every command in `[since, until)`.
async function totals(since, until) {
  const p = params("overview");
  p.set("since", new Date(since).toISOString().replace(/\.\d+Z$/, "Z"));
  p.set("until", new Date(until).toISOString().replace(/\.\d+Z$/, "Z"));
  p.set("limit", "all");
  const table = (await api("/api/v1/reports/commands?" + p.toString())).tables[0];
  const runs = table.rows.reduce((sum, r) => sum + r[1], 0);
  const ok = table.rows.reduce((sum, r) => sum + r[1] * r[3], 0);
  return { runs, success: runs ? ok / runs : null };
}

/// The range's runs and success rate, with arrows and deltas against the
/// period of the same length before it.
async function periodCard() {
  const [since, until] = range();
  const [now, before] = await Promise.all([totals(since, until), totals(2 * since - until, since)]);
  const arrow = (delta) => (delta > 0 ? "▲" : delta < 0 ? "▼" : "=");
  const change = before.runs ? (now.runs - before.runs) / before.runs : null;
  const points = now.success !== null && before.success !== null ? (now.success - before.success) * 100 : null;
  const days = Math.round((until - since) / 86400e3) || 1;
  return card(`The last ${days} day${days === 1 ? "" : "s"}`,
    el("div", { class: "big", id: "period-runs" }, now.runs.toLocaleString("en-US") + " runs"),
    el("p", { class: "note", id: "period-delta" },
      change === null ? "Nothing in the period before to compare with."
        : `${arrow(change)} ${(Math.abs(change) * 100).toFixed(1)}% against the ${days} days before; ` +
          (points === null ? "" : `success ${formatCell("rate", now.success)} ${arrow(points)} ${Math.abs(points).toFixed(1)} points`)));
}

async function renderOverview() {
  const [versions, platforms, commands, errors, durations] = await Promise.all(
    ["versions", "platforms", "commands", "errors", "durations"].map((n) => report(n, "overview")));
  const latest = versions.tables.find((t) => t.name === "latest");
  const summary = latest && latest.rows[0];
  const cmd = commands.tables[0];
  return el("div", { class: "grid", id: "report-overview" },
    await periodCard(),
    card("Latest release",
      summary && summary[0] !== null
        ? el("div", {}, el("div", { class: "big" }, summary[0]),
            el("p", { class: "note" }, `${formatCell("share", summary[3])} of ${summary[2].toLocaleString("en-US")} active installs`))
        : el("p", { class: "empty" }, "No data for these filters.")),
    card("Versions over time", chartFor("versions", versions.tables.find((t) => t.name === "adoption")) ||
      el("p", { class: "empty" }, "No data for these filters.")),
    card("Operating systems", chartFor("platforms", platforms.tables[0]) || el("p", { class: "empty" }, "No data.")),
    card("Top commands", chartFor("commands", cmd), tableView(cmd), exports("commands", cmd.name)),
    card("Top errors", tableView(errors.tables[0]), exports("errors", errors.tables[0].name)),
    card("Durations", tableView(durations.tables[0]), exports("durations", durations.tables[0].name)),
    hiddenNote({ hidden: [versions, platforms, commands, errors, durations]
      .map((r) => r.hidden).filter((h) => h)
      .reduce((sum, h) => ({ min_installs: h.min_installs, groups: (sum ? sum.groups : 0) + h.groups }), null) }));
}

async function route() {
  if (!state.token) return;
  const page = currentPage();
  restoreFilters();
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.id === "nav-" + page);
    a.setAttribute("href", link(a.id.replace(/^nav-/, "")));
  }
  show("deprecation-filters", page === "deprecation");
  show("compare-filters", page === "compare");
  document.title = TITLES[page] + " · Tally";
  show("error", false);
  const target = $("page");
  if (state.apps.length === 0) {
    target.replaceChildren(el("p", { class: "empty" }, "No apps yet: add one with `tally app add NAME`."));
    return;
  }
  if (page === "deprecation" && !$("f-flag").value.trim() && !$("f-command").value.trim()) {
    target.replaceChildren(card("Deprecation impact",
      el("p", {}, "Enter a flag (e.g. --legacy-output) or a command path above and apply: " +
        "you will see how many installs used it in the last N days, on which versions, and when it was last seen.")));
    return;
  }
  target.replaceChildren(el("p", { class: "empty" }, "Loading…"));
  // A view asked for later wins over one that answers late.
  const asked = ++state.routed;
  try {
    const view = page === "overview" ? renderOverview() : page === "compare" ? renderCompare() : renderReport(page);
    const shown = await view;
    if (asked === state.routed) target.replaceChildren(shown);
  } catch (e) {
    if (asked !== state.routed) return;
    if (e instanceof Unauthorized) { showLogin(e.message); return; }
    target.replaceChildren();
    $("error").textContent = e.message;
    show("error", true);
  }
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  login($("token").value.trim());
});
$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  // Dates typed replace a quick range.
  if ($("f-since").value || $("f-until").value) state.last = "";
  go(link(currentPage()));
});
$("release").addEventListener("click", async () => {
  // Since the newest version was first seen.
  const p = params("versions");
  p.delete("since"); p.delete("until");
  const versions = await api("/api/v1/reports/versions?" + p.toString()).catch(() => null);
  const table = versions && versions.tables.find((t) => t.name === "versions");
  const first = table && table.rows.length && table.rows[0][table.columns.indexOf("first_seen")];
  if (!first) return;
  state.last = "";
  $("f-since").value = first.slice(0, 10);
  $("f-until").value = "";
  go(link(currentPage()));
});
for (const button of document.querySelectorAll("#ranges button[data-last]")) {
  button.addEventListener("click", () => {
    $("f-since").value = ""; $("f-until").value = "";
    state.last = button.dataset.last;
    go(link(currentPage()));
  });
}
$("logout").addEventListener("click", () => {
  // A session is closed on the server too; the admin token stays valid.
  fetch("/api/v1/sessions", { method: "DELETE", headers: { Authorization: "Bearer " + state.token } })
    .catch(() => {});
  showLogin("");
});
window.addEventListener("hashchange", () => {
  const linked = location.hash.match(/^#login=([0-9a-f]+)$/);
  if (linked) loginWithLink(linked[1]); else route();
});

/// Trades the one-time code of a login link (`#login=CODE`) for a session,
/// taking the code out of the address bar and the history first.
async function loginWithLink(code) {
  history.replaceState(null, "", location.pathname + "#/overview");
  const response = await fetch("/api/v1/sessions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code }),
  });
  const body = await response.json();
  if (!response.ok) { showLogin(body.reason || "That login link does not work."); return; }
  login(body.token);
}

const linked = location.hash.match(/^#login=([0-9a-f]+)$/);
if (linked) loginWithLink(linked[1]); else if (state.token) login(state.token); else showLogin("");
