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

  /* One DCS call; resolves to {status, body} (body null on 204), rejects with ApiError. */
  function call(method, path, params, credentials) {
    credentials = credentials || loadCredentials();
    var query = DcsSign.queryString(params || []);
    var headers = { "Accept": "application/json" };
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
    return fetch(path + (query ? "?" + query : ""), {
      method: method, headers: headers, credentials: "omit", cache: "no-store", redirect: "error"
    }).then(function (response) {
      var requestId = response.headers.get("X-Request-Id");
      if (response.status === 204) return { status: 204, body: null };
      return response.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!response.ok) {
          throw new ApiError(response.status, (body && body.error_code) || "HTTP " + response.status,
                             (body && body.error_msg) || response.statusText || "Request failed.", requestId);
        }
        return { status: response.status, body: body };
      });
    }, function (error) {
      throw new ApiError(0, "Network error", "The server did not answer (" + error.message + ").", null);
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
      return { view: "instance", instanceId: parts[1], tab: parts[2] === "slow-queries" ? "slow-queries" : "run-logs" };
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
      slowlog: base + "/instances/" + seg(id) + "/slowlog"
    };

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

    call("GET", state.paths.groups).then(function (result) {
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

  // ---- start ----

  $("#sign-out").addEventListener("click", signOut);
  $("[data-skip]").addEventListener("click", function (event) {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", route);
  route();
})();
