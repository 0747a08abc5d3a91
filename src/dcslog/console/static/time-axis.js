/* The Timeline tab's picture: events on a time axis, one lane per node, drawn as SVG.
 *
 * DcsTimeAxis.draw(svg, options) fills an <svg> that the page holds (an inline <svg> in HTML is in
 * the SVG namespace without naming it, and so is everything made here with its namespaceURI).
 * Text goes in with textContent only: event messages come from the nodes' logs.
 *
 * options: {from, to (ms, the window), width (px), lanes: [{id, label, detail, status}],
 *           events: [{id, type, time_ms, lane, message}], hidden: {type: true},
 *           moment (ms or null), span (ms), onChoose(ms, event or null)}
 */
(function (global) {
  "use strict";

  var LABEL_WIDTH = 230; // the lane names, left of the axis
  var RIGHT_PAD = 16;
  var AXIS_HEIGHT = 30;  // tick labels above the lanes
  var LANE_HEIGHT = 34;
  var STAGGER = [0, -9, 9]; // markers that would overlap on a lane move up or down in turn
  var TYPES = ["restart", "role_change", "failover", "node_down", "node_up", "crash", "sync"];
  // Each type has its own shape as well as its colour, so the picture reads without colour too.
  var SHAPES = {
    restart: "M 0 -6 A 6 6 0 1 1 -0.01 -6 Z",
    role_change: "M -5 -5 H 5 V 5 H -5 Z",
    failover: "M 0 -7 L 7 0 L 0 7 L -7 0 Z",
    node_down: "M -6 -5 H 6 L 0 6 Z",
    node_up: "M -6 5 H 6 L 0 -6 Z",
    crash: "M -6 -3 L -3 -6 L 0 -3 L 3 -6 L 6 -3 L 3 0 L 6 3 L 3 6 L 0 3 L -3 6 L -6 3 L -3 0 Z",
    sync: "M -2 -7 H 2 V 7 H -2 Z"
  };
  var LABELS = { restart: "restart", role_change: "role change", failover: "failover", node_down: "node down",
                 node_up: "node up", crash: "crash", sync: "sync" };
  // Tick spacings to choose from: the first that gives at most ~8 ticks across the window.
  var STEPS = [1, 5, 15, 30].map(function (s) { return s * 1000; })
    .concat([1, 2, 5, 10, 15, 30].map(function (m) { return m * 60000; }))
    .concat([1, 2, 3, 6, 12].map(function (hours) { return hours * 3600000; }))
    .concat([1, 2, 7].map(function (d) { return d * 86400000; }));

  function make(svg, tag, attrs, text) {
    var element = document.createElementNS(svg.namespaceURI, tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (attrs[name] !== null && attrs[name] !== undefined) element.setAttribute(name, attrs[name]);
    });
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  /* A tick's label, in this browser's time zone: the date only where it changes (or at midnight). */
  function tickLabel(ms, step, withDate) {
    var d = new Date(ms);
    var time = pad(d.getHours()) + ":" + pad(d.getMinutes()) + (step < 60000 ? ":" + pad(d.getSeconds()) : "");
    var date = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    if (step >= 86400000) return date;
    return withDate ? date + " " + time : time;
  }

  /* Local midnight-aligned ticks for steps of an hour and more, so 6 h ticks fall on 00, 06, 12, 18. */
  function ticks(from, to) {
    var span = Math.max(to - from, 1);
    var step = STEPS[STEPS.length - 1];
    for (var i = 0; i < STEPS.length; i++) {
      if (span / STEPS[i] <= 8) { step = STEPS[i]; break; }
    }
    var zone = -new Date(from).getTimezoneOffset() * 60000;
    var first = Math.ceil((from + zone) / step) * step - zone;
    var out = [];
    for (var t = first; t <= to; t += step) out.push(t);
    return { step: step, at: out };
  }

  /* The down periods of one lane: from each node_down to the next node_up or restart (or the window's end). */
  function downSpans(events, to) {
    var spans = [];
    var since = null;
    events.slice().sort(function (a, b) { return a.time_ms - b.time_ms; }).forEach(function (event) {
      if (event.type === "node_down" && since === null) since = event.time_ms;
      else if ((event.type === "node_up" || event.type === "restart") && since !== null) {
        spans.push([since, event.time_ms]);
        since = null;
      }
    });
    if (since !== null) spans.push([since, to]);
    return spans;
  }

  function draw(svg, options) {
    var from = options.from;
    var to = options.to;
    var lanes = options.lanes;
    var width = Math.max(options.width || 900, LABEL_WIDTH + 200);
    var plot = width - LABEL_WIDTH - RIGHT_PAD;
    var height = AXIS_HEIGHT + Math.max(lanes.length, 1) * LANE_HEIGHT + 6;
    var x = function (ms) { return LABEL_WIDTH + (ms - from) / (to - from) * plot; };
    var msAt = function (px) { return Math.round(from + (px - LABEL_WIDTH) / plot * (to - from)); };
    svg.replaceChildren();
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);

    // The axis: ticks and their labels; the date shows on the first tick and where the day changes.
    var grid = make(svg, "g", { "class": "axis-grid", "aria-hidden": "true" });
    var scale = ticks(from, to);
    var lastDay = null;
    scale.at.forEach(function (t) {
      var day = new Date(t).toDateString();
      var px = x(t);
      grid.appendChild(make(svg, "line", { x1: px, x2: px, y1: AXIS_HEIGHT - 6, y2: height - 6 }));
      grid.appendChild(make(svg, "text", { x: px, y: AXIS_HEIGHT - 10, "text-anchor": "middle" },
                            tickLabel(t, scale.step, day !== lastDay)));
      lastDay = day;
    });
    svg.appendChild(grid);

    // Where the pointer lands on a lane's track is the moment chosen.
    function chooseAt(clientX) {
      var box = svg.getBoundingClientRect();
      var px = (clientX - box.left) * (width / box.width);
      options.onChoose(Math.min(to, Math.max(from, msAt(px))), null);
    }

    var byLane = {};
    options.events.forEach(function (event) { (byLane[event.lane] = byLane[event.lane] || []).push(event); });

    lanes.forEach(function (lane, index) {
      var top = AXIS_HEIGHT + index * LANE_HEIGHT;
      var middle = top + LANE_HEIGHT / 2;
      var g = make(svg, "g", { "class": "lane lane-" + (lane.status === "Inactive" ? "inactive" : "active"),
                               "data-lane": lane.id });
      g.appendChild(make(svg, "circle", { "class": "lane-dot", cx: 10, cy: middle, r: 5 }));
      g.appendChild(make(svg, "text", { "class": "lane-label", x: 22, y: middle - 2 }, lane.label));
      g.appendChild(make(svg, "text", { "class": "lane-detail", x: 22, y: middle + 11 }, lane.detail));
      var track = make(svg, "rect", { "class": "lane-track", x: LABEL_WIDTH, y: top + 3, width: plot,
                                      height: LANE_HEIGHT - 6, rx: 3 });
      track.appendChild(make(svg, "title", null, "Click to see what happened around this moment"));
      track.addEventListener("click", function (event) { chooseAt(event.clientX); });
      g.appendChild(track);
      var events = byLane[lane.id] || [];
      downSpans(events, to).forEach(function (span) {
        var start = Math.max(span[0], from);
        var down = make(svg, "rect", { "class": "down-span", x: x(start), y: top + 8,
                                       width: Math.max(x(Math.min(span[1], to)) - x(start), 2), height: LANE_HEIGHT - 16 });
        down.appendChild(make(svg, "title", null, "not reachable"));
        down.addEventListener("click", function (event) { chooseAt(event.clientX); });
        g.appendChild(down);
      });
      var lastX = -Infinity;
      var row = 0;
      events.slice().sort(function (a, b) { return a.time_ms - b.time_ms; }).forEach(function (event) {
        if (options.hidden && options.hidden[event.type]) return;
        if (event.time_ms < from || event.time_ms > to) return;
        var px = x(event.time_ms);
        row = px - lastX < 12 ? (row + 1) % STAGGER.length : 0;
        lastX = px;
        var label = (LABELS[event.type] || event.type) + " · " + lane.label + " · " + options.timeText(event.time_ms) +
          (event.message ? " · " + event.message : "");
        var marker = make(svg, "g", { "class": "marker marker-" + event.type, role: "button", tabindex: "0",
                                      transform: "translate(" + px.toFixed(1) + " " + (middle + STAGGER[row]) + ")",
                                      "data-type": event.type, "data-time-ms": event.time_ms, "data-event": event.id,
                                      "aria-label": label });
        marker.appendChild(make(svg, "title", null, label));
        marker.appendChild(make(svg, "path", { d: SHAPES[event.type] || SHAPES.restart }));
        var choose = function () { options.onChoose(event.time_ms, event); };
        marker.addEventListener("click", choose);
        marker.addEventListener("keydown", function (key) {
          if (key.key === "Enter" || key.key === " ") {
            key.preventDefault();
            choose();
          }
        });
        g.appendChild(marker);
      });
      svg.appendChild(g);
    });

    if (options.moment !== null && options.moment !== undefined && options.moment >= from && options.moment <= to) {
      var left = x(Math.max(from, options.moment - options.span));
      var right = x(Math.min(to, options.moment + options.span));
      var chosen = make(svg, "g", { "class": "moment", "aria-hidden": "true" });
      chosen.appendChild(make(svg, "rect", { "class": "moment-band", x: left, y: AXIS_HEIGHT,
                                             width: Math.max(right - left, 1), height: height - AXIS_HEIGHT - 6 }));
      chosen.appendChild(make(svg, "line", { "class": "moment-line", x1: x(options.moment), x2: x(options.moment),
                                             y1: AXIS_HEIGHT - 4, y2: height - 6 }));
      svg.appendChild(chosen); // over the lanes, but it lets clicks through (pointer-events: none)
    }
    return { x: x, msAt: msAt };
  }

  /* A small <svg> of one type's marker, for the legend; `like` is any element in the SVG namespace. */
  function swatch(like, type) {
    var icon = make(like, "svg", { "class": "swatch marker-" + type, viewBox: "-8 -8 16 16", width: 14, height: 14,
                                   "aria-hidden": "true" });
    icon.appendChild(make(like, "path", { d: SHAPES[type] || SHAPES.restart }));
    return icon;
  }

  global.DcsTimeAxis = { draw: draw, swatch: swatch, ticks: ticks, TYPES: TYPES, LABELS: LABELS };
})(window);
