/**
 * The fleet page itself: one HTML document with its style and script
 * inline, nothing fetched from elsewhere, no build step. The script is the
 * drawing functions' own source (`view.ts`) and a small loop that reads
 * the server's events (`api/events`, server-sent events read with
 * `fetch`, so that a token goes in a header, never in a URL), redraws
 * every second, reconnects with backoff when the server goes away, asks
 * for a token when the server wants one, and posts pause and resume.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { VIEW_FUNCTIONS } from "./view.ts";

const STYLE = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--dim:#5b636e;--line:#d7dbe0;--card:#f6f8fa;--warn:#b3261e;--warnbg:#fdecea;--ok:#1a7f37;--accent:#0b57d0}
@media (prefers-color-scheme:dark){:root{--bg:#0f1115;--fg:#e6e8eb;--dim:#9aa3ad;--line:#2c323a;--card:#171a20;--warn:#ff8a80;--warnbg:#3a1714;--ok:#56d364;--accent:#8ab4f8}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:baseline;padding:.8em 1em;border-bottom:1px solid var(--line)}
h1{font-size:1.2em;margin:0}
#status{font-size:.85em;padding:.1em .6em;border-radius:1em;border:1px solid var(--line)}
#status.live{color:var(--ok)}#status.down{color:var(--warn)}
#trouble{color:var(--warn);font-size:.9em}
main{padding:.5em;display:grid;gap:.8em;grid-template-columns:repeat(auto-fill,minmax(min(100%,34em),1fr))}
.group{background:var(--card);border:1px solid var(--line);border-radius:.6em;padding:.6em .9em;overflow-x:auto}
h2{font-size:1.1em;margin:.2em 0}
h3{font-size:.95em;margin:.8em 0 .3em;color:var(--dim)}
.badge{font-size:.75em;color:var(--warn);border:1px solid var(--warn);border-radius:1em;padding:0 .5em;vertical-align:middle}
.counts{margin:.2em 0;display:flex;flex-wrap:wrap;gap:.5em;align-items:center}
button{font:inherit;padding:.2em .9em;border-radius:.4em;border:1px solid var(--accent);background:transparent;color:var(--accent);cursor:pointer}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{text-align:left;padding:.2em .5em .2em 0;border-bottom:1px solid var(--line);white-space:nowrap}
th{color:var(--dim);font-weight:500}
.id{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;max-width:16em;overflow:hidden;text-overflow:ellipsis}
tr.never td{color:var(--warn);background:var(--warnbg)}
ol{margin:.2em 0;padding-left:1.6em}
.none{color:var(--dim);margin:.2em 0}
.error{color:var(--warn)}
form{padding:1em;max-width:28em}
input{font:inherit;width:100%;padding:.4em;margin:.4em 0;border:1px solid var(--line);border-radius:.4em;background:var(--bg);color:var(--fg)}
`;

const CLIENT = `
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var snapshot = null, receivedMs = 0, access = { groups: [] };
  var token = sessionStorage.getItem("locksmith-token") || "";
  var pausable = function () {
    if (!snapshot) return [];
    return snapshot.groups.map(function (g) { return g.group; }).filter(function (g) {
      return access.groups.indexOf("*") >= 0 || access.groups.indexOf(g === "" ? "default" : g) >= 0;
    });
  };
  function draw() {
    if (!snapshot) return;
    $("fleet").innerHTML = renderFleet(snapshot, receivedMs, Date.now(), pausable());
    $("trouble").textContent = snapshot.trouble ? "etcd: " + snapshot.trouble : "";
  }
  function status(text, cls) { var s = $("status"); s.textContent = text; s.className = cls; }
  function headers() { return token ? { authorization: "Bearer " + token } : {}; }
  function handle(block) {
    var type = "message", data = "";
    block.split("\\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) type = line.slice(7);
      else if (line.indexOf("data: ") === 0) data += line.slice(6);
    });
    if (!data) return;
    if (type === "access") access = JSON.parse(data);
    if (type === "fleet") { snapshot = JSON.parse(data); receivedMs = Date.now(); }
    draw();
  }
  function askToken(message) {
    status("needs a token", "down");
    $("login").hidden = false;
    $("login-error").textContent = message;
    $("token").focus();
  }
  async function connect() {
    var delay = 500;
    for (;;) {
      var stop = new AbortController(), heard = Date.now();
      var guard = setInterval(function () { if (Date.now() - heard > 40000) stop.abort(); }, 5000);
      try {
        var res = await fetch("api/events", { headers: headers(), cache: "no-store", signal: stop.signal });
        if (res.status === 401 || res.status === 403) {
          clearInterval(guard);
          return askToken(token ? "That token is not valid here." : "This server needs a token to show the fleet.");
        }
        if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
        status("live", "live");
        delay = 500;
        var reader = res.body.pipeThrough(new TextDecoderStream()).getReader(), buffer = "";
        for (;;) {
          var next = await reader.read();
          if (next.done) break;
          heard = Date.now();
          buffer += next.value;
          for (var cut = buffer.indexOf("\\n\\n"); cut >= 0; cut = buffer.indexOf("\\n\\n")) {
            handle(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
      } catch (e) { /* reconnect below */ }
      clearInterval(guard);
      status("reconnecting", "down");
      await new Promise(function (r) { setTimeout(r, delay); });
      delay = Math.min(delay * 2, 5000);
    }
  }
  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("locksmith-token", token);
    $("login").hidden = true;
    connect();
  });
  $("fleet").addEventListener("click", async function (e) {
    var b = e.target.closest("button[data-action]");
    if (!b) return;
    b.disabled = true;
    var res = await fetch("api/" + b.dataset.action, {
      method: "POST",
      headers: Object.assign({ "content-type": "application/json" }, headers()),
      body: JSON.stringify({ group: b.dataset.group })
    }).catch(function () { return null; });
    if (!res || !res.ok) $("trouble").textContent = b.dataset.action + " failed" + (res ? ": HTTP " + res.status : "");
    b.disabled = false;
  });
  setInterval(draw, 1000);
  connect();
})();
`;

/** The page's script: the drawing functions, then the loop. */
export const PAGE_SCRIPT: string = `${
  VIEW_FUNCTIONS.map(String).join("\n")
}\n${CLIENT}`;

function sha256(text: string): string {
  return `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
}

/** The page: one HTML document, its style and script inline. */
export const PAGE_HTML: string = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>locksmith fleet</title>
<style>${STYLE}</style></head>
<body><header><h1>locksmith fleet</h1><span id="status" class="down">connecting</span><span id="trouble"></span></header>
<form id="login" hidden><label for="token">Token</label><input id="token" type="password" autocomplete="current-password"><button type="submit">Show the fleet</button><p id="login-error" class="error"></p></form>
<main id="fleet"></main>
<script>${PAGE_SCRIPT}</script></body></html>
`;

/** The page's Content-Security-Policy: its own inline style and script only, requests to its own server only. */
export const PAGE_CSP: string = [
  "default-src 'none'",
  `script-src ${sha256(PAGE_SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
