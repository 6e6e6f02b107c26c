// smsgate web inbox: the reply box's part counter, templates, live updates.
// Everything works without this script; it only adds to the pages.
(function () {
  "use strict";

  // The GSM 7-bit table and part sizes, written in by the gateway from its
  // own PDU code (src/web/counter.rs): {basic, extended, gsm7, ucs2}.
  var GSM = /*GSM7*/null;
  var BASIC = new Set(Array.from(GSM.basic));
  var EXTENDED = new Set(Array.from(GSM.extended));

  function isGsm(c) { return BASIC.has(c) || EXTENDED.has(c); }

  // As the gateway splits a text (pdu::segment): GSM 7-bit when every
  // character is in the table (extension characters cost two septets), else
  // UCS-2 (UTF-16 units); one part if it fits, else parts filled greedily by
  // whole characters.
  function countParts(text) {
    var chars = Array.from(text);
    var gsm = chars.every(isGsm);
    var cost = function (c) { return gsm ? (EXTENDED.has(c) ? 2 : 1) : c.length; };
    var size = gsm ? GSM.gsm7 : GSM.ucs2;
    var total = 0;
    chars.forEach(function (c) { total += cost(c); });
    var parts = 1;
    if (total > size.single) {
      var used = 0;
      chars.forEach(function (c) {
        var n = cost(c);
        if (used + n > size.part) { parts += 1; used = 0; }
        used += n;
      });
    }
    return { gsm: gsm, parts: parts, chars: chars.length };
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function showCount(box, out) {
    var text = box.value;
    out.textContent = "";
    if (text.length === 0) { return; }
    var c = countParts(text);
    out.appendChild(document.createTextNode(
      plural(c.chars, "character", "characters") + " · " + (c.gsm ? "GSM-7" : "UCS-2") +
      " · " + plural(c.parts, "part", "parts")));
    var warnings = [];
    if (!c.gsm) {
      var odd = Array.from(text).filter(function (ch) { return !isGsm(ch); });
      var without = countParts(Array.from(text).filter(isGsm).join(""));
      if (without.parts < c.parts) {
        warnings.push("“" + odd[0] + "” is not in the GSM alphabet, so the whole text goes as UCS-2: " +
          plural(c.parts, "part", "parts") + " instead of " + without.parts + ".");
      }
    }
    var max = parseInt(box.dataset.maxParts, 10);
    if (max && c.parts > max) {
      warnings.push("Over the limit of " + plural(max, "part", "parts") + ": it will be refused.");
    }
    warnings.forEach(function (w) {
      var line = document.createElement("span");
      line.className = "warn";
      line.textContent = w;
      out.appendChild(line);
    });
  }

  function counters() {
    document.querySelectorAll("textarea[data-counter]").forEach(function (box) {
      var out = document.getElementById(box.dataset.counter);
      if (!out) { return; }
      var update = function () { showCount(box, out); };
      box.addEventListener("input", update);
      update();
    });
  }

  // Template links put their text in the reply box where the cursor is.
  function templates() {
    document.querySelectorAll("a[data-insert]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        var box = document.getElementById("reply");
        if (!box || box.disabled) { return; }
        event.preventDefault();
        var text = link.dataset.insert;
        var start = box.selectionStart, end = box.selectionEnd;
        box.value = box.value.slice(0, start) + text + box.value.slice(end);
        box.focus();
        box.selectionStart = box.selectionEnd = start + text.length;
        box.dispatchEvent(new Event("input"));
      });
    });
  }

  // Times in the reader's own zone (the page writes UTC).
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var at = new Date(t.getAttribute("datetime"));
      if (isNaN(at)) { return; }
      t.title = t.textContent;
      t.textContent = at.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    });
  }

  // The event types that change what the inbox lists, and those that change
  // a thread's page (its messages' delivery states too).
  var INBOX_TYPES = ["message.received", "consent.changed", "thread.state_changed",
    "thread.assigned", "thread.note_added", "thread.outcome", "thread.sla_breached"];
  var THREAD_TYPES = INBOX_TYPES.concat(["message.sent", "message.delivered",
    "message.failed", "message.expired", "message.unknown"]);

  // Listen to the gateway's event stream for `types`; call `changed(batch of
  // event data)` at once for the first event, then at most every 500 ms
  // while events keep coming (a campaign's sends must not make every open
  // page reload many times a second).
  function listen(url, types, changed) {
    if (!window.EventSource) { return; }
    var source = new EventSource(url);
    var last = 0, timer = null, pending = [];
    var fire = function () {
      timer = null;
      last = Date.now();
      var batch = pending;
      pending = [];
      changed(batch);
    };
    types.forEach(function (type) {
      source.addEventListener(type, function (event) {
        try { pending.push(JSON.parse(event.data).data || {}); } catch (e) { pending.push({}); }
        if (!timer) { timer = setTimeout(fire, Math.max(0, last + 500 - Date.now())); }
      });
    });
  }

  function fetchHtml(url, done) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html !== null) { done(html); } })
      .catch(function () {});
  }

  function liveInbox() {
    var list = document.getElementById("inbox-list");
    var status = document.getElementById("live");
    if (!list || !list.dataset.stream) { return; }
    listen(list.dataset.stream, INBOX_TYPES, function () {
      fetchHtml(list.dataset.refresh, function (html) {
        // Keep the keyboard where it was.
        var focused = list.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
        list.innerHTML = html;
        localTimes(list);
        if (focused) {
          var again = list.querySelector('a[href="' + focused + '"]');
          if (again) { again.focus(); }
        }
        if (status) { status.textContent = "Updated " + new Date().toLocaleTimeString(); }
      });
    });
  }

  function liveThread() {
    var timeline = document.getElementById("timeline");
    if (!timeline || !timeline.dataset.stream) { return; }
    var contact = timeline.dataset.contact;
    listen(timeline.dataset.stream, THREAD_TYPES, function (batch) {
      var ours = batch.some(function (d) { return d.contact === contact || d.number === contact; });
      if (!ours) { return; }
      fetchHtml(window.location.pathname + window.location.search, function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        ["timeline", "thread-state"].forEach(function (id) {
          var fresh = page.getElementById(id), here = document.getElementById(id);
          if (fresh && here) { here.innerHTML = fresh.innerHTML; localTimes(here); }
        });
      });
    });
  }

  function start() {
    counters();
    templates();
    localTimes(document);
    liveInbox();
    liveThread();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
