// claimgate troubleshooting page. Everything shown comes from the gateway or the user and is
// written with textContent (never innerHTML); the page talks to its own origin only.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  /** An element with a class and text, and children appended. */
  function el(tag, className, text, children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  /** A JSON value as one line: strings bare, everything else as JSON. */
  function show(value) {
    if (typeof value === "string") return value;
    return JSON.stringify(value);
  }

  async function api(path, options) {
    const answer = await fetch(path, Object.assign({ credentials: "omit", cache: "no-store" }, options));
    let body = null;
    try {
      body = await answer.json();
    } catch (_) {
      body = { error: { message: "the answer is not JSON (" + answer.status + ")" } };
    }
    return { status: answer.status, body: body };
  }

  // --- time ------------------------------------------------------------------------------

  /** "in 59m56s" / "3h2m ago" between two Unix times. */
  function relative(seconds, now) {
    let delta = Math.round(seconds - now);
    const future = delta >= 0;
    delta = Math.abs(delta);
    const d = Math.floor(delta / 86400), h = Math.floor((delta % 86400) / 3600);
    const m = Math.floor((delta % 3600) / 60), s = delta % 60;
    let text;
    if (d > 0) text = d + "d" + (h ? h + "h" : "");
    else if (h > 0) text = h + "h" + (m ? m + "m" : "");
    else if (m > 0) text = m + "m" + (s ? s + "s" : "");
    else text = s + "s";
    return future ? "in " + text : text + " ago";
  }

  function utc(seconds) {
    const date = new Date(seconds * 1000);
    if (isNaN(date.getTime())) return String(seconds);
    return date.toISOString().replace(".000Z", "Z");
  }

  const TIME_CLAIMS = new Set(["exp", "nbf", "iat", "auth_time", "updated_at"]);

  // --- deployments and routes ------------------------------------------------------------

  let deployments = [];

  async function loadDeployments() {
    const { status, body } = await api("/api/deployments");
    const select = $("deployment");
    clear(select);
    if (status !== 200) {
      select.appendChild(el("option", null, "cannot list deployments: " + status));
      return;
    }
    deployments = body.deployments || [];
    for (const d of deployments) {
      const option = el("option", null, d.label === d.pathPrefix ? d.pathPrefix : d.pathPrefix + " — " + d.label);
      option.value = d.pathPrefix;
      select.appendChild(option);
    }
    showRoutes();
  }

  function showRoutes() {
    const box = $("routes");
    clear(box);
    const chosen = deployments.find((d) => d.pathPrefix === $("deployment").value);
    if (!chosen) return;
    for (const route of chosen.routes || []) {
      const methods = route.methods || ["GET"];
      const chip = el("button", "route", methods.join(",") + " " + route.path);
      chip.type = "button";
      if (route.anonymous) chip.appendChild(el("span", "anon", "anonymous"));
      chip.addEventListener("click", () => {
        const method = methods[0] === "ANY" ? "GET" : methods[0];
        $("method").value = method;
        $("path").value = route.path;
        $("token").focus();
      });
      box.appendChild(chip);
    }
    if (!$("path").value && chosen.routes && chosen.routes.length) {
      $("path").value = chosen.routes[0].path;
    }
  }

  // --- the verdict -----------------------------------------------------------------------

  function parseHeaders(text) {
    const headers = {};
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      const colon = line.indexOf(":");
      if (colon < 1) throw new Error("the header line '" + line + "' is not 'Name: value'");
      headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    }
    return headers;
  }

  async function submitCheck(event) {
    event.preventDefault();
    const button = $("check-button");
    const status = $("check-status");
    let headers;
    try {
      headers = parseHeaders($("headers").value);
    } catch (error) {
      status.textContent = error.message;
      return;
    }
    const request = {
      deployment: $("deployment").value,
      request: $("method").value + " " + $("path").value.trim(),
      headers: headers,
    };
    const token = $("token").value.trim();
    if (token) request.token = token;
    const now = $("now").value.trim();
    if (now) request.now = now;
    button.disabled = true;
    status.textContent = "Checking…";
    try {
      const { status: code, body } = await api("/api/check", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(request),
      });
      status.textContent = "";
      if (code === 200) showVerdict(body, token);
      else showError(body);
    } catch (error) {
      status.textContent = "The admin listener did not answer: " + error.message;
    } finally {
      button.disabled = false;
    }
  }

  function showError(body) {
    const card = $("verdict");
    card.classList.remove("hidden");
    const banner = $("verdict-banner");
    clear(banner);
    banner.className = "banner error";
    const error = (body && body.error) || {};
    banner.appendChild(el("strong", null, "Cannot check"));
    banner.appendChild(el("span", null, error.message || "unknown error"));
    for (const detail of error.details || []) banner.appendChild(el("span", "where", detail));
    clear($("checks"));
    clear($("verdict-extra"));
    $("events-block").classList.add("hidden");
    $("decoded-block").classList.add("hidden");
    $("raw-json").textContent = JSON.stringify(body, null, 2);
  }

  function facts(pairs) {
    const list = el("dl", "facts");
    for (const [name, value, className] of pairs) {
      if (value === undefined || value === null) continue;
      list.appendChild(el("dt", null, name));
      list.appendChild(el("dd", className || null, show(value)));
    }
    return list;
  }

  function showVerdict(doc, token) {
    $("verdict").classList.remove("hidden");
    const banner = $("verdict-banner");
    clear(banner);
    const allow = doc.decision === "allow";
    banner.className = "banner " + (allow ? "allow" : "deny");
    banner.appendChild(el("strong", null, allow ? "Allowed" : "Refused"));
    if (doc.status) banner.appendChild(el("span", null, "status " + doc.status));
    const where = doc.route
      ? "route " + (doc.route.methods || []).join(",") + " " + (doc.route.pathPrefix || "") + doc.route.path
      : "no route";
    banner.appendChild(el("span", "where", where));
    const checks = doc.checks || [];
    const failing = checks.filter((c) => c.result === "fail").map((c) => c.check);
    const judged = checks.filter((c) => c.result !== "skip").length;
    banner.appendChild(
      el(
        "span",
        "summary",
        failing.length
          ? failing.length + " of " + judged + " checks failed: " + failing.join(", ") + ". The fix is under each."
          : judged
          ? "All " + judged + " checks passed."
          : "No check applies to this route."
      )
    );

    const list = $("checks");
    clear(list);
    for (const check of checks) {
      const result = check.result || "skip";
      const item = el("li", result);
      item.dataset.check = check.check;
      item.appendChild(el("span", "pill " + result, result === "fail" ? "fail" : result));
      item.appendChild(el("span", "name", check.check));
      const text = el("div", "text", check.message || check.detail || check.reason || "");
      if (result === "fail") {
        text.appendChild(
          facts([
            ["expected", check.expected],
            ["actual", check.actual],
            ["setting", check.setting],
            ["fix", check.fix, "fix"],
          ])
        );
      }
      item.appendChild(text);
      list.appendChild(item);
    }

    const extra = $("verdict-extra");
    clear(extra);
    const notes = [];
    if (doc.hint) notes.push("hint: " + doc.hint);
    if (doc.backendUrl) notes.push("backend URL: " + doc.backendUrl);
    if (doc.introspection && doc.introspection.error) notes.push("introspection: " + doc.introspection.error);
    for (const warning of doc.warnings || []) notes.push(warning);
    if (doc.routes && doc.routes.length) {
      notes.push("the deployment's routes: " + doc.routes.map((r) => (r.methods || []).join(",") + " " + r.path).join("; "));
    }
    if (notes.length) {
      const ul = el("ul", "notes");
      for (const note of notes) ul.appendChild(el("li", null, note));
      extra.appendChild(ul);
    }

    const events = doc.events || [];
    $("events-block").classList.toggle("hidden", events.length === 0);
    $("events").textContent = events
      .map((e) => (e.level || "").padEnd(5) + "  " + e.code + "  " + e.message)
      .join("\n");

    showDecoded(token, doc.now);
    $("raw-json").textContent = JSON.stringify(doc, null, 2);
    $("verdict").scrollIntoView({ block: "start" });
  }

  // --- decoding (display only: the verdict above is what verifies) ----------------------

  function decodePart(part) {
    let text = part.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) text += "=";
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  }

  function bareToken(token) {
    let text = token.trim();
    const colon = text.indexOf(":");
    if (colon > 0 && text.slice(0, colon).trim().toLowerCase() === "authorization") text = text.slice(colon + 1).trim();
    const space = text.indexOf(" ");
    if (space > 0) text = text.slice(space + 1).trim();
    return text;
  }

  function fillTable(table, object, now) {
    clear(table);
    for (const [name, value] of Object.entries(object)) {
      const row = el("tr");
      row.appendChild(el("td", null, name));
      const cell = el("td", "value", show(value));
      if (TIME_CLAIMS.has(name) && typeof value === "number") {
        cell.appendChild(el("span", "when", utc(value) + " · " + relative(value, now)));
      }
      row.appendChild(cell);
      table.appendChild(row);
    }
  }

  function showDecoded(token, now) {
    const block = $("decoded-block");
    const parts = token ? bareToken(token).split(".") : [];
    if (parts.length !== 3) {
      block.classList.add("hidden");
      return;
    }
    try {
      const header = decodePart(parts[0]);
      const claims = decodePart(parts[1]);
      const at = typeof now === "number" ? now : Date.now() / 1000;
      fillTable($("token-header"), header, at);
      fillTable($("token-claims"), claims, at);
      block.classList.remove("hidden");
    } catch (_) {
      block.classList.add("hidden");
    }
  }

  // --- recent refusals -------------------------------------------------------------------

  async function loadRecent() {
    const { status, body } = await api("/api/requests");
    const rows = $("recent-rows");
    clear(rows);
    const requests = status === 200 ? body.requests || [] : [];
    $("recent-empty").classList.toggle("hidden", requests.length > 0);
    $("recent-table").classList.toggle("hidden", requests.length === 0);
    const now = Date.now() / 1000;
    for (const request of requests) {
      const row = el("tr");
      row.tabIndex = 0;
      row.dataset.requestId = request.requestId;
      const when = Date.parse(request.time) / 1000;
      const whenCell = el("td", null, isNaN(when) ? request.time : relative(when, now));
      whenCell.title = request.time || "";
      row.appendChild(whenCell);
      const statusCell = el("td");
      statusCell.appendChild(el("span", "status" + (request.status >= 500 ? " server" : ""), request.status));
      row.appendChild(statusCell);
      const what = el("td");
      what.appendChild(el("div", "mono", (request.method || "") + " " + (request.uri || "")));
      const reached = request.route && request.route !== request.uri ? " · route " + request.route : "";
      what.appendChild(el("div", "muted", (request.deployment || "") + (request.route ? reached : " · no route")));
      row.appendChild(what);
      const checks = el("td");
      for (const check of request.checks || []) checks.appendChild(el("span", "tag", check));
      if (!(request.checks || []).length) checks.appendChild(el("span", "muted", "—"));
      row.appendChild(checks);
      row.appendChild(el("td", "mono", request.requestId));
      const open = () => openRequest(request.requestId, row);
      row.addEventListener("click", open);
      row.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          open();
        }
      });
      rows.appendChild(row);
    }
  }

  async function openRequest(id, row) {
    for (const other of document.querySelectorAll("#recent-rows tr.open")) other.classList.remove("open");
    row.classList.add("open");
    const box = $("request-detail");
    clear(box);
    box.classList.remove("hidden");
    const { status, body } = await api("/api/requests/" + encodeURIComponent(id));
    if (status !== 200) {
      box.appendChild(el("p", null, (body.error && body.error.message) || "not found"));
      return;
    }
    box.appendChild(el("h3", null, "Request " + id));
    const access = (body.records || []).find((r) => (r.type || "").endsWith(".access"));
    if (access && access.data && access.data.requestUri) {
      const again = el("button", "secondary", "Check a token for this request");
      again.type = "button";
      again.id = "check-again";
      again.addEventListener("click", () => {
        const uri = String(access.data.requestUri);
        const path = uri.split("?")[0];
        const owner = deployments
          .filter((d) => path === d.pathPrefix || path.startsWith(d.pathPrefix.replace(/\/$/, "") + "/"))
          .sort((a, b) => b.pathPrefix.length - a.pathPrefix.length)[0];
        if (owner) {
          $("deployment").value = owner.pathPrefix;
          showRoutes();
        }
        $("method").value = access.data.httpMethod || "GET";
        // A credential parameter was logged as [redacted]: the user pastes the token below.
        $("path").value = uri;
        $("token").focus();
        $("ask").scrollIntoView({ block: "start" });
      });
      box.appendChild(again);
    }
    const diagnosis = body.diagnosis || [];
    if (diagnosis.length === 0) {
      box.appendChild(el("p", "muted", "No failed check was recorded for this request (see its records below)."));
    }
    const list = el("ul", "diag");
    for (const item of diagnosis) {
      const li = el("li");
      const message = el("div", "msg");
      if (item.check) message.appendChild(el("span", "name", item.check));
      message.appendChild(document.createTextNode(item.message || item.code || ""));
      li.appendChild(message);
      li.appendChild(
        facts([
          ["expected", item.expected],
          ["actual", item.actual],
          ["fix", item.fix, "fix"],
        ])
      );
      list.appendChild(li);
    }
    box.appendChild(list);
    box.appendChild(el("h4", null, "Records"));
    const lines = (body.records || []).map((record) => {
      const data = record.data || {};
      if ((record.type || "").endsWith(".access")) return record.time + "  access  " + data.message + " → " + data.status;
      return record.time + "  " + (data.level || "").padEnd(5) + "  " + data.code + "  " + data.message;
    });
    box.appendChild(el("pre", "log", lines.join("\n")));
  }

  // --- start -----------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("try-hint").textContent = "claimgate try URL --token @token.txt --admin " + location.origin;
    $("deployment").addEventListener("change", () => {
      $("path").value = "";
      showRoutes();
    });
    $("check-form").addEventListener("submit", submitCheck);
    $("refresh").addEventListener("click", loadRecent);
    loadDeployments();
    loadRecent();
  });
})();
