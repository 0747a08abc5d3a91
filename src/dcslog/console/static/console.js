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
  var TABS = ["run-logs", "slow-queries", "search"];
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

  function showError(alert, error) {
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
    if (error.status === 401) {
      alert.appendChild(document.createTextNode(" "));
      alert.appendChild(h("a", { href: "#/sign-in", onclick: function (event) { event.preventDefault(); signOut(); },
                                 text: "Sign in again" }));
    }
    alert.hidden = false;
  }

  function badge(status) {
    var kind = { RUNNING: "ok", succeed: "ok", Active: "ok", creating: "busy", running: "busy",
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

  // ---- routing ----

  function parseRoute() {
    var parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] === "sign-in") return { view: "sign-in" };
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
    else renderInstances(0);
  }

  function renderSession(credentials) {
    $("#session").hidden = !credentials;
    if (!credentials) return;
    $("#session-project").textContent = credentials.projectId;
    $("#session-mode").textContent = credentials.method === "token" ? "token" : "AK " + credentials.accessKey;
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
    var mine = generation;
    show("instances");
    document.title = "Instances · dcslog console";
    var alert = $(".alert", main);
    var tbody = $("#instances-table tbody");
    $('[data-action="refresh"]', main).addEventListener("click", function () { load(offset); });
    main.focus({ preventScroll: true });

    function load(at) {
      offset = at;
      var credentials = loadCredentials();
      call("GET", projectPath(credentials) + "/instances", [["offset", at], ["limit", INSTANCE_PAGE]]).then(function (result) {
        if (mine !== generation) return;
        showError(alert, null);
        var instances = result.body.instances || [];
        tbody.replaceChildren.apply(tbody, instances.map(function (instance) {
          return h("tr", null,
            h("td", null, h("a", { href: "#/instances/" + encodeURIComponent(instance.instance_id), text: instance.name })),
            h("td", null, badge(instance.status)),
            h("td", { text: instance.cache_mode }),
            h("td", { className: "mono", text: instance.ip + ":" + instance.port }),
            h("td", { text: instance.engine + " " + instance.engine_version }),
            h("td", { className: "num", text: instance.sharding_count }),
            h("td", { className: "num", text: instance.replica_count }),
            h("td", { text: instance.timezone || "UTC" }),
            h("td", { text: (instance.created_at || "").replace("T", " ").replace(/\.\d+Z$/, "") }));
        }));
        $(".empty", main).hidden = result.body.instance_num > 0;
        setPager($(".pager", main), at, INSTANCE_PAGE, result.body.instance_num, load);
      }, function (error) {
        if (mine === generation) showError(alert, error);
      });
    }
    load(offset);
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
      records: base + "/instances/" + seg(id) + "/redislog/records"
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

    call("GET", state.paths.instance).then(function (result) {
      if (mine !== generation) return;
      var instance = result.body;
      document.title = instance.name + " · dcslog console";
      $all('[data-field="name"]', main).forEach(function (el) { el.textContent = instance.name; });
      var status = $('[data-field="status"]', main);
      status.replaceWith(badge(instance.status));
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
      if (instance.error_msg) showError($('[data-alert="instance"]', main), { code: "ERROR", message: instance.error_msg });
    }, function (error) {
      if (mine === generation) showError($('[data-alert="instance"]', main), error);
    });

    setUpRunLogs(state, mine);
    setUpSlowQueries(state, mine);
    setUpSearch(state, mine);
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
        var address = node.replication_ip + (node.replication_port ? ":" + node.replication_port : "");
        return h("option", { value: node.replication_id,
                             text: address + " · " + node.replication_role + (node.status === "Active" ? "" : " · " + node.status) });
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
      }, function (error) {
        showError(alert, error);
      }).then(function () { setUnavailable(button, false); });
    }

    function row(file) {
      var statusCell = h("td", { "data-file-status": file.status }, badge(file.status));
      if (file.error_msg) statusCell.appendChild(h("div", { className: "cell-note", text: file.error_msg }));
      var action = h("button", { type: "button", className: "btn btn-small", disabled: file.status !== "succeed",
                                 "aria-label": "Download " + file.file_name, text: "Download" });
      action.addEventListener("click", function () { download(file, action); });
      return h("tr", { "data-file-id": file.id },
        h("td", { className: "mono", text: file.file_name }),
        h("td", { text: file.group_name }),
        h("td", { className: "mono", text: file.replication_ip }),
        h("td", { text: file.time }),
        statusCell,
        h("td", { className: "num", text: file.status === "succeed" ? bytes(file.size) : "" }),
        h("td", { className: "actions" }, action));
    }

    function load() {
      clearTimeout(state.runLogs.timer);
      var offset = state.runLogs.offset;
      var seq = ++state.runLogs.seq; // only the latest answer is shown: an older poll may land after it
      call("GET", state.paths.redislog, [["log_type", "run"], ["offset", offset], ["limit", RUN_LOG_PAGE]]).then(function (result) {
        if (mine !== generation || seq !== state.runLogs.seq) return;
        var files = result.body ? result.body.file_list : [];
        var total = result.body ? result.body.total_num : 0;
        // Rebuild rows but keep keyboard focus on the same file's button across refreshes.
        var focused = document.activeElement && document.activeElement.closest("tr[data-file-id]");
        var focusedId = focused && tbody.contains(focused) ? focused.dataset.fileId : null;
        tbody.replaceChildren.apply(tbody, files.map(row));
        if (focusedId) {
          var again = $('tr[data-file-id="' + CSS.escape(focusedId) + '"] button', tbody);
          if (again && !again.disabled) again.focus();
        }
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
            var address = node.replication_ip + (node.replication_port ? ":" + node.replication_port : "");
            nodes[node.replication_id] = { address: address, role: node.replication_role, group: group.group_name };
            return h("label", null, h("input", { type: "checkbox", name: "node", value: node.replication_id }),
              " " + address + " ", h("span", { className: "muted", text: node.replication_role +
                (node.status === "Active" ? "" : " · " + node.status) }));
          }).reduce(function (fragment, label) { fragment.appendChild(label); return fragment; },
                    document.createDocumentFragment())));
      }));
      describeNodes();
    }, function () { /* the Run Logs tab shows this error */ });

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

  // ---- start ----

  $("#sign-out").addEventListener("click", signOut);
  $("[data-skip]").addEventListener("click", function (event) {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", route);
  route();
})();
