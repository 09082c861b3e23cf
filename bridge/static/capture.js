/*! capture.js, from the Stripe -> Trackdesk bridge.
 * Reads the Trackdesk click id (cookie trakdesk_cid), adds it to Stripe Payment Links, Pricing
 * Tables and Buy Buttons as client_reference_id (never replacing a value the page already set),
 * and posts it to the bridge's /capture when this tag carries data-token="<capture token>".
 * Optional: data-payment-link-hosts="pay.example.com" for Payment Links on your own domain.
 * No dependencies; does nothing without the cookie; never throws into the page.
 */
(function () {
  "use strict";
  var COOKIE = "trakdesk_cid";
  var CLICK_ID = /^[0-9a-f-]{36}$/i; // Trackdesk click ids are UUIDs, which Stripe accepts
  var ELEMENTS = "stripe-pricing-table,stripe-buy-button";
  var LINKS = "a[href],area[href]";
  var RETRIES = 30; // the tracker may set the cookie after this script ran: look again, 1/s

  function quietly(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { return undefined; }
    };
  }

  function parseClickId(value) {
    var raw = String(value).trim();
    if (raw.length > 1 && raw.charAt(0) === '"' && raw.charAt(raw.length - 1) === '"') {
      raw = raw.slice(1, -1);
    }
    if (raw.indexOf("%") !== -1) raw = decodeURIComponent(raw).trim();
    if (raw.charAt(0) === "{") raw = JSON.parse(raw).cid;
    return typeof raw === "string" && CLICK_ID.test(raw.trim()) ? raw.trim() : null;
  }

  function readClickId() {
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (eq < 0 || parts[i].slice(0, eq).trim() !== COOKIE) continue;
      var cid = quietly(parseClickId)(parts[i].slice(eq + 1));
      if (cid) return cid;
    }
    return null;
  }

  function decorateLink(a, cid, hosts) {
    if (typeof a.href !== "string") return;
    var url = new URL(a.href);
    if (hosts.indexOf(url.hostname.toLowerCase()) < 0) return;
    if (url.searchParams.get("client_reference_id")) return; // the merchant's value wins
    url.searchParams.set("client_reference_id", cid);
    a.href = url.toString();
  }

  function tagElement(el, cid) {
    if (!el.getAttribute("client-reference-id")) el.setAttribute("client-reference-id", cid);
  }

  function scan(node, cid, hosts) {
    if (!node || node.nodeType !== 1) return;
    var found = Array.prototype.slice.call(node.querySelectorAll(LINKS + "," + ELEMENTS));
    if (node.matches(LINKS + "," + ELEMENTS)) found.push(node);
    for (var i = 0; i < found.length; i++) {
      if (found[i].matches(LINKS)) quietly(decorateLink)(found[i], cid, hosts);
      else tagElement(found[i], cid);
    }
  }

  function watch(cid, hosts) {
    if (!window.MutationObserver) return;
    new MutationObserver(quietly(function (records) {
      for (var i = 0; i < records.length; i++) {
        if (records[i].type === "attributes") scan(records[i].target, cid, hosts);
        for (var j = 0; j < records[i].addedNodes.length; j++) {
          scan(records[i].addedNodes[j], cid, hosts);
        }
      }
    })).observe(document.documentElement, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["href"]
    });
  }

  function post(endpoint, cid, token) {
    if (!endpoint || !token || !window.fetch) return;
    var done = quietly(function (detail) {
      document.dispatchEvent(new CustomEvent("trackdesk:capture", { detail: detail }));
    });
    window.fetch(endpoint, {
      method: "POST", mode: "cors", credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ cid: cid, token: token })
    }).then(function (r) { done({ ok: r.ok, status: r.status }); },
            function () { done({ ok: false, status: 0 }); });
  }

  var script = document.currentScript;
  var endpoint = null;
  var hosts = ["buy.stripe.com"];
  var bridge = { cid: null, capture: function () {} };

  function start(retries) {
    var cid = readClickId();
    if (!cid) {
      if (retries > 0) setTimeout(quietly(function () { start(retries - 1); }), 1000);
      return;
    }
    bridge.cid = cid;
    bridge.capture = quietly(function (token) { post(endpoint, cid, token); });
    scan(document.documentElement, cid, hosts);
    watch(cid, hosts);
    if (script) bridge.capture(script.getAttribute("data-token"));
  }

  quietly(function () {
    if (script && script.src) endpoint = new URL("capture", script.src).toString();
    var extra = script && script.getAttribute("data-payment-link-hosts");
    if (extra) hosts = hosts.concat(extra.toLowerCase().split(/[\s,]+/));
    window.trackdeskBridge = bridge;
    start(RETRIES);
  })();
})();
