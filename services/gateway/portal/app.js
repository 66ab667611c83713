/* HCRM staff portal: a single page in vanilla JS over the gateway's /api/v1 routes.

   - The bearer token lives in sessionStorage ("hcrm.token"); a 401 anywhere sends back to
     the login page. The role comes from the token's `role` claim (display only: the gateway
     decides what each role may do).
   - Every text from the data goes into the DOM through textContent / attributes set by
     code (the h() helper); no innerHTML anywhere.
   - Failures show the contract's error: {"error": {"code", "message", "details"}}.
*/
(function () {
  "use strict";

  const I18N = window.HCRM_I18N;
  const CHARTS = window.HCRM_CHARTS;
  const t = (key, vars) => I18N.t(key, vars);
  const tv = (prefix, value) => I18N.tv(prefix, value);

  const TZ = "Asia/Shanghai"; // the hospital's time zone (gateway default)
  const TOKEN_KEY = "hcrm.token";
  const RANK = { agent: 1, manager: 2, admin: 3 };
  const enc = encodeURIComponent;

  // -- DOM ---------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (key === "value") el.value = value;
      else if (key === "checked") el.checked = !!value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const $ = (selector, root) => (root || document).querySelector(selector);

  /* parent.append(...) without the nulls (native append would write "null"). */
  function add(parent, ...children) {
    for (const child of children.flat(Infinity)) {
      if (child !== null && child !== undefined && child !== false) parent.append(child);
    }
    return parent;
  }

  // -- time --------------------------------------------------------------------------------
  function todayISO() {
    return new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit",
                                              day: "2-digit" }).format(new Date());
  }

  function addDays(iso, days) {
    const d = new Date(iso + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }

  function previousMonth() {
    const [y, m] = todayISO().split("-").map(Number);
    const d = new Date(Date.UTC(y, m - 2, 1));
    return d.toISOString().slice(0, 7);
  }

  function fmtDateTime(iso) {
    if (!iso) return t("common.none");
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return new Intl.DateTimeFormat(I18N.locale(), { timeZone: TZ, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false }).format(d);
  }

  function fmtTime(iso) {
    if (!iso) return t("common.none");
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return new Intl.DateTimeFormat(I18N.locale(), { timeZone: TZ, hour: "2-digit", minute: "2-digit",
                                                    hour12: false }).format(d);
  }

  function fmtDuration(ms) {
    let rest = Math.floor(Math.abs(ms) / 1000);
    const days = Math.floor(rest / 86400);
    rest %= 86400;
    const pad = (n) => String(n).padStart(2, "0");
    const clock = `${pad(Math.floor(rest / 3600))}:${pad(Math.floor((rest % 3600) / 60))}:${pad(rest % 60)}`;
    return days ? `${days}d ${clock}` : clock;
  }

  // -- session -----------------------------------------------------------------------------
  function decodeClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const padded = part + "===".slice((part.length + 3) % 4);
      const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      return null;
    }
  }

  const session = {
    token() {
      try { return window.sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
    },
    set(token) { window.sessionStorage.setItem(TOKEN_KEY, token); },
    clear() { try { window.sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ } },
    claims() {
      const token = this.token();
      if (!token) return null;
      const claims = decodeClaims(token);
      if (!claims || !claims.role || (claims.exp && claims.exp * 1000 < Date.now())) {
        this.clear();
        return null;
      }
      return claims;
    },
  };

  const rankOf = (claims) => (claims && RANK[claims.role]) || 0;

  // -- notices -----------------------------------------------------------------------------
  let pendingNotice = null;

  function notice(kind, message, details) {
    const box = $("#notice");
    box.replaceChildren();
    delete box.dataset.errorCode;
    if (!message) { box.hidden = true; return; }
    box.hidden = false;
    box.className = "notice " + kind;
    box.append(h("p", { class: "notice-message" }, message));
    const rows = Object.entries(details || {});
    if (rows.length) {
      box.append(h("ul", { class: "notice-details" },
        rows.map(([field, messages]) => h("li", {}, h("code", {}, field), I18N.lang === "zh" ? "：" : ": ",
                                               Array.isArray(messages) ? messages.join(" ") : String(messages)))));
    }
  }

  /* An error wholly in the page's language. The gateway's messages are English: the English
     page shows them as they are (they name the field and the fix); the Chinese page shows
     the text of the error's code, and per field a Chinese hint, never the English text. */
  const FIELD_ERRORS = new Set(["validation_failed", "invalid_json"]);

  function errorMessage(err) {
    if (!(err instanceof ApiFailure)) return t("err.unexpected");
    if (I18N.lang === "en" && err.message) return err.message;
    const key = "err.code." + err.code;
    const details = err.details || {};
    const text = t(key, { status: err.status, request_id: details.request_id || t("common.none"),
                          seconds: Math.max(1, Math.ceil(details.retry_after_s || 1)) });
    return text !== key ? text : t("err.status", { status: err.status });
  }

  function errorDetails(err) {
    if (!(err instanceof ApiFailure) || !FIELD_ERRORS.has(err.code)) return null;
    return Object.fromEntries(Object.entries(err.details || {}).map(([field, messages]) =>
      [field, I18N.lang === "en" ? messages : t("err.fieldHint")]));
  }

  function showError(err) {
    if (err && err.silent) return;
    notice("error", t("err.shown", { message: errorMessage(err) }), errorDetails(err));
    $("#notice").dataset.errorCode = (err && err.code) || "unexpected";
  }

  const showInfo = (message) => notice("info", message);
  const clearNotice = () => notice("", null);

  // -- API ---------------------------------------------------------------------------------
  class ApiFailure extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || {};
    }
  }

  async function api(method, path, body, options) {
    const raw = options && options.raw;
    const headers = { Accept: raw ? "*/*" : "application/json" };
    const token = session.token();
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, cache: "no-store", credentials: "omit",
                                     body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiFailure(0, "network", t("err.network"), {});
    }
    if (!response.ok) {
      let error = {};
      try { error = (await response.json()).error || {}; } catch (e) { /* not JSON */ }
      const failure = new ApiFailure(response.status, error.code || `http_${response.status}`,
                                     error.message || response.statusText || String(response.status),
                                     error.details);
      if (response.status === 401 && path !== "/api/v1/auth/token") {
        failure.silent = true;
        logout("login.expired");
      }
      throw failure;
    }
    return raw ? response : response.json();
  }

  const patientNames = new Map();
  function patientName(patientId) {
    if (!patientNames.has(patientId)) {
      const promise = api("GET", `/api/v1/patients/${enc(patientId)}`).then((p) => p.name || null);
      promise.catch(() => patientNames.delete(patientId));
      patientNames.set(patientId, promise);
    }
    return patientNames.get(patientId);
  }

  // -- chrome and routing ------------------------------------------------------------------
  const timers = [];
  function every(ms, fn) { timers.push(window.setInterval(fn, ms)); }
  function stopTimers() { while (timers.length) window.clearInterval(timers.pop()); }

  const NAV = [
    ["worklist", "nav.worklist", 1],
    ["appointments", "nav.appointments", 1],
    ["complaints", "nav.complaints", 1],
    ["patients", "nav.patients", 1],
    ["dashboard", "nav.dashboard", 2],
    ["hl7", "nav.hl7", 3],
  ];

  function renderChrome(claims, current) {
    document.title = t("app.title");
    const header = $("#top");
    header.replaceChildren();
    header.append(h("a", { class: "brand", href: claims ? "#/" : "#/login" }, t("app.title")));
    if (claims) {
      header.append(h("nav", { class: "main-nav", "aria-label": "main" },
        NAV.filter(([, , rank]) => rankOf(claims) >= rank).map(([name, label]) =>
          h("a", { href: `#/${name}`, id: `nav-${name}`,
                   "aria-current": current === name || (current === "patient" && name === "patients") ? "page" : null },
            t(label)))));
    }
    const tools = h("div", { class: "tools" });
    if (claims) {
      tools.append(h("span", { class: "who", id: "who" },
                     t("nav.signedInAs", { user: claims.sub, role: tv("role", claims.role) })));
    }
    tools.append(h("button", { type: "button", id: "lang-toggle", class: "secondary", lang: I18N.lang === "zh" ? "en" : "zh",
                               onclick: () => { I18N.setLang(I18N.lang === "zh" ? "en" : "zh"); render(); } },
                   t("lang.switch")));
    if (claims) {
      tools.append(h("button", { type: "button", id: "logout", class: "secondary",
                                 onclick: () => logout("login.loggedOut") }, t("nav.logout")));
    }
    header.append(tools);
  }

  function logout(reasonKey) {
    session.clear();
    patientNames.clear();
    pendingNotice = reasonKey || null;
    if (location.hash === "#/login") render();
    else location.hash = "#/login";
  }

  function home(claims) {
    return rankOf(claims) >= 2 ? "#/dashboard" : "#/worklist";
  }

  const VIEWS = {};

  async function render() {
    stopTimers();
    const raw = location.hash.replace(/^#\/?/, "");
    const [name, ...rest] = raw.split("/");
    const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
    const claims = session.claims();
    if (!claims && name !== "login") { location.hash = "#/login"; return; }
    if (claims && (name === "login" || !VIEWS[name])) { location.hash = home(claims); return; }
    renderChrome(claims, name);
    clearNotice();
    if (pendingNotice) { showInfo(t(pendingNotice)); pendingNotice = null; }
    const view = $("#view");
    view.replaceChildren();
    view.dataset.view = name;
    try {
      await VIEWS[name](view, arg, claims);
    } catch (err) {
      showError(err);
    }
  }

  // -- login -------------------------------------------------------------------------------
  VIEWS.login = function (view) {
    const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
    const password = h("input", { id: "password", name: "password", type: "password",
                                  autocomplete: "current-password", required: true });
    const submit = h("button", { type: "submit", id: "login-submit" }, t("login.submit"));
    const form = h("form", { id: "login-form", class: "card narrow",
      onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        try {
          const body = await api("POST", "/api/v1/auth/token",
                                 { username: username.value.trim(), password: password.value });
          session.set(body.access_token);
          location.hash = home(session.claims());
        } catch (err) {
          showError(err);
        } finally {
          submit.disabled = false;
        }
      } },
      h("h1", {}, t("login.title")),
      h("label", { for: "username" }, t("login.username")), username,
      h("label", { for: "password" }, t("login.password")), password,
      submit);
    view.append(form);
    username.focus();
  };

  // -- worklist ----------------------------------------------------------------------------
  let worklistMode = "today";
  const WORKLIST_QUERY = {
    today: "status=pending&due_today=true",
    overdue: "status=pending&overdue=true",
    pending: "status=pending",
  };

  VIEWS.worklist = async function (view, arg, claims) {
    const list = h("div", { class: "task-list", id: "task-list", "aria-live": "polite" });
    const count = h("p", { class: "muted", id: "task-count" });
    const tabs = h("div", { class: "tabs", role: "tablist" },
      Object.keys(WORKLIST_QUERY).map((mode) => h("button", {
        type: "button", role: "tab", id: `tab-${mode}`, class: "tab",
        "aria-selected": mode === worklistMode ? "true" : "false",
        onclick: () => { worklistMode = mode; render(); } }, t(`worklist.${mode}`))));
    view.append(h("div", { class: "view-head" }, h("h1", {}, t("worklist.title")), tabs,
                  h("button", { type: "button", id: "refresh", class: "secondary", onclick: () => render() },
                    t("common.refresh"))),
                count, list);
    list.append(h("p", { class: "muted" }, t("common.loading")));
    const body = await api("GET", `/api/v1/followups?${WORKLIST_QUERY[worklistMode]}&limit=200`);
    list.replaceChildren();
    count.textContent = t("common.total", { n: body.total });
    if (!body.items.length) list.append(h("p", { class: "empty" }, t("common.empty")));
    for (const task of body.items) list.append(taskCard(task, claims));
  };

  function scriptText(script) {
    if (!script) return null;
    if (typeof script === "string") return script;
    return script[I18N.lang] || script.zh || script.en || null;
  }

  function taskCard(task, claims) {
    const id = task.followup_id;
    const nameEl = h("span", { class: "patient-name" }, task.patient_name || "…");
    if (!task.patient_name) {
      patientName(task.patient_id).then((name) => { nameEl.textContent = name || t("common.none"); },
                                        () => { nameEl.textContent = t("common.none"); });
    }
    const claimedByOther = task.claimed_by && task.claimed_by !== claims.sub;
    const card = h("article", { class: "card task" + (task.overdue ? " overdue" : ""), "data-followup-id": id },
      h("header", { class: "task-head" },
        h("h2", {}, nameEl),
        h("span", { class: "tag kind" }, tv("kind", task.kind)),
        task.overdue ? h("span", { class: "tag danger" }, t("task.overdue")) : null,
        claimedByOther ? h("span", { class: "tag" }, t("task.claimedBy", { agent: task.claimed_by })) : null),
      h("dl", { class: "facts" },
        h("dt", {}, t("task.due")), h("dd", { class: "due" }, fmtDateTime(task.due_at)),
        h("dt", {}, t("task.department")), h("dd", {}, task.department || t("common.none")),
        task.attempts ? [h("dt", {}, "#"), h("dd", {}, t("task.attempts", { n: task.attempts }))] : null));
    const script = scriptText(task.script);
    card.append(h("section", { class: "why" },
      h("h3", {}, t("task.whyCall")),
      h("p", { class: "why-kind" }, tv("kind", task.kind)),
      script ? h("blockquote", { class: "script", "aria-label": t("task.script") }, script) : null));

    const phone = h("strong", { class: "phone", hidden: true });
    const audited = h("small", { class: "muted", hidden: true }, t("task.phoneAudited"));
    const reveal = h("button", { type: "button", class: "show-phone secondary", onclick: async () => {
      reveal.disabled = true;
      try {
        const contact = await api("GET", `/api/v1/followups/${enc(id)}/contact`);
        phone.textContent = contact.phone || t("common.none");
        phone.hidden = false;
        audited.hidden = false;
        reveal.hidden = true;
      } catch (err) {
        reveal.disabled = false;
        showError(err);
      }
    } }, t("task.showPhone"));
    card.append(h("div", { class: "phone-row" }, h("span", { class: "label" }, t("task.phone")), reveal, phone, audited));

    // One click records the call: "reached" with a score (1-5) or without, unreachable or
    // declined. The click claims the task first (idempotent for the same agent), then completes it.
    const result = h("p", { class: "result", hidden: true });
    const buttons = [];
    const button = (outcome, satisfaction, label, title) => {
      const b = h("button", { type: "button", class: `outcome outcome-${outcome}` + (satisfaction ? " score" : ""),
                              "data-outcome": outcome, "data-satisfaction": satisfaction || null,
                              title: title || null, "aria-label": title || null,
                              onclick: () => record(outcome, satisfaction) }, label);
      buttons.push(b);
      return b;
    };
    const reached = h("div", { class: "outcome-group reached-group", role: "group", "aria-label": t("outcome.reached") },
      h("span", { class: "label" }, t("task.reachedScore")),
      [1, 2, 3, 4, 5].map((n) => button("reached", n, String(n),
                                        `${t("outcome.reached")} · ${t("task.satisfaction")} ${n}`)),
      button("reached", null, t("task.reachedNoScore")));
    const others = h("div", { class: "outcome-group" },
      button("unreachable", null, t("outcome.unreachable")),
      button("declined", null, t("outcome.declined")));
    const actions = h("div", { class: "actions" }, reached, others);

    async function record(outcome, satisfaction) {
      buttons.forEach((b) => { b.disabled = true; });
      try {
        await api("POST", `/api/v1/followups/${enc(id)}/claim`);
        const body = { outcome };
        if (satisfaction) body.satisfaction = satisfaction;
        const done = await api("POST", `/api/v1/followups/${enc(id)}/complete`, body);
        let text;
        if (done.status === "done") {
          text = t("task.recorded", { outcome: tv("outcome", done.outcome) });
          if (done.satisfaction) text += ` · ${t("task.satisfaction")} ${done.satisfaction}`;
          card.classList.add("completed");
          card.dataset.status = "done";
          actions.hidden = true;
        } else {
          text = t("task.retry");
          buttons.forEach((b) => { b.disabled = false; });
        }
        result.textContent = text;
        result.hidden = false;
        showInfo(text);
      } catch (err) {
        buttons.forEach((b) => { b.disabled = false; });
        showError(err);
      }
    }
    card.append(actions, result);
    return card;
  }

  // -- appointments ------------------------------------------------------------------------
  let appointmentDate = null;

  VIEWS.appointments = async function (view) {
    appointmentDate = appointmentDate || todayISO();
    const date = h("input", { type: "date", id: "appt-date", value: appointmentDate });
    const tbody = h("tbody", { id: "appt-rows" });
    const count = h("p", { class: "muted" });
    view.append(
      h("div", { class: "view-head" }, h("h1", {}, t("appt.title")),
        h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); appointmentDate = date.value || todayISO(); render(); } },
          h("label", { for: "appt-date" }, t("appt.date")), date,
          h("button", { type: "submit", id: "appt-show" }, t("appt.show")))),
      count,
      h("table", { class: "grid-table" },
        h("thead", {}, h("tr", {}, ["appt.time", "appt.patient", "appt.department", "appt.doctor",
                                    "appt.channel", "appt.status", "appt.actions"].map((k) => h("th", {}, t(k))))),
        tbody));
    const body = await api("GET", `/api/v1/appointments?date=${enc(appointmentDate)}&limit=500`);
    const items = body.items.slice().sort((a, b) => String(a.starts_at).localeCompare(String(b.starts_at)));
    count.textContent = t("common.total", { n: body.total });
    if (!items.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, t("common.empty"))));
    for (const appointment of items) tbody.append(appointmentRow(appointment));
  };

  function appointmentRow(a) {
    const name = h("a", { href: `#/patient/${enc(a.patient_id)}` }, "…");
    patientName(a.patient_id).then((n) => { name.textContent = n || a.patient_id; },
                                   () => { name.textContent = a.patient_id; });
    const row = h("tr", { "data-appointment-id": a.appointment_id, "data-status": a.status });
    const act = (path) => async () => {
      row.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      try {
        const updated = await api("POST", `/api/v1/appointments/${enc(a.appointment_id)}/${path}`);
        row.replaceWith(appointmentRow(updated));
        showInfo(t("common.done"));
      } catch (err) {
        row.querySelectorAll("button").forEach((b) => { b.disabled = false; });
        showError(err);
      }
    };
    add(row,
      h("td", {}, fmtTime(a.starts_at), a.duration_minutes ? h("small", { class: "muted" }, ` ${a.duration_minutes}′`) : null),
      h("td", {}, name),
      h("td", {}, a.department || t("common.none")),
      h("td", {}, a.doctor_id || t("common.none")),
      h("td", {}, tv("channel", a.channel),  // the hospital system's own number of a mirrored one (v1.1)
        a.external_id ? h("small", { class: "muted external-id" }, ` ${a.external_id}`) : null),
      h("td", {}, h("span", { class: `tag status-${a.status}` }, tv("apptStatus", a.status))),
      h("td", {}, h("div", { class: "row-actions" },
        a.status === "booked" ? h("button", { type: "button", class: "confirm", onclick: act("confirm") }, t("appt.confirm")) : null,
        a.status === "booked" || a.status === "confirmed"
          ? h("button", { type: "button", class: "check-in", onclick: act("check-in") }, t("appt.checkin")) : null)));
    return row;
  }

  // -- complaints --------------------------------------------------------------------------
  let complaintStatus = "open";

  VIEWS.complaints = async function (view, arg, claims) {
    const select = h("select", { id: "complaint-status", onchange: () => { complaintStatus = select.value; render(); } },
      ["all", "open", "acknowledged", "escalated", "resolved"].map((s) =>
        h("option", { value: s, selected: s === complaintStatus ? true : null }, t(`cStatus.${s}`))));
    const list = h("div", { class: "complaint-list", id: "complaint-list" });
    const count = h("p", { class: "muted" });
    view.append(h("div", { class: "view-head" }, h("h1", {}, t("complaints.title")),
                  h("label", { for: "complaint-status" }, t("complaints.status")), select,
                  h("button", { type: "button", id: "refresh", class: "secondary", onclick: () => render() },
                    t("common.refresh"))),
                count, list);
    const query = complaintStatus === "all" ? "" : `status=${enc(complaintStatus)}&`;
    const body = await api("GET", `/api/v1/complaints?${query}limit=200`);
    count.textContent = t("common.total", { n: body.total });
    if (!body.items.length) list.append(h("p", { class: "empty" }, t("common.empty")));
    for (const complaint of body.items) list.append(complaintCard(complaint, claims));
    tick();
    every(1000, tick);
  };

  function tick() {
    const now = Date.now();
    document.querySelectorAll(".countdown[data-due]").forEach((el) => {
      const left = Date.parse(el.dataset.due) - now;
      const breached = left < 0;
      el.textContent = breached ? t("complaints.breached", { time: fmtDuration(left) })
                                : t("complaints.left", { time: fmtDuration(left) });
      el.classList.toggle("breached", breached);
      el.dataset.breached = breached ? "true" : "false";
    });
  }

  function complaintCard(c, claims) {
    const acknowledged = !!c.acknowledged_at;
    const deadline = c.status === "resolved" ? null
      : (!acknowledged ? { key: "complaints.ackDue", at: c.ack_due_at } : { key: "complaints.resolveDue", at: c.resolve_due_at });
    const note = h("input", { type: "text", class: "note", maxlength: 4000, placeholder: t("complaints.note"),
                              "aria-label": t("complaints.note") });
    const resolution = h("input", { type: "text", class: "resolution", maxlength: 4000,
                                    placeholder: t("complaints.resolution"), "aria-label": t("complaints.resolution") });
    const card = h("article", { class: `card complaint severity-${c.severity}`, "data-complaint-id": c.complaint_id,
                                "data-status": c.status });
    const act = (action) => async () => {
      card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      const body = { note: note.value || null };
      if (action === "resolve") body.resolution = resolution.value || null;
      try {
        const updated = await api("POST", `/api/v1/complaints/${enc(c.complaint_id)}/${action}`, body);
        card.replaceWith(complaintCard(updated, claims));
        tick();
        showInfo(t("common.done"));
      } catch (err) {
        card.querySelectorAll("button").forEach((b) => { b.disabled = false; });
        showError(err);
      }
    };
    const canAck = c.status === "open" || (c.status === "escalated" && !acknowledged);
    const canResolve = c.status === "acknowledged" || c.status === "escalated";
    const canEscalate = rankOf(claims) >= 2 && (c.status === "open" || c.status === "acknowledged");
    add(card,
      h("header", { class: "task-head" },
        h("h2", {}, tv("category", c.category)),
        h("span", { class: `tag sev sev-${c.severity}` }, `${t("severity.label")}: ${tv("severity", c.severity)}`),
        h("span", { class: "tag status" }, tv("cStatus", c.status)),
        c.department ? h("span", { class: "tag" }, c.department) : null,
        h("span", { class: "tag" }, tv("channel", c.channel))),
      h("p", { class: "description" }, c.description || ""),
      h("dl", { class: "facts" },
        h("dt", {}, t("complaints.received")), h("dd", {}, fmtDateTime(c.received_at)),
        deadline ? [h("dt", {}, t(deadline.key)),
                    h("dd", {}, fmtDateTime(deadline.at), " ",
                      h("span", { class: "countdown", "data-due": deadline.at }))] : null,
        c.assigned_to ? [h("dt", {}, "→"), h("dd", {}, t("complaints.assigned", { agent: c.assigned_to }))] : null),
      c.resolution ? h("p", { class: "muted" }, `${t("complaints.resolution")}: ${c.resolution}`) : null);
    if (canAck || canResolve || canEscalate) {
      add(card, h("div", { class: "actions" }, note, canResolve ? resolution : null,
        canAck ? h("button", { type: "button", class: "acknowledge", onclick: act("acknowledge") }, t("complaints.acknowledge")) : null,
        canResolve ? h("button", { type: "button", class: "resolve", onclick: act("resolve") }, t("complaints.resolve")) : null,
        canEscalate ? h("button", { type: "button", class: "escalate danger", onclick: act("escalate") }, t("complaints.escalate")) : null));
    }
    return card;
  }

  // -- patients ----------------------------------------------------------------------------
  let lastSearch = { by: "q", value: "" };
  let searchSeq = 0;  // only the latest search fills the table (an earlier answer may come last)

  VIEWS.patients = async function (view) {
    const by = h("select", { id: "patient-by" }, ["q", "mrn", "phone"].map((k) =>
      h("option", { value: k, selected: k === lastSearch.by ? true : null }, t(`patients.by.${k}`))));
    const input = h("input", { type: "search", id: "patient-query", value: lastSearch.value, required: true,
                               maxlength: 100, "aria-label": t("patients.search") });
    const tbody = h("tbody", { id: "patient-rows" });
    const table = h("table", { class: "grid-table", hidden: true },
      h("thead", {}, h("tr", {}, ["patients.name", "patients.mrn", "patients.gender", "patients.birth",
                                  "patients.stage", "patients.segment", "patients.visits", "patients.lastSeen", ""]
                                  .map((k) => h("th", {}, k ? t(k) : "")))),
      tbody);
    const count = h("p", { class: "muted" });
    view.append(h("div", { class: "view-head" }, h("h1", {}, t("patients.title")),
      h("form", { class: "inline", id: "patient-search", onsubmit: (e) => {
        e.preventDefault();
        lastSearch = { by: by.value, value: input.value.trim() };
        search();
      } }, h("label", { for: "patient-by" }, t("patients.by")), by, input,
        h("button", { type: "submit", id: "patient-submit" }, t("patients.search")))), count, table);

    async function search() {
      if (!lastSearch.value) return;
      tbody.replaceChildren();
      const mine = ++searchSeq;
      try {
        const body = await api("GET", `/api/v1/patients?${lastSearch.by}=${enc(lastSearch.value)}&limit=100`);
        if (mine !== searchSeq) return;
        count.textContent = t("common.total", { n: body.total });
        table.hidden = false;
        if (!body.items.length) tbody.append(h("tr", {}, h("td", { colspan: 9, class: "empty" }, t("common.empty"))));
        for (const p of body.items) {
          tbody.append(h("tr", { "data-patient-id": p.patient_id },
            h("td", {}, p.name || t("common.none")),
            h("td", {}, p.mrn || t("common.none"), mergedNote(p)),
            h("td", {}, tv("gender", p.gender)), h("td", {}, p.birth_date || t("common.none")),
            h("td", {}, tv("stage", p.stage)), h("td", {}, tv("segment", p.segment)),
            h("td", {}, p.visit_count ?? 0), h("td", {}, fmtDateTime(p.last_seen_at)),
            h("td", {}, h("a", { href: `#/patient/${enc(p.patient_id)}`, class: "open-timeline" }, t("patients.open")))));
        }
      } catch (err) {
        if (mine === searchSeq) showError(err);
      }
    }
    if (lastSearch.value) await search();
    else input.focus();
  };

  /* Searched by a retired MRN (v1.1 merge): say which patient it now belongs to. */
  function mergedNote(p) {
    const asked = lastSearch.by === "mrn" ? lastSearch.value : null;
    if (!asked || asked === p.mrn || !(p.merged_mrns || []).includes(asked)) return null;
    return h("small", { class: "muted merged-note" }, " " + t("patients.mergedInto", { mrn: asked }));
  }

  function eventSummary(e) {
    const d = e.data || {};
    const parts = [];
    if (d.department) parts.push(d.department);
    if (d.visit_type) parts.push(tv("visit", d.visit_type));
    if (d.ward) parts.push(d.ward);
    if (d.disposition) parts.push(tv("disposition", d.disposition));
    if (d.channel) parts.push(tv("channel", d.channel));
    if (d.source_channel) parts.push(tv("source", d.source_channel));
    // v1.1: what a merge, a correction or the hospital's scheduling says
    if (d.merged_mrn) parts.push(t("patients.mergedFrom", { mrn: d.merged_mrn }));
    if (d.starts_at) parts.push(fmtDateTime(d.starts_at));
    if (d.reason) parts.push(d.reason);
    return parts.join(" · ");
  }

  /* Data rights (manager: export; admin: erase too). The export opens as a readable page in a
     new tab (fetched with the token, like the reports); the erasure asks for a reason first. */
  function dataRights(p, patientId, claims) {
    if (rankOf(claims) < 2) return null;
    const out = h("div", { class: "report-output", id: "export-output" });
    async function exportHtml() {
      const tab = window.open("", "_blank"); // opened on the click: no popup blocker
      try {
        const url = await fetchReport(`/api/v1/patients/${enc(patientId)}/export?format=html`,
                                      `patient-${patientId}.html`, out);
        if (tab) showInTab(tab, url);
      } catch (err) {
        if (tab) tab.close();
        showError(err);
      }
    }
    async function exportJson() {
      try {
        await fetchReport(`/api/v1/patients/${enc(patientId)}/export?format=json`, `patient-${patientId}.json`, out);
        $(".report-download", out).click();
      } catch (err) {
        showError(err);
      }
    }
    const section = h("section", { class: "card", id: "data-rights" }, h("h2", {}, t("patients.dataRights")),
      h("div", { class: "inline" },
        h("button", { type: "button", id: "patient-export", onclick: exportHtml }, t("patients.export")),
        h("button", { type: "button", id: "patient-export-json", class: "secondary", onclick: exportJson },
          t("patients.exportJson"))), out);
    if (p.erased_at) {
      section.append(h("p", { class: "tag danger", id: "patient-erased" }, t("patients.erased", { at: fmtDateTime(p.erased_at) })));
    } else if (rankOf(claims) >= 3) {
      const reason = h("textarea", { id: "erase-reason", rows: 2, maxlength: 500, required: true,
                                     "aria-label": t("patients.eraseReason"), placeholder: t("patients.eraseReason") });
      const form = h("form", { id: "erase-form", hidden: true, onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api("POST", `/api/v1/patients/${enc(patientId)}/erase`, { reason: reason.value });
          pendingNotice = "patients.erasing"; // shown by render(), which clears notices first
          render();
        } catch (err) {
          showError(err);
        }
      } }, h("p", { class: "muted" }, t("patients.eraseWarning")), reason,
        h("div", { class: "inline" },
          h("button", { type: "submit", id: "erase-confirm", class: "danger" }, t("patients.eraseConfirm")),
          h("button", { type: "button", class: "secondary", onclick: () => { form.hidden = true; } },
            t("patients.eraseCancel"))));
      section.append(h("button", { type: "button", id: "patient-erase", class: "danger", onclick: () => {
        form.hidden = false;
        reason.focus();
      } }, t("patients.erase")), form);
    }
    return section;
  }

  VIEWS.patient = async function (view, patientId, claims) {
    view.append(h("p", {}, h("a", { href: "#/patients", id: "back" }, "← " + t("patients.back"))));
    const [p, timeline] = await Promise.all([
      api("GET", `/api/v1/patients/${enc(patientId)}`),
      api("GET", `/api/v1/patients/${enc(patientId)}/timeline?limit=500`),
    ]);
    view.append(h("section", { class: "card", id: "patient-profile" },
      h("h1", {}, p.name || t("common.none")),
      h("dl", { class: "facts" },
        [["patients.mrn", p.mrn], ["patients.gender", tv("gender", p.gender)],
         ["patients.birth", p.birth_date], ["patients.region", p.region],
         ["patients.stage", tv("stage", p.stage)], ["patients.segment", tv("segment", p.segment)],
         ["patients.visits", p.visit_count ?? 0],
         ["patients.consent", p.contact_consent === false ? t("no") : t("yes")],
         ["patients.lastSeen", fmtDateTime(p.last_seen_at)],
         // v1.1: the retired MRNs the hospital merged into this patient (each finds this profile)
         ...((p.merged_mrns || []).length ? [["patients.mergedMrns", p.merged_mrns.join(", ")]] : [])]
          .map(([k, v]) => [h("dt", {}, t(k)), h("dd", { "data-fact": k }, v ?? t("common.none"))]))));
    add(view, dataRights(p, patientId, claims));
    const list = h("ol", { class: "timeline", id: "timeline" });
    for (const e of timeline.items) {
      list.append(h("li", { "data-event-type": e.event_type },
        h("time", { datetime: e.occurred_at }, fmtDateTime(e.occurred_at)),
        h("strong", {}, tv("event", e.event_type)),
        h("span", { class: "muted" }, eventSummary(e)),
        h("small", { class: "muted" }, e.source || "")));
    }
    if (!timeline.items.length) list.append(h("li", { class: "empty" }, t("common.empty")));
    view.append(h("section", { class: "card" }, h("h2", {}, t("patients.timeline")), list));
  };

  // -- dashboard ---------------------------------------------------------------------------
  const FIGURES = ["visits", "unique_patients", "first_visits", "return_visits", "admissions", "discharges", "consultations",
                   "conversions", "conversion_rate", "followups_due", "followups_completed",
                   "followup_completion_rate", "avg_satisfaction", "complaints_opened", "complaints_resolved",
                   "ack_sla_rate", "resolve_sla_rate", "word_of_mouth_share"];
  const RATES = new Set(["conversion_rate", "followup_completion_rate", "ack_sla_rate", "resolve_sla_rate",
                         "word_of_mouth_share"]);
  let dashRange = null;

  function figureText(key, value) {
    if (value === null || value === undefined) return t("common.none");
    if (RATES.has(key)) return (value * 100).toFixed(1) + "%";
    if (key === "avg_satisfaction") return Number(value).toFixed(2);
    return String(value);
  }

  VIEWS.dashboard = async function (view, arg, claims) {
    if (rankOf(claims) < 2) {
      view.append(h("p", { class: "empty" }, t("common.forbidden")));
      return;
    }
    dashRange = dashRange || { from: addDays(todayISO(), -29), to: todayISO(), granularity: "day" };
    const from = h("input", { type: "date", id: "dash-from", value: dashRange.from, required: true });
    const to = h("input", { type: "date", id: "dash-to", value: dashRange.to, required: true });
    const gran = h("select", { id: "dash-granularity" }, ["day", "week", "month"].map((g) =>
      h("option", { value: g, selected: g === dashRange.granularity ? true : null }, t(`gran.${g}`))));
    const figures = h("div", { class: "figures", id: "figures" });
    const charts = h("div", { class: "charts", id: "charts" });
    const stamp = h("small", { class: "muted", id: "dash-stamp" });
    const refresh = h("button", { type: "button", id: "dash-refresh", class: "secondary", onclick: () => load() },
                      t("common.refresh"));
    view.append(
      h("div", { class: "view-head" }, h("h1", {}, t("dash.title")),
        h("form", { class: "inline", id: "dash-form", onsubmit: (e) => {
          e.preventDefault();
          dashRange = { from: from.value, to: to.value, granularity: gran.value };
          load();
        } },
          h("label", { for: "dash-from" }, t("dash.from")), from,
          h("label", { for: "dash-to" }, t("dash.to")), to,
          h("label", { for: "dash-granularity" }, t("dash.granularity")), gran,
          h("button", { type: "submit", id: "dash-apply" }, t("dash.apply"))),
        refresh, stamp),
      h("section", {}, h("h2", {}, t("dash.figures")), figures),
      charts,
      reportsSection());

    async function load() {
      refresh.disabled = true;
      try {
        const q = `from=${enc(dashRange.from)}&to=${enc(dashRange.to)}`;
        const [summary, series] = await Promise.all([
          api("GET", `/api/v1/analytics/summary?${q}`),
          api("GET", `/api/v1/analytics/series?${q}&granularity=${enc(dashRange.granularity)}`),
        ]);
        drawFigures(figures, summary);
        drawCharts(charts, summary, series);
        stamp.textContent = new Intl.DateTimeFormat(I18N.locale(), { timeZone: TZ, hour: "2-digit",
          minute: "2-digit", second: "2-digit", hour12: false }).format(new Date());
        view.dataset.loadedAt = String(Date.now());
      } catch (err) {
        showError(err);
      } finally {
        refresh.disabled = false;
      }
    }
    await load();
  };

  function drawFigures(box, summary) {
    box.replaceChildren();
    for (const key of FIGURES) {
      box.append(h("div", { class: "figure", "data-figure": key },
        h("span", { class: "figure-label" }, t(`fig.${key}`)),
        h("span", { class: "figure-value" }, figureText(key, summary[key]))));
    }
  }

  function drawCharts(box, summary, series) {
    box.replaceChildren();
    const points = (series.points || []).map((p) => ({
      label: p.from === p.to ? p.from.slice(5) : `${p.from.slice(5)}…`, values: p }));
    const trend = CHARTS.lineChart({
      title: t("dash.trend"), points,
      series: [{ key: "visits", label: t("fig.visits"), cls: "c1" },
               { key: "followups_completed", label: t("fig.followups_completed"), cls: "c2" },
               { key: "complaints_opened", label: t("fig.complaints_opened"), cls: "c3" }] });
    const satisfaction = CHARTS.lineChart({
      title: t("dash.trendSatisfaction"), points, yMax: 5,
      series: [{ key: "avg_satisfaction", label: t("fig.avg_satisfaction"), cls: "c4" }] });
    const byDept = (summary.by_department || []).map((d) => ({ label: d.department, value: d.visits }));
    const bySource = (summary.by_source || []).map((s) => ({ label: tv("source", s.source_channel), value: s.first_visits }));
    box.append(
      h("figure", { class: "card chart-card", id: "chart-trend" }, h("figcaption", {}, t("dash.trend")), trend),
      h("figure", { class: "card chart-card", id: "chart-satisfaction" },
        h("figcaption", {}, t("dash.trendSatisfaction")), satisfaction),
      h("figure", { class: "card chart-card", id: "chart-departments" }, h("figcaption", {}, t("dash.byDepartment")),
        byDept.length ? CHARTS.barChart({ items: byDept, title: t("dash.byDepartment") })
                      : h("p", { class: "empty" }, t("dash.noData"))),
      h("figure", { class: "card chart-card", id: "chart-sources" }, h("figcaption", {}, t("dash.bySource")),
        bySource.length ? CHARTS.barChart({ items: bySource, title: t("dash.bySource"), cls: "alt" })
                        : h("p", { class: "empty" }, t("dash.noData"))));
  }

  /* A report fetched with the bearer token, handed to the user as a blob: URL. */
  async function fetchReport(path, filename, output) {
    const response = await api("GET", path, undefined, { raw: true });
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    output.replaceChildren(h("span", {}, t("dash.reportReady") + " "),
      h("a", { href: url, target: "_blank", class: "report-open", onclick: (event) => {
        event.preventDefault();
        const tab = window.open("", "_blank");
        if (tab) showInTab(tab, url);
      } }, t("dash.open")), " · ",
      h("a", { href: url, download: filename, class: "report-download" }, t("dash.download")));
    return url;
  }

  /* Show a fetched report (a blob: URL) in the tab opened by the click. A blob: document
     inherits the portal's Content-Security-Policy, which refuses the report's inline <style>;
     the same CSS is handed over through the CSSOM instead (constructable stylesheet), which
     CSP does not govern. Scripts stay refused. */
  function showInTab(tab, url) {
    tab.location.replace(url);
    const started = Date.now();
    const timer = window.setInterval(() => {
      let doc = null;
      try { doc = tab.closed ? null : tab.document; } catch (e) { doc = null; }
      if (!doc || Date.now() - started > 15000) { window.clearInterval(timer); return; }
      if (doc.URL !== url || doc.readyState === "loading") return;
      window.clearInterval(timer);
      const css = Array.from(doc.querySelectorAll("style"), (el) => el.textContent).join("\n");
      if (css && tab.CSSStyleSheet) {
        try {
          const sheet = new tab.CSSStyleSheet();
          sheet.replaceSync(css);
          doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
        } catch (e) { /* shown unstyled */ }
      }
      tab.opener = null;
    }, 50);
  }

  function reportsSection() {
    const week = h("input", { type: "date", id: "week-start" });
    const weeklyOut = h("div", { class: "report-output", id: "weekly-output" });
    const month = h("input", { type: "month", id: "report-month", value: previousMonth() });
    const format = h("select", { id: "report-format" }, ["html", "csv", "json"].map((f) =>
      h("option", { value: f }, f.toUpperCase())));
    const monthlyOut = h("div", { class: "report-output", id: "monthly-output" });
    const weekQuery = () => (week.value ? `week_start=${enc(week.value)}&` : "");

    async function viewWeekly() {
      try {
        const report = await api("GET", `/api/v1/complaints/reports/weekly?${weekQuery()}format=json`);
        const cols = ["category", "department", "received", "acknowledged", "resolved", "escalated",
                      "avg_ack_hours", "avg_resolve_hours", "ack_sla_rate", "resolve_sla_rate"];
        weeklyOut.replaceChildren(
          h("p", {}, t("dash.weekRange", { from: report.week_start, to: report.week_end,
                                           received: report.total_received, open: report.total_open })),
          h("table", { class: "grid-table", id: "weekly-table" },
            h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, t(`rep.${c}`))))),
            h("tbody", {}, (report.rows || []).length ? report.rows.map((row) => h("tr", {}, cols.map((c) => {
              let v = row[c];
              if (c === "category") v = tv("category", v);
              else if (c.endsWith("_rate") && typeof v === "number") v = (v * 100).toFixed(1) + "%";
              return h("td", {}, v === null || v === undefined || v === "" ? t("common.none") : v);
            }))) : h("tr", {}, h("td", { colspan: cols.length, class: "empty" }, t("common.empty"))))));
      } catch (err) {
        showError(err);
      }
    }

    async function weeklyCsv() {
      try {
        await fetchReport(`/api/v1/complaints/reports/weekly?${weekQuery()}format=csv`,
                          "service-opinion-report.csv", weeklyOut);
        $(".report-download", weeklyOut).click();
      } catch (err) {
        showError(err);
      }
    }

    async function monthly() {
      const f = format.value;
      // Opened now, while the click still counts as the user's gesture (no popup blocker).
      const tab = f === "csv" ? null : window.open("", "_blank");
      try {
        const url = await fetchReport(`/api/v1/analytics/reports/monthly?month=${enc(month.value)}&format=${enc(f)}`,
                                      `leadership-report-${month.value}.${f}`, monthlyOut);
        if (tab) showInTab(tab, url);
        else $(".report-download", monthlyOut).click();
      } catch (err) {
        if (tab) tab.close();
        showError(err);
      }
    }

    return h("section", { class: "card reports", id: "reports" },
      h("h2", {}, t("dash.reports")),
      h("h3", {}, t("dash.weekly")),
      h("div", { class: "inline" }, h("label", { for: "week-start" }, t("dash.weekStart")), week,
        h("button", { type: "button", id: "weekly-view", onclick: viewWeekly }, t("dash.view")),
        h("button", { type: "button", id: "weekly-csv", class: "secondary", onclick: weeklyCsv }, t("dash.csv"))),
      weeklyOut,
      h("h3", {}, t("dash.monthly")),
      h("div", { class: "inline" }, h("label", { for: "report-month" }, t("dash.month")), month,
        h("label", { for: "report-format" }, t("dash.format")), format,
        h("button", { type: "button", id: "monthly-open", onclick: monthly }, t("dash.open"))),
      monthlyOut);
  }

  // -- HL7 feed (admin) --------------------------------------------------------------------
  /* The HL7 listener's recent messages and counts (GET /api/v1/hl7/messages): who sent
     what and how it was answered; no message text, reasons masked by the service. */
  VIEWS.hl7 = async function (view, arg, claims) {
    if (rankOf(claims) < 3) {
      view.append(h("p", { class: "empty" }, t("common.forbidden")));
      return;
    }
    const figures = h("div", { class: "figures", id: "hl7-counts" });
    const triggers = h("tbody", { id: "hl7-triggers" });
    const rows = h("tbody", { id: "hl7-rows" });
    const total = h("p", { class: "muted" });
    view.append(
      h("div", { class: "view-head" }, h("h1", {}, t("hl7.title")),
        h("button", { type: "button", id: "hl7-refresh", class: "secondary", onclick: () => render() },
          t("common.refresh"))),
      h("p", { class: "muted" }, t("hl7.hint")),
      h("section", {}, h("h2", {}, t("hl7.counts")), figures,
        h("table", { class: "grid-table" },
          h("thead", {}, h("tr", {}, ["hl7.trigger", "hl7.ack", "hl7.messages", "hl7.duplicates"].map((k) => h("th", {}, t(k))))),
          triggers)),
      h("section", {}, h("h2", {}, t("hl7.recent")), total,
        h("table", { class: "grid-table", id: "hl7-table" },
          h("thead", {}, h("tr", {}, ["hl7.received", "hl7.controlId", "hl7.trigger", "hl7.sender", "hl7.transport",
                                      "hl7.ack", "hl7.events", "hl7.reason"].map((k) => h("th", {}, t(k))))),
          rows)));
    const body = await api("GET", "/api/v1/hl7/messages?limit=100");
    const counts = body.counts || {};
    const codes = counts.by_ack_code || {};
    for (const [key, value] of [["hl7.today", (counts.today || {}).messages || 0], ["AA", codes.AA || 0],
                                ["AE", codes.AE || 0], ["AR", codes.AR || 0], ["hl7.duplicates", counts.duplicates || 0]]) {
      figures.append(h("div", { class: "figure", "data-figure": key },
        h("span", { class: "figure-label" }, key.startsWith("hl7.") ? t(key) : key),
        h("span", { class: "figure-value" }, String(value))));
    }
    for (const row of counts.rows || []) {
      triggers.append(h("tr", {}, h("td", {}, row.trigger), h("td", {}, row.ack_code),
                        h("td", {}, String(row.messages)), h("td", {}, String(row.duplicates))));
    }
    if (!(counts.rows || []).length) triggers.append(h("tr", {}, h("td", { colspan: 4, class: "empty" }, t("common.empty"))));
    total.textContent = t("common.total", { n: body.total });
    for (const m of body.items) {
      rows.append(h("tr", { "data-control-id": m.control_id || "", "data-ack": m.ack_code || "" },
        h("td", {}, fmtDateTime(m.received_at)),
        h("td", {}, m.control_id || t("common.none")),
        h("td", {}, m.message_type ? `${m.message_type}^${m.trigger || ""}` : t("hl7.unreadable")),
        h("td", {}, [m.sending_application, m.sending_facility].filter(Boolean).join(" / ") || t("common.none")),
        h("td", {}, m.transport === "http" ? "HTTP" : "MLLP"),
        h("td", {}, h("span", { class: m.ack_code === "AA" ? "tag" : "tag danger" }, m.ack_code || t("common.none"))),
        h("td", {}, (m.event_types || []).map((e) => tv("event", e)).join(", ") || t("common.none")),
        h("td", {}, m.reason || "")));
    }
    if (!body.items.length) rows.append(h("tr", {}, h("td", { colspan: 8, class: "empty" }, t("common.empty"))));
  };

  // -- pages defined in other files -------------------------------------------------------
  /* A file loaded before this one (center.js) lists its pages in window.HCRM_PAGES as
     { name, label, rank, after, view(view, arg, claims, kit) }; they get the same helpers. */
  const KIT = { h, add, $, api, t, tv, enc, todayISO, addDays, fmtDateTime, showError, showInfo,
                fetchReport, showInTab, rankOf };
  for (const page of window.HCRM_PAGES || []) {
    VIEWS[page.name] = (view, arg, claims) => page.view(view, arg, claims, KIT);
    const at = NAV.findIndex(([name]) => name === page.after);
    NAV.splice(at < 0 ? NAV.length : at + 1, 0, [page.name, page.label, page.rank]);
  }

  // -- start -------------------------------------------------------------------------------
  window.addEventListener("hashchange", render);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", render);
  else render();
})();
