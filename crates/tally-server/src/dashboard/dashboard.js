"use strict";
// Tally's dashboard: plain JS, no build step, no CDN. Every number comes
// from /api/v1/reports/* with the admin token the user logs in with.

const REPORTS = ["versions", "platforms", "commands", "flags", "errors", "durations",
  "installs", "environments", "deprecation", "health", "deps", "events"];
const TITLES = {
  overview: "Overview", versions: "Versions", platforms: "Platforms", commands: "Commands",
  flags: "Flags", errors: "Errors", durations: "Durations", installs: "Installs",
  environments: "Environments", deprecation: "Deprecation", health: "Release health", deps: "Dependencies",
  events: "Custom events",
};
const TABLE_TITLES = {
  "versions/versions": "Installs per version", "versions/latest": "Latest release",
  "versions/adoption": "Adoption over time (installs per day)", "platforms/os": "Operating systems",
  "platforms/os_version": "OS versions", "platforms/arch": "Architectures", "platforms/container": "In a container",
  "platforms/wsl": "Under WSL", "commands/commands": "Commands", "flags/flags": "Flags per command",
  "errors/errors": "Errors and crash locations", "errors/outcomes": "How runs ended",
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

const state = { token: sessionStorage.getItem("tally-token") || "", apps: [] };
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
  nav.replaceChildren(...["overview", ...REPORTS].map((name) =>
    el("a", { href: "#/" + name, id: "nav-" + name }, TITLES[name])));
  await route();
}

function currentPage() {
  const name = location.hash.replace(/^#\//, "");
  return name === "" || !(name in TITLES) ? "overview" : name;
}

function params(page) {
  const p = new URLSearchParams();
  for (const id of ["app", "since", "until", "version", "os", "env", "source"]) {
    const value = $("f-" + id).value.trim();
    if (value) p.set(id, value);
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

/// A table of every row the API answered; when a limit left rows out, the
/// last row sums them and a note says how many there are in all.
function tableView(table) {
  if (table.rows.length === 0) return el("p", { class: "empty" }, "No data for these filters.");
  const view = el("table", { "data-table": table.name },
    el("thead", {}, el("tr", {}, table.columns.map((c) => el("th", {}, c.replaceAll("_", " "))))),
    el("tbody", {}, table.rows.map((row) => el("tr", isOther(row) ? { class: "other" } : {}, row.map((value, i) => {
      const classes = [];
      if (typeof value === "number") classes.push("num");
      if (table.columns[i] === "regression" && value === true) classes.push("flag-true");
      // The (other) row's installs are not the sum of its rows' installs.
      const text = value === null && isOther(row) ? "–" : formatCell(table.columns[i], value);
      return el("td", { class: classes.join(" ") }, text);
    })))));
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

function lineChart(xs, series) {
  const W = 800, H = 240, L = 48, B = 26;
  const max = maxOf(series.flatMap((s) => s.values));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
  const x = (i) => L + (xs.length <= 1 ? 0 : (i / (xs.length - 1)) * (W - L - 10));
  const y = (v) => H - B - (v / max) * (H - B - 10);
  for (const frac of [0, 0.5, 1]) {
    chart.append(svg("line", { x1: L, x2: W - 10, y1: y(max * frac), y2: y(max * frac), stroke: "#e3e7ee" }),
      svg("text", { x: 4, y: y(max * frac) + 4 }, Math.round(max * frac).toLocaleString("en-US")));
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
    return lineChart(rows.map((r) => r[0]), [
      { name: "success rate %", values: rows.map((r) => Math.round(r[2] * 1000) / 10) },
      { name: "crash rate %", values: rows.map((r) => Math.round(r[5] * 1000) / 10) },
    ]);
  }
  return null;
}

function card(title, ...content) {
  return el("div", { class: "card" }, el("h2", {}, title), ...content);
}

/// The note a report's hidden small groups get, if it hid any.
function hiddenNote(answer) {
  const hidden = answer.hidden;
  if (!hidden || !hidden.groups) return null;
  return el("p", { class: "note hidden-groups", "data-hidden": hidden.groups },
    `${hidden.groups.toLocaleString("en-US")} groups of fewer than ${hidden.min_installs} installs are hidden, ` +
    "so that no one can be singled out.");
}

async function renderReport(name) {
  const answer = await report(name);
  return el("div", { class: "grid", id: "report-" + name }, answer.tables.map((table) =>
    card(TABLE_TITLES[name + "/" + table.name] || table.name, chartFor(name, table), tableView(table))),
    hiddenNote(answer));
}

async function renderOverview() {
  const [versions, platforms, commands, errors, durations] = await Promise.all(
    ["versions", "platforms", "commands", "errors", "durations"].map((n) => report(n, "overview")));
  const latest = versions.tables.find((t) => t.name === "latest");
  const summary = latest && latest.rows[0];
  const cmd = commands.tables[0];
  return el("div", { class: "grid", id: "report-overview" },
    card("Latest release",
      summary && summary[0] !== null
        ? el("div", {}, el("div", { class: "big" }, summary[0]),
            el("p", { class: "note" }, `${formatCell("share", summary[3])} of ${summary[2].toLocaleString("en-US")} active installs`))
        : el("p", { class: "empty" }, "No data for these filters.")),
    card("Versions over time", chartFor("versions", versions.tables.find((t) => t.name === "adoption")) ||
      el("p", { class: "empty" }, "No data for these filters.")),
    card("Operating systems", chartFor("platforms", platforms.tables[0]) || el("p", { class: "empty" }, "No data.")),
    card("Top commands", chartFor("commands", cmd), tableView(cmd)),
    card("Top errors", tableView(errors.tables[0])),
    card("Durations", tableView(durations.tables[0])),
    hiddenNote({ hidden: [versions, platforms, commands, errors, durations]
      .map((r) => r.hidden).filter((h) => h)
      .reduce((sum, h) => ({ min_installs: h.min_installs, groups: (sum ? sum.groups : 0) + h.groups }), null) }));
}

async function route() {
  if (!state.token) return;
  const page = currentPage();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.id === "nav-" + page);
  show("deprecation-filters", page === "deprecation");
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
  try {
    target.replaceChildren(page === "overview" ? await renderOverview() : await renderReport(page));
  } catch (e) {
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
  route();
});
$("logout").addEventListener("click", () => showLogin(""));
window.addEventListener("hashchange", () => { route(); });

if (state.token) login(state.token); else showLogin("");
