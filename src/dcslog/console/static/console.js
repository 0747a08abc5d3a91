/* The dcslog console: a client of the public DCS API (/v2/...), like any SDK.
 *
 * Views are <template>s in the page; this script fills them from API calls
 * made with the signed-in credentials: X-Auth-Token, or AK/SK signatures
 * computed by dcs-sign.js. Routes live in the URL hash, so Back, Forward and
 * reloads keep the place.
 */
(function () {
  "use strict";

  var STORAGE_KEY = "dcslog.console.credentials";
  var POLL_MS = 2000;
  var RUN_LOG_PAGE = 20;
  var INSTANCE_PAGE = 50;
  var TABS = ["run-logs", "slow-queries", "search", "timeline", "top"];
  var main = document.getElementById("main");
  var generation = 0; // bumped on every view change: late responses and timers of an old view do nothing
  var current = null; // {view, instanceId, ...} of what is on screen

  // ---- credentials (sessionStorage only: gone with the tab) ----

  function loadCredentials() {
    try {
      return JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
    } catch (e) {
      return null;
    }
  }

  function saveCredentials(credentials) {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(credentials));
  }

  function signOut() {
    sessionStorage.removeItem(STORAGE_KEY);
    location.hash = "#/sign-in";
  }

  // ---- the API client ----

  function ApiError(status, code, message, requestId) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.requestId = requestId;
  }

  function seg(value) {
    return DcsSign.encode(String(value));
  }

  function projectPath(credentials) {
    return "/v2/" + seg(credentials.projectId);
  }

  /* The headers that authenticate a request: X-Auth-Token, or an SDK-HMAC-SHA256 signature of it. */
  function authHeaders(method, path, query, credentials, accept) {
    var headers = { "Accept": accept || "application/json" };
    if (credentials.method === "token") {
      headers["X-Auth-Token"] = credentials.token;
    } else {
      var signed = DcsSign.signRequest({
        accessKey: credentials.accessKey, secretKey: credentials.secretKey,
        method: method, path: path, query: query, host: location.host
      });
      headers["X-Sdk-Date"] = signed["X-Sdk-Date"];
      headers["Authorization"] = signed["Authorization"];
    }
    return headers;
  }

  /* The ApiError of a non-2xx answer, from its DCS error envelope. */
  function errorOf(response, text) {
    var body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    return new ApiError(response.status, (body && body.error_code) || "HTTP " + response.status,
                        (body && body.error_msg) || response.statusText || "Request failed.",
                        response.headers.get("X-Request-Id"));
  }

  function networkError(error) {
    return new ApiError(0, "Network error", "The server did not answer (" + error.message + ").", null);
  }

  /* One DCS call; resolves to {status, body} (body null on 204), rejects with ApiError. */
  function call(method, path, params, credentials) {
    credentials = credentials || loadCredentials();
    var query = DcsSign.queryString(params || []);
    return fetch(path + (query ? "?" + query : ""), {
      method: method, headers: authHeaders(method, path, query, credentials),
      credentials: "omit", cache: "no-store", redirect: "error"
    }).then(function (response) {
      if (response.status === 204) return { status: 204, body: null };
      return response.text().then(function (text) {
        if (!response.ok) throw errorOf(response, text);
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        return { status: response.status, body: body };
      });
    }, function (error) {
      throw networkError(error);
    });
  }

  // ---- small DOM helpers ----

  function h(tag, attrs) {
    var element = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") element.textContent = value;
      else if (name === "className") element.className = value;
      else if (name.slice(0, 2) === "on") element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, value === true ? "" : value);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      element.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return element;
  }

  function fragment(items) {
    var out = document.createDocumentFragment();
    items.forEach(function (item) { out.appendChild(item); });
    return out;
  }

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  function $all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  function show(view) {
    var template = document.getElementById("view-" + view);
    main.replaceChildren(template.content.cloneNode(true));
  }

  /* The error in its alert box; `needs` says, on a 403, what the credential's role lacks. */
  function showError(alert, error, needs) {
    alert.replaceChildren();
    if (!error) {
      alert.hidden = true;
      return;
    }
    alert.appendChild(h("strong", { className: "error-code", text: error.code || "Error" }));
    alert.appendChild(document.createTextNode(" " + (error.message || String(error))));
    if (error.status) {
      alert.appendChild(h("span", { className: "error-meta",
        text: " (HTTP " + error.status + (error.requestId ? ", request " + error.requestId : "") + ")" }));
    }
    if (error.status === 403 && needs) alert.appendChild(h("div", { className: "alert-hint", text: needs }));
    if (error.status === 401) {
      alert.appendChild(document.createTextNode(" "));
      alert.appendChild(h("a", { href: "#/sign-in", onclick: function (event) { event.preventDefault(); signOut(); },
                                 text: "Sign in again" }));
    }
    alert.hidden = false;
  }

  function badge(status) {
    var kind = { RUNNING: "ok", succeed: "ok", succeeded: "ok", Active: "ok", creating: "busy", running: "busy",
                 ERROR: "bad", failed: "bad", Inactive: "bad" }[status] || "neutral";
    return h("span", { className: "badge badge-" + kind }, status);
  }

  function pad(n, width) {
    var s = String(n);
    while (s.length < (width || 2)) s = "0" + s;
    return s;
  }

  function localTime(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function inputValue(date) {
    return localTime(date).replace(" ", "T");
  }

  function zoneLabel() {
    var minutes = -new Date().getTimezoneOffset();
    var sign = minutes < 0 ? "-" : "+";
    minutes = Math.abs(minutes);
    return "Times are in this browser's time zone (UTC" + sign + pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60) + ").";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  /* A button that cannot be used right now (busy, or nothing to go to) says so with aria-disabled and
   * ignores clicks, but stays focusable: a real `disabled` would drop the keyboard focus to <body>. */
  function setUnavailable(button, off) {
    if (off) button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
  }

  function unavailable(button) {
    return button.getAttribute("aria-disabled") === "true";
  }

  function setPager(pager, offset, limit, total, onPage) {
    pager.hidden = total <= limit && offset === 0;
    var first = total === 0 ? 0 : offset + 1;
    $(".pager-range", pager).textContent = first + "–" + Math.min(offset + limit, total) + " of " + total;
    var prev = $('[data-page="prev"]', pager);
    var next = $('[data-page="next"]', pager);
    setUnavailable(prev, offset === 0);
    setUnavailable(next, offset + limit >= total);
    prev.onclick = function () { if (!unavailable(prev)) onPage(Math.max(0, offset - limit)); };
    next.onclick = function () { if (!unavailable(next)) onPage(offset + limit); };
  }

  /* The ask-then-fill of a list view, written once: `ask(offset, limit)` is the API call; its answer fills
   * `tbody` with `rows(body)`, shows `empty` when `total(body)` is 0, and sets the pager (when there is one)
   * and the status line (`describe(body)`). A refusal goes to `alert` (with `needs` on a 403) and to
   * `refused(error)`. Only the latest answer is shown, and none once the view is left. Returns load(offset). */
  function pagedTable(options) {
    var mine = generation;
    var seq = 0;
    function load(offset) {
      var asked = ++seq;
      var limit = options.limit ? options.limit() : 0;
      if (options.status) options.status.textContent = "Loading…";
      return options.ask(offset, limit).then(function (result) {
        if (mine !== generation || asked !== seq) return;
        var body = result.body || {};
        var total = options.total(body);
        showError(options.alert, null);
        options.tbody.replaceChildren(fragment(options.rows(body)));
        options.empty.hidden = total > 0;
        if (options.pager) setPager(options.pager, offset, limit, total, load);
        if (options.status) options.status.textContent = options.describe ? options.describe(body, total) : "";
      }, function (error) {
        if (mine !== generation || asked !== seq) return;
        if (options.status) options.status.textContent = "";
        showError(options.alert, error, options.needs);
        if (options.refused) options.refused(error);
      });
    }
    return load;
  }

  // ---- routing ----

  function parseRoute() {
    var parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] === "sign-in") return { view: "sign-in" };
    if (parts[0] === "audit" || parts[0] === "credentials") return { view: parts[0] };
    if (parts[0] === "instances" && parts[1]) {
      return { view: "instance", instanceId: parts[1], tab: TABS.indexOf(parts[2]) >= 0 ? parts[2] : "run-logs" };
    }
    return { view: "instances" };
  }

  function route() {
    var credentials = loadCredentials();
    var target = parseRoute();
    renderSession(credentials);
    if (!credentials && target.view !== "sign-in") {
      sessionStorage.setItem(STORAGE_KEY + ".next", location.hash);
      location.replace("#/sign-in");
      return;
    }
    if (target.view === "instance" && current && current.view === "instance" && current.instanceId === target.instanceId) {
      selectTab(target.tab, false);
      return;
    }
    if (current && current.search) current.search.stop(); // a live follow ends with its view
    generation++;
    current = target;
    if (target.view === "sign-in") renderSignIn();
    else if (target.view === "instance") renderInstance(target);
    else if (target.view === "audit") renderAudit();
    else if (target.view === "credentials") renderCredentials();
    else renderInstances(0);
    if (credentials && credentials.admin === undefined) learnWhetherAdmin(credentials);
  }

  function renderSession(credentials) {
    $("#session").hidden = !credentials;
    $("#project-nav").hidden = !credentials;
    if (!credentials) return;
    $("#session-project").textContent = credentials.projectId;
    $("#session-mode").textContent = credentials.method === "token" ? "token" : "AK " + credentials.accessKey;
    var view = parseRoute().view;
    $all("[data-nav]").forEach(function (link) {
      if (link.dataset.nav === (view === "instance" ? "instances" : view)) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
      // The admin's views are offered to an admin, or while it is not known yet; a 403 there says why anyway.
      if (link.hasAttribute("data-admin")) link.hidden = credentials.admin === false;
    });
  }

  /* Whether the signed-in credential is an admin, asked once per sign-in with one cheap read that only an
   * admin may make (a page of one audit record; reading records nothing): the Audit trail and Credentials
   * links are hidden otherwise. Any other answer than 200 or 403 leaves it unknown (asked again later). */
  var adminAsked = null; // the credentials (as JSON) whose role is being asked, so it is asked once

  function learnWhetherAdmin(credentials) {
    var asked = JSON.stringify(credentials);
    if (adminAsked === asked) return;
    adminAsked = asked;
    call("GET", projectPath(credentials) + "/audit", [["limit", 1]], credentials).then(function () {
      return true;
    }, function (error) {
      return error.status === 403 ? false : undefined;
    }).then(function (admin) {
      if (adminAsked === asked) adminAsked = null;
      var now = loadCredentials();
      if (admin === undefined || !now || JSON.stringify(now) !== asked) return;
      now.admin = admin;
      saveCredentials(now);
      renderSession(now);
    });
  }

  /* A view only an admin may see, refused: its content is hidden, the alert says why, the links go. */
  function refusedAdminView(error) {
    if (error.status !== 403) return;
    $all("[data-admin-only]", main).forEach(function (part) { part.hidden = true; });
    var credentials = loadCredentials();
    if (credentials && credentials.admin !== false) {
      credentials.admin = false;
      saveCredentials(credentials);
      renderSession(credentials);
    }
  }

  // ---- sign in ----

  function renderSignIn() {
    show("sign-in");
    document.title = "Sign in · dcslog console";
    var form = $("#sign-in-form");
    var alert = $(".alert", form);
    function methodChanged() {
      var method = form.elements.method.value;
      $all("[data-method]", form).forEach(function (group) { group.hidden = group.dataset.method !== method; });
    }
    $all('input[name="method"]', form).forEach(function (radio) { radio.addEventListener("change", methodChanged); });
    var previous = loadCredentials();
    if (previous) form.elements.project_id.value = previous.projectId;
    form.elements.project_id.focus();

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var method = form.elements.method.value;
      var credentials = { projectId: form.elements.project_id.value.trim(), method: method };
      var missing = null;
      if (method === "token") {
        credentials.token = form.elements.token.value.trim();
        if (!credentials.token) missing = form.elements.token;
      } else {
        credentials.accessKey = form.elements.access_key.value.trim();
        credentials.secretKey = form.elements.secret_key.value;
        if (!credentials.secretKey) missing = form.elements.secret_key;
        if (!credentials.accessKey) missing = form.elements.access_key;
      }
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(credentials.projectId)) missing = form.elements.project_id;
      if (missing) {
        showError(alert, { code: "Missing", message: "Fill in " + $('label[for="' + missing.id + '"]').textContent + "." });
        missing.focus();
        return;
      }
      var button = $('button[type="submit"]', form);
      if (unavailable(button)) return; // already checking
      setUnavailable(button, true);
      showError(alert, null);
      // One cheap authenticated call proves the credentials before they are kept.
      call("GET", projectPath(credentials) + "/instances", [["limit", 1]], credentials).then(function () {
        saveCredentials(credentials);
        var next = sessionStorage.getItem(STORAGE_KEY + ".next");
        sessionStorage.removeItem(STORAGE_KEY + ".next");
        location.hash = next && next.indexOf("#/sign-in") !== 0 ? next : "#/instances";
      }, function (error) {
        setUnavailable(button, false);
        showError(alert, error);
      });
    });
  }

  // ---- instance list ----

  function renderInstances(offset) {
    show("instances");
    document.title = "Instances · dcslog console";
    var load = pagedTable({
      alert: $(".alert", main), tbody: $("#instances-table tbody"), empty: $(".empty", main), pager: $(".pager", main),
      limit: function () { return INSTANCE_PAGE; },
      ask: function (at, limit) {
        offset = at;
        return call("GET", projectPath(loadCredentials()) + "/instances", [["offset", at], ["limit", limit]]);
      },
      total: function (body) { return body.instance_num; },
      rows: function (body) {
        return (body.instances || []).map(function (instance) {
          return h("tr", null,
            h("td", null, h("a", { href: "#/instances/" + encodeURIComponent(instance.instance_id), text: instance.name })),
            h("td", null, badge(instance.status),
              instance.error_msg ? h("div", { className: "cell-note", text: instance.error_msg }) : null),
            h("td", { text: instance.cache_mode }),
            h("td", { className: "mono", text: instance.ip + ":" + instance.port }),
            h("td", { text: instance.engine + " " + instance.engine_version }),
            h("td", { className: "num", text: instance.sharding_count }),
            h("td", { className: "num", text: instance.replica_count }),
            h("td", { text: instance.timezone || "UTC" }),
            h("td", { text: (instance.created_at || "").replace("T", " ").replace(/\.\d+Z$/, "") }));
        });
      }
    });
    $('[data-action="refresh"]', main).addEventListener("click", function () { load(offset); });
    main.focus({ preventScroll: true });
    load(offset);
  }

  // ---- Audit trail (admin): who did what in the project, newest first ----

  var ADMIN_NEEDS = "This view is for the admin role: sign in with an admin's token or access key to see it.";
  var ACTOR_TYPES = { access_key: "access key", token: "token", link: "link", system: "system user" };

  /* yyyyMMddHHmmss in UTC: the audit endpoint's times, to the second. */
  function compactUtc(ms) {
    return new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14);
  }

  /* "2026-12-06 11:22:33" of a UTC time the API gives as 2026-12-06T11:22:33Z. */
  function utcText(time) {
    return (time || "").replace("T", " ").replace(/(\.\d+)?Z$/, "");
  }

  function renderAudit() {
    show("audit");
    document.title = "Audit trail · dcslog console";
    var base = projectPath(loadCredentials());
    var form = $("#audit-form");
    var el = form.elements;
    var alert = $('[data-alert="audit"]', main);
    var windowOf = rangePicker(form);
    var names = {}; // instance id → name, for the Instance column
    var asked = null; // {params, limit} of the list shown: paging keeps them
    $('[data-field="audit-zone"]', main).textContent = zoneLabel() + " The actor is matched exactly.";

    /* A button that shows only this actor's records. */
    function actorButton(actor, label) {
      return h("button", { type: "button", className: "btn-link mono", title: "Only the records of " + actor,
                           text: label || actor, onclick: function () { el.actor.value = actor; search(); } });
    }

    function auditRow(record) {
      var actor = h("td", null, actorButton(record.actor), " ",
                    h("span", { className: "muted", text: ACTOR_TYPES[record.actor_type] || record.actor_type }));
      if (record.action === "link.download") {
        // A download's actor is the link; who made it is the link's maker (from its link.create record).
        actor.appendChild(record.link_created_by ?
          h("div", { className: "cell-sub", "data-field": "link-maker" }, "link made by ",
            actorButton(record.link_created_by), " ",
            h("span", { className: "muted", text: ACTOR_TYPES[record.link_created_by_type] || "" })) :
          h("div", { className: "cell-sub", "data-field": "link-maker", text: "who made the link is no longer recorded" }));
      }
      var instance = !record.instance_id ? h("td", { className: "muted", text: "—" }) :
        names[record.instance_id] ? h("td", null, h("a", { href: "#/instances/" + encodeURIComponent(record.instance_id),
                                                            title: record.instance_id, text: names[record.instance_id] })) :
        h("td", { className: "mono", title: "an instance no longer in the project", text: record.instance_id });
      return h("tr", { "data-audit-id": String(record.id), "data-action": record.action },
        h("td", { className: "nowrap", title: record.time, text: localTime(new Date(record.time)) }),
        h("td", { className: "mono nowrap", text: record.action }),
        h("td", null, badge(record.outcome)),
        actor,
        instance,
        h("td", { className: "mono target", text: record.target || "—" }),
        h("td", { className: "mono", text: record.source_ip || "—" }),
        h("td", { className: "mono request-id", text: record.request_id || "—" }));
    }

    var load = pagedTable({
      alert: alert, status: $('[data-status="audit"]', main), tbody: $("#audit-table tbody"),
      empty: $('[data-empty="audit"]', main), pager: $('[data-pager="audit"]', main),
      limit: function () { return asked.limit; },
      ask: function (offset, limit) { return call("GET", base + "/audit", asked.params.concat([["offset", offset], ["limit", limit]])); },
      total: function (body) { return body.total_num; },
      rows: function (body) { return body.records.map(auditRow); },
      describe: function (body, total) { return total + (total === 1 ? " record" : " records") + ", newest first."; },
      needs: ADMIN_NEEDS, refused: refusedAdminView
    });

    function search() {
      var range = windowOf();
      if (!range) {
        showError(alert, { code: "Invalid", message: "Enter a start and an end time." });
        return;
      }
      var params = [];
      if (range.from !== null) params.push(["start_time", compactUtc(range.from)]);
      // A "last …" range ends now, and no record is later: only a custom range sends its end.
      if (el.range.value === "custom") params.push(["end_time", compactUtc(range.to)]);
      [["action", el.action.value], ["instance_id", el.instance_id.value], ["actor", el.actor.value.trim()]]
        .forEach(function (pair) { if (pair[1]) params.push(pair); });
      asked = { params: params, limit: Number(el.limit.value) };
      load(0);
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      search();
    });
    [el.action, el.instance_id, el.limit].forEach(function (select) { select.addEventListener("change", search); });
    main.focus({ preventScroll: true });

    // The instances name the Instance column and fill its filter; the records come either way.
    var mine = generation;
    call("GET", base + "/instances", [["limit", 1000]]).then(function (result) {
      if (mine !== generation) return;
      (result.body.instances || []).forEach(function (instance) {
        names[instance.instance_id] = instance.name;
        el.instance_id.appendChild(h("option", { value: instance.instance_id, text: instance.name }));
      });
    }, function () { /* the records say what is wrong */ }).then(function () {
      if (mine === generation) search();
    });
  }

  // ---- Credentials (admin): the project's access keys and tokens, and their revocation ----

  function renderCredentials() {
    show("credentials");
    document.title = "Credentials · dcslog console";
    var credentials = loadCredentials();
    var base = projectPath(credentials);
    var alert = $('[data-alert="credentials"]', main);
    var status = $('[data-status="credentials"]', main);

    /* Revoke, after a confirmation: final, and whoever holds it is refused from the next request on. */
    function revokeButton(kind, id, name, path, heading) {
      var yours = kind === "access key" && credentials.method === "aksk" && credentials.accessKey === id;
      var button = h("button", { type: "button", className: "btn btn-small btn-danger", "aria-label": "Revoke " + kind + " " + id,
                                 text: "Revoke" });
      button.addEventListener("click", function () {
        if (unavailable(button)) return;
        var question = "Revoke " + kind + " " + id + (name ? " (" + name + ")" : "") + "?\n\nEvery request made with it " +
          "will be refused from now on. This cannot be undone." +
          (yours ? "\n\nThis console is signed in with it: its next request will be refused too." : "");
        if (!window.confirm(question)) return;
        setUnavailable(button, true);
        showError(alert, null);
        call("DELETE", path).then(function () {
          status.textContent = "Revoked " + kind + " " + id + (name ? " (" + name + ")" : "") + ".";
          $("#" + heading).focus(); // its row goes: the focus stays in its list
          reload();
        }, function (error) {
          setUnavailable(button, false);
          showError(alert, error, ADMIN_NEEDS);
          refusedAdminView(error);
        });
      });
      return button;
    }

    function nameCell(name) {
      return name ? h("td", { text: name }) : h("td", { className: "muted", text: "—" });
    }

    /* One of the two lists, with its own alert; a refusal of the role is said once, above both. */
    function list(options) {
      return pagedTable({
        alert: $('[data-alert="' + options.part + '"]', main), tbody: $("#" + options.part + "-table tbody"),
        empty: $('[data-empty="' + options.part + '"]', main),
        ask: function () { return call("GET", base + "/" + options.path); },
        total: function (body) { return body[options.path].length; },
        rows: function (body) { return body[options.path].map(options.row); },
        refused: function (error) {
          if (error.status !== 403) return;
          showError(alert, error, ADMIN_NEEDS);
          refusedAdminView(error);
        }
      });
    }

    var loadKeys = list({ part: "keys", path: "credentials", row: function (key) {
      var yours = credentials.method === "aksk" && credentials.accessKey === key.access_key;
      return h("tr", { "data-access-key": key.access_key },
        h("td", null, h("span", { className: "mono", text: key.access_key }),
          yours ? h("span", { className: "muted", text: " (this console's)" }) : null),
        nameCell(key.name),
        h("td", { text: key.role }),
        h("td", { className: "nowrap", text: utcText(key.created_at) }),
        h("td", { className: "actions" }, revokeButton("access key", key.access_key, key.name,
                                                       base + "/credentials/" + seg(key.access_key), "keys-title")));
    } });
    var loadTokens = list({ part: "tokens", path: "tokens", row: function (token) {
      return h("tr", { "data-token-id": token.id },
        h("td", { className: "mono", text: token.id }),
        nameCell(token.name),
        h("td", { text: token.role }),
        h("td", { className: "nowrap", text: utcText(token.created_at) }),
        h("td", { className: "nowrap", text: utcText(token.expires_at) }),
        h("td", { className: "actions" }, revokeButton("token", token.id, token.name, base + "/tokens/" + seg(token.id),
                                                       "tokens-title")));
    } });

    function reload() {
      loadKeys(0);
      loadTokens(0);
    }
    $('[data-action="refresh"]', main).addEventListener("click", function () {
      status.textContent = "";
      reload();
    });
    main.focus({ preventScroll: true });
    reload();
  }

  // ---- one instance ----

  function renderInstance(target) {
    var mine = generation;
    var id = target.instanceId;
    var state = current;
    state.runLogs = { offset: 0, timer: null, seq: 0 };
    state.slow = { offset: 0, loaded: false, seq: 0 };
    show("instance");
    var credentials = loadCredentials();
    var base = projectPath(credentials);
    state.paths = {
      instance: base + "/instances/" + seg(id),
      groups: base + "/instance/" + seg(id) + "/groups",
      redislog: base + "/instances/" + seg(id) + "/redislog",
      slowlog: base + "/instances/" + seg(id) + "/slowlog",
      records: base + "/instances/" + seg(id) + "/redislog/records",
      events: base + "/instances/" + seg(id) + "/events",
      timeline: base + "/instances/" + seg(id) + "/timeline",
      top: base + "/instances/" + seg(id) + "/slowlog/top"
    };
    // One ListGroupReplicationInfo call feeds both the Run Logs replica picker and the Search node filter.
    state.groups = call("GET", state.paths.groups);

    $all('[role="tab"]', main).forEach(function (tab, index, tabs) {
      tab.addEventListener("click", function () { location.hash = "#/instances/" + encodeURIComponent(id) + "/" + tab.dataset.tab; });
      tab.addEventListener("keydown", function (event) {
        var move = { ArrowRight: 1, ArrowLeft: -1, Home: -index, End: tabs.length - 1 - index }[event.key];
        if (move === undefined) return;
        event.preventDefault();
        var next = tabs[(index + move + tabs.length) % tabs.length];
        next.focus();
        next.click();
      });
    });

    setUpNodeState(state, mine);
    setUpRunLogs(state, mine);
    setUpSlowQueries(state, mine);
    setUpSearch(state, mine);
    setUpTimeline(state, mine);
    setUpTop(state, mine);
    selectTab(target.tab, true);
  }

  function selectTab(name, initial) {
    if (!current || current.view !== "instance") return;
    current.tab = name;
    $all('[role="tab"]', main).forEach(function (tab) {
      var selected = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", selected ? "true" : "false");
      tab.tabIndex = selected ? 0 : -1;
      $("#" + tab.getAttribute("aria-controls")).hidden = !selected;
    });
    if (name === "slow-queries" && !current.slow.loaded) {
      current.slow.loaded = true;
      current.slow.search(0);
    }
    if (name !== "search") current.search.stop("Follow stopped: you left the Search tab.");
    if (name === "search" && !current.search.loaded) {
      current.search.loaded = true;
      current.search.run();
    }
    if (name === "timeline") current.timeline.opened();
    if (name === "top" && !current.top.loaded) {
      current.top.loaded = true;
      current.top.run();
    }
    if (initial) main.focus({ preventScroll: true });
  }

  // ---- Run Logs tab ----

  function setUpRunLogs(state, mine) {
    var form = $("#collect-form");
    var shard = form.elements.shard;
    var replica = form.elements.replica;
    var alert = $('[data-alert="run-logs"]', main);
    var status = $('[data-status="run-logs"]', main);
    var tbody = $("#run-logs-table tbody");
    var groups = [];

    function fillReplicas() {
      var group = groups[shard.selectedIndex] || { replication_list: [] };
      replica.replaceChildren.apply(replica, group.replication_list.map(function (node) {
        return h("option", { value: node.replication_id, text: nodeAddress(node) + " · " + nodeState(node) });
      }));
      // A replica's log is usually what is wanted: preselect the first one, if any.
      var slave = group.replication_list.findIndex(function (node) { return node.replication_role === "slave"; });
      if (slave >= 0) replica.selectedIndex = slave;
    }
    shard.addEventListener("change", fillReplicas);

    state.groups.then(function (result) {
      if (mine !== generation) return;
      groups = result.body.group_list || [];
      shard.replaceChildren.apply(shard, groups.map(function (group) {
        return h("option", { value: group.group_id || group.group_name, text: group.group_name });
      }));
      fillReplicas();
    }, function (error) {
      if (mine === generation) showError(alert, error);
    });
    // A refresh of the live state updates what each option says, not which one is chosen.
    state.onNodes.push(function (latest) {
      groups = latest;
      latest.forEach(function (group) {
        group.replication_list.forEach(function (node) {
          var option = $('option[value="' + CSS.escape(node.replication_id) + '"]', replica);
          if (option) option.textContent = nodeAddress(node) + " · " + nodeState(node);
        });
      });
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!replica.value) {
        showError(alert, { code: "Missing", message: "Pick a replica." });
        replica.focus();
        return;
      }
      var button = $('button[type="submit"]', form);
      if (unavailable(button)) return; // a collection request is on its way
      var days = form.elements.query_time;
      var what = days.options[days.selectedIndex].text.toLowerCase() + " of " + replica.options[replica.selectedIndex].text.split(" ")[0];
      setUnavailable(button, true);
      showError(alert, null);
      call("POST", state.paths.redislog, [["log_type", "run"], ["query_time", days.value], ["replication_id", replica.value]])
        .then(function () {
          if (mine !== generation) return;
          status.textContent = "Collecting " + what + "…";
          state.runLogs.offset = 0;
          load();
        }, function (error) {
          if (mine === generation) showError(alert, error);
        }).then(function () { setUnavailable(button, false); });
    });

    var LINKS_NEEDS = "Revoking links is for the operator and admin roles: a viewer may make links, not revoke them.";
    var links = state.runLogs.links = {}; // file id → the links this page made: [{id, made, expires, revoked}]
    var files = []; // the page of files shown

    function download(file, button) {
      if (unavailable(button)) return; // its link is on its way
      setUnavailable(button, true);
      showError(alert, null);
      call("POST", state.paths.redislog + "/" + seg(file.id) + "/links").then(function (result) {
        // The link is signed and needs no credentials; the server answers it as an attachment,
        // so following it downloads without leaving the page.
        var anchor = h("a", { href: result.body.link, download: file.file_name, rel: "noopener", hidden: true });
        document.body.appendChild(anchor);
        anchor.click();
        anchor.remove();
        status.textContent = "Downloading " + file.file_name + ".";
        // Kept (its id only, never the link) so that it can be revoked from here.
        (links[file.id] = links[file.id] || []).push({ id: result.body.link_id, made: new Date(),
                                                        expires: result.body.expires_at, revoked: false });
        if (mine === generation) render();
      }, function (error) {
        showError(alert, error);
      }).then(function () { setUnavailable(button, false); });
    }

    /* DELETE …/links (every link of the file made so far, after a confirmation), or …/links/{link_id}. */
    function revoke(file, link, button) {
      if (unavailable(button)) return;
      if (!link && !window.confirm("Revoke every download link of " + file.file_name + " made so far, by anyone?\n\n" +
                                   "Each answers 403 from now on; links made afterwards work.")) return;
      setUnavailable(button, true);
      showError(alert, null);
      var path = state.paths.redislog + "/" + seg(file.id) + "/links" + (link ? "/" + seg(link.id) : "");
      call("DELETE", path).then(function () {
        (link ? [link] : links[file.id] || []).forEach(function (made) { made.revoked = true; });
        status.textContent = link ? "Link " + link.id + " of " + file.file_name + " revoked: it answers 403 now." :
          "Every link of " + file.file_name + " made so far is revoked: they answer 403 now.";
        if (mine === generation) render();
      }, function (error) {
        setUnavailable(button, false);
        showError(alert, error, LINKS_NEEDS);
      });
    }

    function fileButton(key, label, text, onclick, off) {
      var made = h("button", { type: "button", className: "btn btn-small", disabled: off, "data-key": key,
                               "aria-label": label, text: text });
      made.addEventListener("click", function () { onclick(made); });
      return made;
    }

    function rows(file) {
      var statusCell = h("td", { "data-file-status": file.status }, badge(file.status));
      if (file.error_msg) statusCell.appendChild(h("div", { className: "cell-note", text: file.error_msg }));
      // Links serve what a file holds: a succeed file, or a refreshing one's previous copy (it has a size).
      var content = file.status === "succeed" || (file.size !== null && file.size !== undefined);
      var out = [h("tr", { "data-file-id": file.id },
        h("td", { className: "mono", text: file.file_name }),
        h("td", { text: file.group_name }),
        h("td", { className: "mono", text: file.replication_ip }),
        h("td", { text: file.time }),
        statusCell,
        h("td", { className: "num", text: file.status === "succeed" ? bytes(file.size) : "" }),
        h("td", { className: "actions" },
          fileButton("download", "Download " + file.file_name, "Download", function (b) { download(file, b); },
                 file.status !== "succeed"), " ",
          fileButton("revoke-links", "Revoke links of " + file.file_name, "Revoke links",
                 function (b) { revoke(file, null, b); }, !content)))];
      var made = links[file.id] || [];
      if (made.length) {
        out.push(h("tr", { className: "links-row", "data-file-id": file.id, "data-links-of": file.id },
          h("td", { colspan: "7" }, h("span", { className: "muted", text: "Links made here: " }),
            h("ul", { className: "made-links" }, fragment(made.map(function (link) {
              return h("li", { "data-link-id": link.id, "data-revoked": link.revoked ? "true" : "false" },
                h("span", { className: "mono", text: link.id }),
                h("span", { className: "muted", text: " made " + localTime(link.made) + ", valid until " +
                                                          localTime(new Date(link.expires)) + " " }),
                link.revoked ? badge("revoked") :
                  fileButton("revoke-link:" + link.id, "Revoke link " + link.id, "Revoke",
                         function (b) { revoke(file, link, b); }, false));
            }))))));
      }
      return out;
    }

    /* The files shown, rebuilt; the keyboard focus stays on the same button of the same file. */
    function render() {
      var focused = document.activeElement;
      var focusedRow = focused && focused.closest ? focused.closest("tr[data-file-id]") : null;
      var again = focusedRow && tbody.contains(focusedRow) ?
        'tr[data-file-id="' + CSS.escape(focusedRow.dataset.fileId) + '"] [data-key="' + CSS.escape(focused.dataset.key || "") + '"]' : null;
      tbody.replaceChildren(fragment([].concat.apply([], files.map(rows))));
      var target = again && ($(again, tbody) || // gone (a link revoked): its file's Download instead
        $('tr[data-file-id="' + CSS.escape(focusedRow.dataset.fileId) + '"] [data-key="download"]', tbody));
      if (target && !target.disabled) target.focus();
    }

    function load() {
      clearTimeout(state.runLogs.timer);
      var offset = state.runLogs.offset;
      var seq = ++state.runLogs.seq; // only the latest answer is shown: an older poll may land after it
      call("GET", state.paths.redislog, [["log_type", "run"], ["offset", offset], ["limit", RUN_LOG_PAGE]]).then(function (result) {
        if (mine !== generation || seq !== state.runLogs.seq) return;
        files = result.body ? result.body.file_list : [];
        var total = result.body ? result.body.total_num : 0;
        render();
        $('[data-empty="run-logs"]', main).hidden = total > 0;
        setPager($('[data-pager="run-logs"]', main), offset, RUN_LOG_PAGE, total, function (at) {
          state.runLogs.offset = at;
          load();
        });
        var busy = files.some(function (file) { return file.status === "creating"; });
        if (busy) {
          state.runLogs.timer = setTimeout(function () { if (mine === generation) load(); }, POLL_MS);
        } else if (/^Collecting/.test(status.textContent)) {
          status.textContent = "Collection finished.";
        }
      }, function (error) {
        if (mine !== generation || seq !== state.runLogs.seq) return;
        showError(alert, error);
        // A passing network error should not stop the updates of a running collection.
        if (error.status === 0) state.runLogs.timer = setTimeout(function () { if (mine === generation) load(); }, POLL_MS * 2);
      });
    }
    load();
  }

  // ---- Slow Queries tab ----

  function setUpSlowQueries(state, mine) {
    var form = $("#slowlog-form");
    var alert = $('[data-alert="slow-queries"]', main);
    var status = $('[data-status="slow-queries"]', main);
    var tbody = $("#slow-queries-table tbody");
    $('[data-field="local-zone"]', main).textContent = zoneLabel();

    function setRange(milliseconds) {
      var now = new Date();
      // Slow-log times are whole seconds: round the end up so "now" includes this second.
      form.elements.to.value = inputValue(new Date(Math.ceil(now.getTime() / 1000) * 1000 + 1000));
      form.elements.from.value = inputValue(new Date(now.getTime() - milliseconds));
    }
    setRange(86400000);
    $all("[data-range]", main).forEach(function (button) {
      button.addEventListener("click", function () {
        setRange(Number(button.dataset.range));
        search(0);
      });
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      search(0);
    });

    function search(offset) {
      state.slow.offset = offset;
      var from = new Date(form.elements.from.value).getTime();
      var to = new Date(form.elements.to.value).getTime();
      if (isNaN(from) || isNaN(to)) {
        showError(alert, { code: "Invalid", message: "Enter a start and an end time." });
        return;
      }
      var limit = Number(form.elements.limit.value);
      var seq = ++state.slow.seq;
      status.textContent = "Loading…";
      call("GET", state.paths.slowlog, [
        ["start_time", from], ["end_time", to], ["sort_key", form.elements.sort_key.value],
        ["sort_dir", form.elements.sort_dir.value], ["offset", offset], ["limit", limit]
      ]).then(function (result) {
        if (mine !== generation || seq !== state.slow.seq) return;
        showError(alert, null);
        var body = result.body;
        tbody.replaceChildren.apply(tbody, body.slowlogs.map(function (item) {
          var started = new Date(item.start_time);
          var node = (item.node_ip || "") + (item.node_port ? ":" + item.node_port : "");
          return h("tr", null,
            h("td", { className: "nowrap", title: item.start_time, text: localTime(started) }),
            h("td", { className: "num", text: item.duration }),
            h("td", { className: "mono command", title: item.command, text: item.command }),
            h("td", { className: "mono", text: item.fingerprint || "" }),
            h("td", { className: "nowrap" }, h("span", { className: "mono", text: node }), " ",
              h("span", { className: "muted", text: item.node_role || "" })),
            h("td", { text: item.shard_name || "—" }));
        }));
        $('[data-empty="slow-queries"]', main).hidden = body.total_num > 0;
        var lost = body.lost_entries ? " " + body.lost_entries + " entries were dropped by Redis before dcslog read them." : "";
        status.textContent = body.total_num + (body.total_num === 1 ? " slow query" : " slow queries") + " in this range." + lost;
        setPager($('[data-pager="slow-queries"]', main), offset, limit, body.total_num, search);
      }, function (error) {
        if (mine !== generation || seq !== state.slow.seq) return;
        status.textContent = "";
        showError(alert, error);
      });
    }
    state.slow.search = search;
  }

  // ---- Search tab: run-log records, paged, or followed live ----

  var SEARCH_AUTO_PAGES = 5;   // pages fetched in a row while they come back short (a page may be empty)
  var SEARCH_MAX_ROWS = 5000;  // rows kept on the page; the oldest go first
  var LINES_SHOWN = 4;         // continuation lines shown open; more are folded
  var FOLLOW_RETRY_MS = 1500;  // reconnection delay after a dropped stream
  var FOLLOW_SILENCE_MS = 45000; // three missed heartbeats: the stream is dead even if no error says so
  var ROLE_LETTERS = { master: "M", slave: "S", child: "C", sentinel: "X" };
  var LEVEL_MARKS = { debug: ".", verbose: "-", notice: "*", warning: "#" };

  /* ASCII-only lower case, as the server's case=insensitive folds (the length never changes). */
  function asciiLower(text) {
    return text.replace(/[A-Z]+/g, function (run) { return run.toLowerCase(); });
  }

  function setUpSearch(state, mine) {
    var form = $("#search-form");
    var el = form.elements;
    var alert = $('[data-alert="search"]', main);
    var status = $('[data-status="search"]', main);
    var notice = $('[data-notice="sources"]', main);
    var wrap = $("#search-log-wrap");
    var list = $("#search-results");
    var empty = $('[data-empty="search"]', main);
    var more = $('[data-more="search"]', main);
    var moreButton = $('[data-action="more"]', more);
    var jump = $('[data-action="jump"]', main);
    var picker = $("#search-nodes");
    var options = $(".multi-options", picker);
    var follow = el.follow;
    var nodes = {}; // replication id -> {address, role, group}
    var s = {
      loaded: false, seq: 0,
      query: null, limit: 0, cursor: null, highlight: null, // the search on screen, for Load more
      ids: new Set(), shown: 0, dropped: 0, scanned: 0, unread: {},
      live: null, // the follow in progress: {controller, lastId, since, ...}
      run: function () { search(); },
      stop: stopFollow
    };
    state.search = s;
    $('[data-field="search-zone"]', main).textContent = "Records show the time their log line holds, in the " +
      "instance's time zone. " + zoneLabel().replace("Times are", "From and To are") +
      " Follow streams new records as the nodes write them.";

    // -- the node filter: a checkbox per node, from ListGroupReplicationInfo --

    state.groups.then(function (result) {
      if (mine !== generation) return;
      var groups = result.body.group_list || [];
      var many = groups.length > 1;
      options.replaceChildren.apply(options, groups.map(function (group) {
        return h("div", { className: "multi-group" }, many ? h("div", { className: "multi-group-name", text: group.group_name }) : null,
          h("div", null, group.replication_list.map(function (node) {
            var address = nodeAddress(node);
            nodes[node.replication_id] = { address: address, role: node.replication_role, group: group.group_name };
            return h("label", null, h("input", { type: "checkbox", name: "node", value: node.replication_id }),
              " " + address + " ", h("span", { className: "muted", "data-node-state": node.replication_id,
                                               text: nodeState(node) }));
          }).reduce(function (fragment, label) { fragment.appendChild(label); return fragment; },
                    document.createDocumentFragment())));
      }));
      describeNodes();
    }, function () { /* the Run Logs tab shows this error */ });
    state.onNodes.push(function (latest) {
      latest.forEach(function (group) {
        group.replication_list.forEach(function (node) {
          var label = $('[data-node-state="' + CSS.escape(node.replication_id) + '"]', options);
          if (label) label.textContent = nodeState(node);
          if (nodes[node.replication_id]) nodes[node.replication_id].role = node.replication_role;
        });
      });
    });

    function chosenNodes() {
      return $all('input[name="node"]:checked', options).map(function (box) { return box.value; });
    }

    function describeNodes() {
      var chosen = chosenNodes();
      var all = $all('input[name="node"]', options).length;
      $(".multi-summary", picker).textContent = chosen.length === 0 || chosen.length === all ? "All nodes" :
        chosen.length <= 2 ? chosen.map(function (rid) { return nodes[rid].address; }).join(", ") :
        chosen.length + " of " + all + " nodes";
    }
    options.addEventListener("change", describeNodes);
    $all("[data-nodes]", picker).forEach(function (button) {
      button.addEventListener("click", function () {
        $all('input[name="node"]', options).forEach(function (box) { box.checked = button.dataset.nodes === "all"; });
        describeNodes();
        if (s.live) startFollow();
      });
    });
    // The node list closes like a menu: Escape (the focus goes back to it), or a click or the focus elsewhere.
    picker.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && picker.open) {
        picker.open = false;
        $("summary", picker).focus();
      }
    });
    picker.addEventListener("focusout", function (event) {
      if (event.relatedTarget && !picker.contains(event.relatedTarget)) picker.open = false;
    });
    $("#panel-search").addEventListener("click", function (event) {
      if (picker.open && !picker.contains(event.target)) picker.open = false;
    });

    // -- the time range --

    function customRange(on) {
      $all("[data-custom]", form).forEach(function (field) { field.hidden = !on; });
    }
    el.range.addEventListener("change", function () {
      var custom = el.range.value === "custom";
      if (custom && !el.from.value) {
        var now = Date.now();
        el.from.value = inputValue(new Date(now - 3600000));
        el.to.value = inputValue(new Date(Math.ceil(now / 1000) * 1000));
      }
      customRange(custom);
    });

    function timeWindow() {
      if (el.range.value !== "custom") {
        var now = Date.now();
        return { from: now - Number(el.range.value), to: now + 1 }; // the end is excluded: include this millisecond
      }
      var from = new Date(el.from.value).getTime();
      var to = new Date(el.to.value).getTime();
      if (isNaN(from) || isNaN(to)) return null;
      return { from: from, to: to };
    }

    /* The filters both a search and a follow send. */
    function filters() {
      var params = [];
      var chosen = chosenNodes();
      if (chosen.length && chosen.length < $all('input[name="node"]', options).length) {
        params.push(["replication_id", chosen.join(",")]);
      }
      if (el.keyword.value) {
        params.push(["keyword", el.keyword.value]);
        if (el.insensitive.checked) params.push(["case", "insensitive"]);
      }
      if (el.level.value !== "debug") params.push(["level", el.level.value]);
      if (el.role.value !== "any") params.push(["role", el.role.value]);
      return params;
    }

    // -- the results: lines that read like the log --

    function clearResults() {
      list.replaceChildren();
      s.ids = new Set();
      s.shown = s.dropped = s.scanned = 0;
      s.unread = {};
      s.highlight = el.keyword.value ? { keyword: el.keyword.value, insensitive: el.insensitive.checked } : null;
      wrap.hidden = true;
      empty.hidden = true;
      more.hidden = true;
      jump.hidden = true;
      showSources([], true);
      showError(alert, null);
    }

    /* text with the keyword's occurrences in <mark>, matched as the server matches them. */
    function marked(text) {
      var fragment = document.createDocumentFragment();
      var at = 0;
      if (s.highlight) {
        var needle = s.highlight.insensitive ? asciiLower(s.highlight.keyword) : s.highlight.keyword;
        var hay = s.highlight.insensitive ? asciiLower(text) : text;
        for (var i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, at)) {
          if (i > at) fragment.appendChild(document.createTextNode(text.slice(at, i)));
          fragment.appendChild(h("mark", { text: text.slice(i, i + needle.length) }));
          at = i + needle.length;
        }
      }
      if (at < text.length) fragment.appendChild(document.createTextNode(text.slice(at)));
      return fragment;
    }

    function recordRow(record) {
      var node = nodes[record.replication_id];
      var address = node ? node.address : record.replication_ip + (record.replication_port ? ":" + record.replication_port : "");
      var when = record.time.replace("T", " ").replace(/([+-]\d\d:\d\d|Z)$/, "");
      var item = h("li", { className: "rec rec-" + record.level, "data-id": record.id, "data-level": record.level },
        h("div", { className: "rec-head" },
          h("time", { className: "rec-time", datetime: record.time, title: record.time + " · " + localTime(new Date(record.time_ms)) +
                      " in this browser", text: when }),
          h("span", { className: "rec-node", title: (record.group_name || "") + " · node " + record.replication_id, text: address }),
          h("abbr", { className: "rec-role", title: record.role, text: ROLE_LETTERS[record.role] || "?" }),
          h("abbr", { className: "rec-level", title: record.level, text: LEVEL_MARKS[record.level] || "?" }),
          h("span", { className: "rec-msg" }, marked(record.message))));
      var lines = record.lines || [];
      if (lines.length) {
        var block = h("pre", { className: "rec-lines" }, marked(lines.join("\n")));
        var matches = block.getElementsByTagName("mark").length;
        item.appendChild(lines.length > LINES_SHOWN ?
          h("details", { className: "rec-more" }, h("summary", { text: lines.length + " continuation lines" +
            (matches ? " (keyword " + (matches === 1 ? "found" : "found " + matches + " times") + " in them)" : "") }), block) : block);
      }
      return item;
    }

    function atBottom() {
      return wrap.hidden || wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 8;
    }

    /* Append records (in the order shown) once each; keep at most SEARCH_MAX_ROWS rows, dropping the oldest. */
    function append(records, stickToBottom) {
      var stick = stickToBottom && atBottom();
      var fragment = document.createDocumentFragment();
      var added = 0;
      records.forEach(function (record) {
        if (s.ids.has(record.id)) return; // never twice, whatever a reconnection sends again
        s.ids.add(record.id);
        fragment.appendChild(recordRow(record));
        added++;
      });
      if (!added) return 0;
      list.appendChild(fragment);
      s.shown += added;
      for (var extra = list.children.length - SEARCH_MAX_ROWS; extra > 0; extra--) {
        s.ids.delete(list.firstElementChild.dataset.id);
        list.firstElementChild.remove();
        s.dropped++;
      }
      wrap.hidden = false;
      if (stick) wrap.scrollTop = wrap.scrollHeight;
      else if (stickToBottom) jump.hidden = false;
      return added;
    }
    wrap.addEventListener("scroll", function () { if (atBottom()) jump.hidden = true; });
    jump.addEventListener("click", function () {
      wrap.scrollTop = wrap.scrollHeight;
      jump.hidden = true;
      wrap.focus({ preventScroll: true });
    });

    /* The nodes that could not be read, and why. A search keeps every node any page missed; a follow
     * shows the latest state the server sent. */
    function showSources(sources, replace) {
      if (replace) s.unread = {};
      sources.forEach(function (source) {
        if (!source.read) s.unread[source.replication_id] = source;
        else if (replace) delete s.unread[source.replication_id];
      });
      var missing = Object.keys(s.unread).map(function (rid) { return s.unread[rid]; });
      notice.hidden = missing.length === 0;
      if (!missing.length) return notice.replaceChildren();
      notice.replaceChildren(
        h("strong", { text: "Partial answer: " + (missing.length === 1 ? "1 node was" : missing.length + " nodes were") +
                            " not read, so its records are missing." }),
        h("ul", null, missing.map(function (source) {
          var node = nodes[source.replication_id];
          return h("li", { "data-node": source.replication_id },
            h("span", { className: "mono", text: node ? node.address : source.replication_ip }),
            node ? " (" + node.group + ", " + node.role + "): " : ": ", source.error || "not read");
        }).reduce(function (fragment, item) { fragment.appendChild(item); return fragment; },
                  document.createDocumentFragment())));
    }

    // -- searching, page after page --

    function search() {
      if (s.live) return startFollow(); // while following, the filters apply to the stream
      var range = timeWindow();
      if (!range) {
        showError(alert, { code: "Invalid", message: "Enter a start and an end time." });
        (el.from.value ? el.to : el.from).focus();
        return;
      }
      clearResults();
      s.limit = Number(el.limit.value);
      s.query = filters().concat([["start_time", range.from], ["end_time", range.to],
                                  ["sort_dir", el.sort_dir.value], ["limit", s.limit]]);
      s.cursor = null;
      loadMore();
    }

    /* One batch: pages in a row until `limit` records came or SEARCH_AUTO_PAGES pages were read, since a
     * page may come back short, even empty, with a next_cursor (the server bounds the bytes a page reads). */
    function loadMore() {
      var seq = ++s.seq;
      var got = 0;
      var pages = 0;
      setUnavailable(moreButton, true);
      status.textContent = s.shown ? "Loading more…" : "Searching…";
      function next() {
        var params = s.query.concat(s.cursor ? [["cursor", s.cursor]] : []);
        return call("GET", state.paths.records, params).then(function (result) {
          if (mine !== generation || seq !== s.seq) return;
          var body = result.body;
          pages++;
          s.scanned += body.scanned_bytes || 0;
          got += append(body.records, false);
          showSources(body.sources || [], false);
          s.cursor = body.next_cursor;
          if (s.cursor && got < s.limit && pages < SEARCH_AUTO_PAGES) return next();
          finished();
        }, function (error) {
          if (mine !== generation || seq !== s.seq) return;
          status.textContent = "";
          showError(alert, error);
          more.hidden = !s.cursor;
          setUnavailable(moreButton, false);
        });
      }
      next();
    }

    function finished() {
      setUnavailable(moreButton, false);
      more.hidden = !s.cursor;
      empty.hidden = s.shown > 0 || !!s.cursor;
      var read = " (" + bytes(s.scanned) + " read)";
      var dropped = s.dropped ? " The first " + s.dropped + " rows were taken off the top (at most " + SEARCH_MAX_ROWS +
        " stay on the page)." : "";
      if (!s.shown && s.cursor) {
        status.textContent = "Nothing matched in the part of the range read so far" + read + ". Load more reads on.";
      } else {
        status.textContent = s.shown + (s.shown === 1 ? " record" : " records") +
          (s.cursor ? " so far; Load more for the next ones" : ", the whole range") + read + "." + dropped;
      }
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      search();
    });
    moreButton.addEventListener("click", function () {
      if (!unavailable(moreButton) && s.cursor) loadMore();
    });

    // -- following: a signed fetch() read as Server-Sent Events --

    function liveControls(on) {
      [el.range, el.from, el.to, el.sort_dir, el.limit].forEach(function (control) { control.disabled = on; });
    }

    follow.addEventListener("change", function () {
      if (follow.checked) startFollow();
      else stopFollow("Follow stopped.");
    });
    // While following, a changed filter restarts the stream with it.
    form.addEventListener("change", function (event) {
      if (s.live && event.target !== follow && !event.target.closest("[data-custom]") &&
          [el.range, el.sort_dir, el.limit].indexOf(event.target) < 0) startFollow();
    });

    function startFollow() {
      stopFollow(null);
      clearResults();
      s.seq++; // a search still loading is no longer shown
      s.query = s.cursor = null;
      follow.checked = true;
      liveControls(true);
      var live = s.live = { controller: null, lastId: null, since: null, params: filters(), timer: null, watchdog: null };
      status.textContent = "Connecting…";
      connect(live);
    }

    function stopFollow(message) {
      var live = s.live;
      if (!live) return;
      s.live = null;
      clearTimeout(live.timer);
      clearTimeout(live.watchdog);
      if (live.controller) live.controller.abort();
      follow.checked = false;
      liveControls(false);
      if (message !== null && message !== undefined) {
        status.textContent = message + " " + s.shown + (s.shown === 1 ? " record" : " records") + " shown.";
      }
    }

    function connect(live) {
      var controller = live.controller = new AbortController();
      // Continue after the last record seen; before any, from when Follow was switched on (the server's clock).
      var params = [["follow", "true"]].concat(live.params,
        live.lastId ? [["cursor", live.lastId]] : live.since !== null ? [["start_time", live.since]] : []);
      var query = DcsSign.queryString(params);
      var path = state.paths.records;
      var silent = function () {
        clearTimeout(live.watchdog);
        live.watchdog = setTimeout(function () {
          if (s.live !== live || live.controller !== controller) return;
          controller.abort();
          retry(live, null);
        }, FOLLOW_SILENCE_MS);
      };
      var headers;
      try {
        headers = authHeaders("GET", path, query, loadCredentials(), "text/event-stream");
      } catch (error) {
        return stopFollow("Follow stopped: sign in again.");
      }
      fetch(path + "?" + query, { method: "GET", headers: headers, credentials: "omit", cache: "no-store",
                                  redirect: "error", signal: controller.signal }).then(function (response) {
        if (!response.ok) {
          return response.text().then(function (text) { throw errorOf(response, text); });
        }
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("text/event-stream") !== 0) {
          var refused = new ApiError(response.status, "Not a stream",
            "The server answered follow=true with " + (type || "no content type") + ", not text/event-stream.",
            response.headers.get("X-Request-Id"));
          refused.fatal = true;
          throw refused;
        }
        if (live.since === null) {
          // The server's own now (whole seconds, rounded down): a reconnection before any record starts
          // there, so nothing written since the switch is lost whatever this computer's clock says.
          var date = Date.parse(response.headers.get("Date") || "");
          live.since = isNaN(date) ? Date.now() : date;
        }
        if (s.live !== live) return;
        showError(alert, null);
        status.textContent = "Following: new records appear below as the nodes write them.";
        silent();
        var batch = [];
        var parser = new DcsSse.Parser(function (event) {
          if (event.type === "record") {
            var record = JSON.parse(event.data);
            live.lastId = event.id || record.id;
            batch.push(record);
          } else if (event.type === "sources") {
            showSources(JSON.parse(event.data), true);
          }
        });
        var reader = response.body.getReader();
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done || s.live !== live) return;
            silent();
            parser.push(chunk.value);
            if (batch.length) {
              append(batch, true);
              batch = [];
              status.textContent = "Following: " + s.shown + (s.shown === 1 ? " new record" : " new records") + " so far.";
            }
            return pump();
          });
        }
        return pump();
      }).then(function () {
        if (s.live === live && live.controller === controller) retry(live, null); // the server ended the stream
      }, function (error) {
        if (s.live !== live || live.controller !== controller || controller.signal.aborted) return;
        var failure = error instanceof ApiError ? error : networkError(error);
        // A refusal (bad filter, expired credentials, no such instance) will not pass on a retry.
        if (failure.fatal || (failure.status >= 400 && failure.status < 500)) {
          stopFollow(null);
          status.textContent = "Follow stopped.";
          showError(alert, failure);
          return;
        }
        retry(live, failure);
      });
    }

    function retry(live, error) {
      clearTimeout(live.watchdog);
      if (error) showError(alert, error);
      status.textContent = "Connection lost; reconnecting…";
      live.timer = setTimeout(function () {
        if (s.live === live && mine === generation) connect(live);
      }, FOLLOW_RETRY_MS);
    }
  }

  // ---- live node state: the instance's status and each node's, as the last harvest rounds saw them ----

  var STATE_REFRESH_MS = 30000; // while the instance page is open and the browser tab is visible
  var STATE_REFRESH_MAX = 120;  // an hour of automatic refreshes; Refresh starts them again
  var ROLE_NAMES = { master: "master", slave: "replica" };

  function nodeAddress(node) {
    return node.replication_ip + (node.replication_port ? ":" + node.replication_port : "");
  }

  /* "master", "slave · Inactive": how the pickers name a node's state. */
  function nodeState(node) {
    return node.replication_role + (node.status === "Active" ? "" : " · " + node.status);
  }

  function setUpNodeState(state, mine) {
    var status = $('[data-status="nodes"]', main);
    var holder = $("#node-groups");
    var alert = $('[data-alert="instance"]', main);
    var button = $('[data-action="refresh-state"]', main);
    var live = { timer: null, automatic: 0, seq: 0, refused: false };
    state.onNodes = []; // called with the group list after every refresh (pickers, timeline lanes)
    state.nodeGroups = [];

    function showInstance(instance) {
      document.title = instance.name + " · dcslog console";
      $all('[data-field="name"]', main).forEach(function (el) { el.textContent = instance.name; });
      var shown = badge(instance.status);
      shown.dataset.field = "status";
      $('[data-field="status"]', main).replaceWith(shown);
      var facts = {
        cache_mode: { single: "Single node", ha: "Primary/replica", cluster: "Cluster" }[instance.cache_mode] || instance.cache_mode,
        address: instance.ip + ":" + instance.port,
        engine_version: instance.engine + " " + instance.engine_version,
        sharding_count: String(instance.sharding_count) + " × " + instance.replica_count + " nodes",
        memory: instance.used_memory + " MB used" + (instance.max_memory ? " of " + instance.max_memory + " MB" : ""),
        timezone: instance.timezone || "UTC",
        instance_id: instance.instance_id
      };
      Object.keys(facts).forEach(function (name) { $('[data-field="' + name + '"]', main).textContent = facts[name]; });
      showError(alert, instance.error_msg ? { code: instance.status, message: instance.error_msg } : null);
    }

    function nodeItem(node) {
      var up = node.status === "Active";
      var role = node.replication_role;
      var item = h("li", { className: "node " + (up ? "node-up" : "node-down"), "data-node": node.replication_id,
                           "data-status": node.status, "data-role": role },
        h("span", { className: "dot", "aria-hidden": "true" }),
        h("span", { className: "mono node-address", text: nodeAddress(node) }),
        h("span", { className: "role role-" + role, title: role, text: ROLE_NAMES[role] || role }),
        badge(node.status));
      // Why discovery does not take it for this node (nothing answers there, or another node does).
      if (!up && node.address_error) item.appendChild(h("span", { className: "cell-note", text: node.address_error }));
      return item;
    }

    function showNodes(groups) {
      var many = groups.length > 1;
      holder.replaceChildren(fragment(groups.map(function (group) {
        return h("div", { className: "node-group" }, many ? h("h3", { text: group.group_name }) : null,
          h("ul", { className: "node-list", "aria-label": group.group_name },
            fragment(group.replication_list.map(nodeItem))));
      })));
    }

    /* ShowInstance and ListGroupReplicationInfo again; the first time, the groups the tabs asked for. */
    function refresh(groupsCall) {
      clearTimeout(live.timer);
      var seq = ++live.seq;
      setUnavailable(button, true);
      Promise.all([call("GET", state.paths.instance), groupsCall || call("GET", state.paths.groups)]).then(function (answers) {
        if (mine !== generation || seq !== live.seq) return;
        showInstance(answers[0].body);
        state.nodeGroups = answers[1].body.group_list || [];
        showNodes(state.nodeGroups);
        state.onNodes.forEach(function (listener) { listener(state.nodeGroups); });
        status.textContent = "As the last harvest rounds saw them, at " + localTime(new Date()) +
          (live.automatic < STATE_REFRESH_MAX ? "; refreshed every " + STATE_REFRESH_MS / 1000 + " s." :
           ". Automatic refresh paused after an hour: Refresh to resume.");
      }, function (error) {
        if (mine !== generation || seq !== live.seq) return;
        showError(alert, error);
        status.textContent = "";
        live.refused = error.status >= 400 && error.status < 500; // asking again will not help
      }).then(function () {
        if (mine !== generation || seq !== live.seq) return;
        setUnavailable(button, false);
        schedule();
      });
    }

    function schedule() {
      clearTimeout(live.timer);
      if (live.automatic >= STATE_REFRESH_MAX || live.refused) return;
      live.timer = setTimeout(function () {
        if (mine !== generation) return;
        if (document.hidden) return schedule(); // nobody is looking: ask again later
        live.automatic++;
        refresh(null);
      }, STATE_REFRESH_MS);
    }

    button.addEventListener("click", function () {
      if (unavailable(button)) return;
      live.automatic = 0;
      live.refused = false;
      refresh(null);
    });
    refresh(state.groups);
  }

  // ---- time ranges: "last hour" … "last 7 days", or custom From and To ----

  /* The range picker of a form with a `range` select and `from`/`to` inputs in [data-custom] fields.
   * Returns window(): {from, to} in ms (to: now, or the custom end), or null when a custom time is missing. */
  function rangePicker(form) {
    var el = form.elements;
    el.range.addEventListener("change", function () {
      var custom = el.range.value === "custom";
      if (custom && !el.from.value) {
        var now = Date.now();
        el.from.value = inputValue(new Date(now - 3600000));
        el.to.value = inputValue(new Date(Math.ceil(now / 1000) * 1000));
      }
      $all("[data-custom]", form).forEach(function (field) { field.hidden = !custom; });
    });
    return function () {
      if (el.range.value === "all") return { from: null, to: null }; // no bounds (the Audit trail's "Any time")
      if (el.range.value !== "custom") {
        var now = Date.now();
        return { from: now - Number(el.range.value), to: now + 1 }; // include this millisecond
      }
      var from = new Date(el.from.value).getTime();
      var to = new Date(el.to.value).getTime();
      if (isNaN(from) || isNaN(to)) return null;
      return { from: from, to: to };
    };
  }

  /* 2026-12-06 10:01:02.345 in this browser's time zone. */
  function localTimeMs(ms) {
    return localTime(new Date(ms)) + "." + pad(ms % 1000, 3);
  }

  // ---- Timeline tab: events on a time axis per node, what happened around a moment, the events list ----

  var EVENT_PAGE = 1000;     // events asked per request (the endpoint's largest page)
  var EVENT_MAX = 5000;      // events drawn at most: the newest of the range
  var EVENT_ROWS = 50;       // rows per page of the events table
  var MOMENT_PAGE = 200;     // timeline items per request
  var MOMENT_AUTO_PAGES = 5; // pages read in a row while they come back short (a page may be empty) or
                             // the moment is not reached yet
  var MOMENT_MAX_ROWS = 5000;
  var KIND_NAMES = { runlog: "log", slowlog: "slow", event: "event" };

  function setUpTimeline(state, mine) {
    var form = $("#timeline-form");
    var momentForm = $("#moment-form");
    var svg = $("#timeline-axis");
    var axisWrap = $("#timeline-axis-wrap");
    var legend = $("#timeline-legend");
    var status = $('[data-status="timeline"]', main);
    var alert = $('[data-alert="timeline"]', main);
    var tbody = $("#events-table tbody");
    var list = $("#moment-items");
    var listWrap = $("#moment-wrap");
    var momentStatus = $('[data-status="moment"]', main);
    var momentAlert = $('[data-alert="moment"]', main);
    var momentNotice = $('[data-notice="moment-sources"]', main);
    var more = $('[data-more="moment"]', main);
    var moreButton = $('[data-action="moment-more"]', more);
    var windowOf = rangePicker(form);
    var t = {
      loaded: false, seq: 0, range: null, events: [], total: 0, hidden: {}, offset: 0,
      moment: null, momentSeq: 0, query: null, cursor: null, ids: new Set(), shown: 0, markPlaced: false,
      run: show,
      opened: function () {
        if (!t.loaded) {
          t.loaded = true;
          show();
        } else {
          draw(); // the panel was hidden: its width may have changed meanwhile
        }
      }
    };
    state.timeline = t;
    $("#timeline-hint").textContent = "Click a marker, or a point on a node's lane, to see what happened around that moment " +
      "(markers take the focus with Tab; Enter chooses). Red bands: the node did not answer. " + zoneLabel();

    // -- lanes: one per node of the instance, and one per node that has left it but has events in the range --

    function lanes() {
      var out = [];
      var known = {};
      state.nodeGroups.forEach(function (group) {
        group.replication_list.forEach(function (node) {
          known[node.replication_id] = true;
          out.push({ id: node.replication_id, label: nodeAddress(node), status: node.status,
                     detail: group.group_name + " · " + (ROLE_NAMES[node.replication_role] || node.replication_role) +
                             " · " + node.status });
        });
      });
      t.events.forEach(function (event) {
        if (known[event.replication_id]) return;
        known[event.replication_id] = true;
        out.push({ id: event.replication_id, status: null, detail: (event.group_name || "") + " · no longer in the instance",
                   label: event.replication_ip + (event.replication_port ? ":" + event.replication_port : "") });
      });
      return out;
    }

    function laneName(replicationId) {
      var lane = lanes().find(function (l) { return l.id === replicationId; });
      return lane ? lane.label : replicationId;
    }

    function draw() {
      if (!t.range || $("#panel-timeline").hidden) return;
      // A redraw (a refresh of the nodes' state, a resize) keeps the keyboard focus on the same marker.
      var focused = svg.contains(document.activeElement) ? document.activeElement.getAttribute("data-event") : null;
      DcsTimeAxis.draw(svg, {
        from: t.range.from, to: t.range.to, width: axisWrap.clientWidth || 1100, lanes: lanes(), hidden: t.hidden,
        events: t.events.map(function (event) {
          return { id: event.id, type: event.type, time_ms: event.time_ms, lane: event.replication_id,
                   message: event.details && event.details.message };
        }),
        moment: t.moment, span: Number(momentForm.elements.span.value), timeText: localTimeMs,
        onChoose: function (ms) { choose(ms); }
      });
      var again = focused && $('[data-event="' + CSS.escape(focused) + '"]', svg);
      if (again) again.focus({ preventScroll: true });
    }
    state.onNodes.push(function () { draw(); });
    var resizing = null;
    t.resized = function () {
      cancelAnimationFrame(resizing);
      resizing = requestAnimationFrame(draw);
    };

    // -- the legend: each type's marker and count; unticking one hides it from the axis and the table --

    function showLegend() {
      var counts = {};
      t.events.forEach(function (event) { counts[event.type] = (counts[event.type] || 0) + 1; });
      var keep = $("legend", legend);
      legend.replaceChildren(keep, fragment(DcsTimeAxis.TYPES.map(function (type) {
        var box = h("input", { type: "checkbox", name: "event-type", value: type, checked: !t.hidden[type] });
        box.addEventListener("change", function () {
          t.hidden[type] = !box.checked;
          t.offset = 0;
          draw();
          showTable();
        });
        return h("label", { className: "legend-item", "data-type": type }, box, DcsTimeAxis.swatch(svg, type),
                 " " + DcsTimeAxis.LABELS[type] + " ", h("span", { className: "legend-count", text: String(counts[type] || 0) }));
      })));
    }

    // -- the events table, newest first, paged here (the axis has them all already) --

    function showTable() {
      var rows = t.events.filter(function (event) { return !t.hidden[event.type]; });
      var page = rows.slice(t.offset, t.offset + EVENT_ROWS);
      tbody.replaceChildren(fragment(page.map(function (event) {
        var when = h("button", { type: "button", className: "btn-link", "aria-label": "Show around " + localTimeMs(event.time_ms),
                                 title: event.time + " (the instance's time)", text: localTimeMs(event.time_ms) });
        when.addEventListener("click", function () { choose(event.time_ms); });
        return h("tr", { "data-event": event.id, "data-type": event.type },
          h("td", { className: "nowrap" }, when),
          h("td", { className: "mono", text: event.replication_ip + (event.replication_port ? ":" + event.replication_port : "") }),
          h("td", { className: "nowrap", text: event.group_name || "" }),
          h("td", null, h("span", { className: "ev-type ev-" + event.type }, DcsTimeAxis.swatch(svg, event.type),
                          " " + (DcsTimeAxis.LABELS[event.type] || event.type))),
          h("td", { className: "ev-message", text: (event.details && event.details.message) || "" }));
      })));
      $('[data-empty="events"]', main).hidden = rows.length > 0;
      setPager($('[data-pager="events"]', main), t.offset, EVENT_ROWS, rows.length, function (at) {
        t.offset = at;
        showTable();
      });
    }

    // -- loading a range: every event of it (up to EVENT_MAX, the newest), then the picture --

    function show() {
      var range = windowOf();
      if (!range) {
        showError(alert, { code: "Invalid", message: "Enter a start and an end time." });
        return;
      }
      var seq = ++t.seq;
      var got = [];
      status.textContent = "Loading events…";
      function page(offset) {
        return call("GET", state.paths.events, [["start_time", range.from], ["end_time", range.to],
                                                ["offset", offset], ["limit", EVENT_PAGE]]).then(function (result) {
          if (mine !== generation || seq !== t.seq) return;
          var body = result.body;
          got = got.concat(body.events);
          if (body.events.length && got.length < body.total_num && got.length < EVENT_MAX) return page(got.length);
          showError(alert, null);
          t.range = range;
          t.events = got;
          t.total = body.total_num;
          t.offset = 0;
          status.textContent = body.total_num + (body.total_num === 1 ? " event" : " events") + " from " +
            localTime(new Date(range.from)) + " to " + localTime(new Date(range.to)) +
            (got.length < body.total_num ? "; the newest " + got.length + " are shown." : ".");
          if (t.moment !== null && (t.moment < range.from || t.moment > range.to)) t.moment = null;
          showLegend();
          draw();
          showTable();
        });
      }
      page(0).catch(function (error) {
        if (mine !== generation || seq !== t.seq) return;
        status.textContent = "";
        showError(alert, error);
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      show();
    });

    // -- around a moment: the timeline endpoint's items from moment - span to moment + span --

    function choose(ms) {
      t.moment = ms;
      momentForm.elements.at.value = inputValue(new Date(ms));
      draw();
      loadMoment();
    }

    function kinds() {
      return $all('input[name="kind"]:checked', momentForm).map(function (box) { return box.value; });
    }

    function loadMoment() {
      var chosen = kinds();
      if (!chosen.length) {
        showError(momentAlert, { code: "Missing", message: "Tick at least one of Run log, Slow commands and Events." });
        return;
      }
      var span = Number(momentForm.elements.span.value);
      list.replaceChildren();
      t.ids = new Set();
      t.shown = 0;
      t.markPlaced = false;
      listWrap.hidden = true;
      more.hidden = true;
      momentNotice.hidden = true;
      $('[data-empty="moment"]', main).hidden = true;
      showError(momentAlert, null);
      t.query = [["start_time", t.moment - span], ["end_time", t.moment + span + 1], ["limit", MOMENT_PAGE]]
        .concat(chosen.length < 3 ? [["kind", chosen.join(",")]] : []);
      t.cursor = null;
      t.firstSeq = t.momentSeq;
      momentMore();
    }

    function momentMark() {
      t.markPlaced = true;
      return h("li", { className: "moment-mark", "data-moment": t.moment },
        h("span", { text: "▼ " + localTimeMs(t.moment) + ", the moment chosen" }));
    }

    function itemRow(item) {
      var kind = item.kind;
      var head = h("div", { className: "rec-head" },
        h("time", { className: "rec-time", datetime: item.time, title: item.time + " (the instance's time)",
                    text: localTimeMs(item.time_ms) }),
        h("span", { className: "rec-node", title: (item.group_name || "") + " · node " + item.replication_id,
                    text: item.replication_ip + (item.replication_port ? ":" + item.replication_port : "") }),
        h("span", { className: "tl-kind tl-kind-" + kind, text: KIND_NAMES[kind] || kind }));
      var row = h("li", { className: "rec tl-item tl-" + kind, "data-kind": kind, "data-time-ms": item.time_ms,
                          "data-cursor": item.cursor }, head);
      if (kind === "runlog") {
        var record = item.record;
        row.classList.add("rec-" + record.level);
        row.dataset.id = record.id;
        head.appendChild(h("abbr", { className: "rec-role", title: record.role, text: ROLE_LETTERS[record.role] || "?" }));
        head.appendChild(h("abbr", { className: "rec-level", title: record.level, text: LEVEL_MARKS[record.level] || "?" }));
        head.appendChild(h("span", { className: "rec-msg", text: record.message }));
        var lines = record.lines || [];
        if (lines.length) {
          var block = h("pre", { className: "rec-lines", text: lines.join("\n") });
          row.appendChild(lines.length > LINES_SHOWN ?
            h("details", { className: "rec-more" }, h("summary", { text: lines.length + " continuation lines" }), block) : block);
        }
      } else if (kind === "slowlog") {
        var entry = item.slowlog;
        row.dataset.id = String(entry.id);
        head.appendChild(h("span", { className: "tl-duration", text: entry.duration + " ms" }));
        head.appendChild(h("span", { className: "rec-msg tl-command", text: entry.command }));
      } else {
        var event = item.event;
        row.dataset.id = event.id;
        row.dataset.type = event.type;
        head.appendChild(h("span", { className: "ev-type ev-" + event.type }, DcsTimeAxis.swatch(svg, event.type),
                           " " + (DcsTimeAxis.LABELS[event.type] || event.type)));
        head.appendChild(h("span", { className: "rec-msg", text: (event.details && event.details.message) || "" }));
      }
      return row;
    }

    function append(items) {
      var out = document.createDocumentFragment();
      var added = 0;
      items.forEach(function (item) {
        if (t.ids.has(item.cursor)) return;
        t.ids.add(item.cursor);
        if (!t.markPlaced && item.time_ms >= t.moment) out.appendChild(momentMark());
        out.appendChild(itemRow(item));
        added++;
      });
      list.appendChild(out);
      t.shown += added;
      while (list.children.length > MOMENT_MAX_ROWS) list.firstElementChild.remove();
      listWrap.hidden = list.children.length === 0;
      return added;
    }

    function showUnread(sources) {
      var unread = sources.filter(function (source) { return !source.read; });
      momentNotice.hidden = unread.length === 0;
      momentNotice.replaceChildren(unread.length ? fragment([
        h("strong", { text: "Partial answer: the run log of " + (unread.length === 1 ? "1 node was" : unread.length + " nodes were") +
                            " not read." }),
        h("ul", null, fragment(unread.map(function (source) {
          return h("li", null, h("span", { className: "mono", text: laneName(source.replication_id) }),
                   ": " + (source.error || "not read"));
        })))]) : fragment([]));
    }

    function momentMore() {
      var seq = ++t.momentSeq;
      var got = 0;
      var pages = 0;
      setUnavailable(moreButton, true);
      momentStatus.textContent = t.shown ? "Loading more…" : "Loading what happened around " + localTimeMs(t.moment) + "…";
      function next() {
        return call("GET", state.paths.timeline, t.query.concat(t.cursor ? [["cursor", t.cursor]] : [])).then(function (result) {
          if (mine !== generation || seq !== t.momentSeq) return;
          var body = result.body;
          pages++;
          got += append(body.items);
          showUnread(body.sources || []);
          t.cursor = body.next_cursor;
          var before = !t.markPlaced;
          if (t.cursor && (got < MOMENT_PAGE || before) && pages < MOMENT_AUTO_PAGES) return next();
          if (!t.cursor && !t.markPlaced && t.shown) list.appendChild(momentMark());
          // Open at the moment, with what led up to it above (scroll up for it).
          var mark = $(".moment-mark", list);
          if (mark && seq === 1 + t.firstSeq) listWrap.scrollTop = Math.max(0, mark.offsetTop - listWrap.clientHeight / 3);
          setUnavailable(moreButton, false);
          more.hidden = !t.cursor;
          $('[data-empty="moment"]', main).hidden = t.shown > 0 || !!t.cursor;
          var span = Number(momentForm.elements.span.value);
          momentStatus.textContent = t.shown + (t.shown === 1 ? " item" : " items") + " from " + localTimeMs(t.moment - span) +
            " to " + localTimeMs(t.moment + span) + (t.cursor ? " so far; More for the next ones." : ".");
        });
      }
      next().catch(function (error) {
        if (mine !== generation || seq !== t.momentSeq) return;
        momentStatus.textContent = "";
        showError(momentAlert, error);
        setUnavailable(moreButton, false);
        more.hidden = !t.cursor;
      });
    }

    momentForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var at = new Date(momentForm.elements.at.value).getTime();
      if (isNaN(at)) {
        showError(momentAlert, { code: "Missing", message: "Enter the moment, or click a point on the axis." });
        momentForm.elements.at.focus();
        return;
      }
      t.moment = at;
      draw();
      loadMoment();
    });
    moreButton.addEventListener("click", function () {
      if (!unavailable(moreButton) && t.cursor) momentMore();
    });
  }

  // ---- Top Commands tab: the slow log of a range, grouped ----

  var TOP_KEYS = { fingerprint: "Fingerprint", command: "Command", node: "Node" };
  var TOP_SORTS = { total: ["total_ms", "Total"], count: ["count", "Count"], max: ["max_ms", "Max"] };

  function setUpTop(state, mine) {
    var form = $("#top-form");
    var el = form.elements;
    var status = $('[data-status="top"]', main);
    var alert = $('[data-alert="top"]', main);
    var tbody = $("#top-table tbody");
    var windowOf = rangePicker(form);
    var top = state.top = { loaded: false, seq: 0, run: load };
    $('[data-field="top-zone"]', main).textContent = zoneLabel() + " Figures are in milliseconds.";

    function nodeName(replicationId) {
      var found = null;
      state.nodeGroups.forEach(function (group) {
        group.replication_list.forEach(function (node) { if (node.replication_id === replicationId) found = node; });
      });
      return found ? nodeAddress(found) + " (" + (ROLE_NAMES[found.replication_role] || found.replication_role) + ")" : replicationId;
    }

    function number(ms) {
      return Number(ms).toFixed(3);
    }

    function load() {
      var range = windowOf();
      if (!range) {
        showError(alert, { code: "Invalid", message: "Enter a start and an end time." });
        return;
      }
      var asked = { range: range, groupBy: el.group_by.value, sort: TOP_SORTS[el.sort_key.value] };
      var seq = ++top.seq;
      status.textContent = "Loading…";
      call("GET", state.paths.top, [["start_time", range.from], ["end_time", range.to], ["group_by", asked.groupBy],
                                    ["sort_key", el.sort_key.value], ["limit", el.limit.value]]).then(function (result) {
        if (mine !== generation || seq !== top.seq) return;
        showError(alert, null);
        top.shown = { asked: asked, body: result.body };
        render();
      }, function (error) {
        if (mine !== generation || seq !== top.seq) return;
        status.textContent = "";
        showError(alert, error);
      });
    }

    /* The answer on screen (again when the nodes' names arrive or change: a node group is named by them). */
    function render() {
      var range = top.shown.asked.range;
      var groupBy = top.shown.asked.groupBy;
      var sort = top.shown.asked.sort;
      var body = top.shown.body;
      var largest = Math.max.apply(null, body.groups.map(function (group) { return group[sort[0]]; }).concat([0]));
      $('[data-field="top-key"]', main).textContent = TOP_KEYS[groupBy];
      $('[data-field="top-bar"]', main).textContent = sort[1];
      tbody.replaceChildren(fragment(body.groups.map(function (group) {
        var key = groupBy === "node" ? nodeName(group.key) : group.key;
        var fill = h("span", { className: "bar-fill" });
        // The CSSOM, not a style attribute: the page's Content-Security-Policy allows no inline styles.
        fill.style.width = (largest > 0 ? group[sort[0]] / largest * 100 : 0).toFixed(1) + "%";
        return h("tr", { "data-key": group.key },
          h("td", { className: "mono command top-key", title: group.key + " · sample: ListSlowlog id " + group.sample_id, text: key }),
          h("td", { className: "num", "data-col": "count", text: String(group.count) }),
          h("td", { className: "num", "data-col": "total_ms", text: number(group.total_ms) }),
          h("td", { className: "num", "data-col": "avg_ms", text: number(group.avg_ms) }),
          h("td", { className: "num", "data-col": "p99_ms", text: number(group.p99_ms) }),
          h("td", { className: "num", "data-col": "max_ms", text: number(group.max_ms) }),
          h("td", { className: "bar-col", "aria-hidden": "true" }, h("span", { className: "bar" }, fill)),
          h("td", { className: "nowrap", title: group.first_time, text: localTime(new Date(group.first_time)) }),
          h("td", { className: "nowrap", title: group.last_time, text: localTime(new Date(group.last_time)) }));
      })));
      $('[data-empty="top"]', main).hidden = body.groups.length > 0;
      status.textContent = body.total_num + (body.total_num === 1 ? " group" : " groups") + " from " +
        localTime(new Date(range.from)) + " to " + localTime(new Date(range.to)) +
        (body.groups.length < body.total_num ? "; the first " + body.groups.length + " by " + sort[1].toLowerCase() + "." : ".");
    }
    state.onNodes.push(function () {
      if (top.shown && top.shown.asked.groupBy === "node") render();
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      load();
    });
    // A different grouping or order answers at once; the range waits for Show (a custom one needs both times).
    [el.group_by, el.sort_key, el.limit].forEach(function (select) { select.addEventListener("change", load); });
  }

  // ---- start ----

  $("#sign-out").addEventListener("click", signOut);
  $("[data-skip]").addEventListener("click", function (event) {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", function () {
    if (current && current.timeline) current.timeline.resized(); // the axis is as wide as the page
  });
  route();
})();
