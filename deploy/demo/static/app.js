// The demo SPA: no token ever reaches this code. Every call is same-origin and carries
// `X-CSRF: 1`, which a cross-site page cannot add without a CORS preflight. The page
// shows what the BFF does: who is logged in, when the session ends, each access-token
// refresh (seen as a new `exp` reported by the API), and that it holds no token itself.
"use strict";

const $ = (id) => document.getElementById(id);
const JWT = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\./;
const AUTO_EVERY_MS = 5000;

const state = {
  user: null, // the claims /bff/user returned, or null
  logoutUrl: null,
  sessionEndsAt: null, // ms epoch, from bff:session_expires_in
  tokenExpiresAt: null, // s epoch, the exp the API saw last
  refreshes: 0,
  responses: 0,
  jwts: 0,
  autoTimer: null,
  events: null, // the EventSource on /bff/events while logged in
};

function clock(date = new Date()) {
  return date.toLocaleTimeString([], { hour12: false });
}

function note(text, kind = "") {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = clock();
  const span = document.createElement("span");
  span.textContent = text;
  if (kind) span.className = kind;
  item.append(time, span);
  const list = $("timeline");
  list.prepend(item);
  while (list.children.length > 50) list.lastChild.remove();
}

function show(label, value) {
  $("output").textContent = label + "\n" + (typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

async function call(path) {
  // no-store: browsers otherwise queue identical concurrent GETs behind each other.
  const response = await fetch(path, { headers: { "X-CSRF": "1" }, credentials: "same-origin", cache: "no-store" });
  const text = await response.text();
  state.responses += 1;
  if (JWT.test(text)) state.jwts += 1;
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: response.status, body };
}

function displayName(claims) {
  return claims.name || claims.preferred_username || claims.sub;
}

async function whoami() {
  const { status, body } = await call("/bff/user");
  const wasIn = state.user !== null;
  if (status === 200) {
    state.user = body;
    state.logoutUrl = body["bff:logout_url"];
    state.sessionEndsAt = Date.now() + 1000 * body["bff:session_expires_in"];
    if (!wasIn) note("Logged in as " + displayName(body) + " (the BFF holds the tokens)");
    if (!wasIn) $("session-banner").hidden = true;
    listen();
  } else {
    if (wasIn) note("The BFF says: no session any more (" + (body.error || status) + ")", "bad");
    state.user = null;
    state.logoutUrl = null;
    state.sessionEndsAt = null;
    state.tokenExpiresAt = null;
  }
  render();
  return { status, body };
}

async function callApi() {
  const result = await call("/api/whoami");
  const { status, body } = result;
  if (status === 200 && typeof body.expires_at === "number") {
    const previous = state.tokenExpiresAt;
    state.tokenExpiresAt = body.expires_at;
    if (previous !== null && body.expires_at > previous) {
      state.refreshes += 1;
      note("The BFF refreshed the access token: now valid until " + clock(new Date(body.expires_at * 1000)) +
        " (the old one ended " + clock(new Date(previous * 1000)) + ")", "refresh");
    } else if (previous === null) {
      note("API call with the BFF's access token: valid until " + clock(new Date(body.expires_at * 1000)));
    } else {
      note("API call: 200, same access token");
    }
  } else {
    note("API call: " + status + " " + (body.error || ""), status === 200 ? "" : "bad");
  }
  await whoami(); // the call slid the session's idle expiry: show the new deadline
  return result;
}

function countdown(seconds) {
  if (seconds <= 0) return "0:00";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
}

function tick() {
  const session = $("session-countdown");
  if (state.sessionEndsAt !== null) {
    const left = (state.sessionEndsAt - Date.now()) / 1000;
    session.textContent = countdown(left);
    session.classList.toggle("soon", left < 60);
  } else {
    session.textContent = "–";
  }
  const token = $("token-countdown");
  if (state.tokenExpiresAt !== null) {
    const left = state.tokenExpiresAt - Date.now() / 1000;
    token.textContent = left > 0 ? countdown(left) : "expired: the BFF refreshes it on the next call";
    token.classList.toggle("soon", left < 10);
    $("token-hint").hidden = true;
  } else {
    token.textContent = "–";
    $("token-hint").hidden = false;
  }
  // The proof is re-read every second, not remembered.
  $("proof-cookie").textContent = JSON.stringify(document.cookie);
  $("proof-local").textContent = String(localStorage.length);
  $("proof-session").textContent = String(sessionStorage.length);
  $("proof-responses").textContent = String(state.responses);
  $("proof-jwts").textContent = String(state.jwts);
  const clean = document.cookie === "" && localStorage.length === 0 && sessionStorage.length === 0;
  $("proof-cookie").closest("li").classList.toggle("fail", document.cookie !== "");
  $("proof-local").closest("li").classList.toggle("fail", !clean);
  $("proof-jwts").closest("li").classList.toggle("fail", state.jwts > 0);
}

function banner(text, ended) {
  const element = $("session-banner");
  element.textContent = text;
  element.classList.toggle("ended", ended);
  element.hidden = false;
}

// GET /bff/events: every open tab learns at once that its session ends. A plain
// EventSource sends no X-CSRF; the browser's `Sec-Fetch-Site: same-origin` lets it in.
function listen() {
  if (state.events !== null) return;
  const events = new EventSource("/bff/events");
  state.events = events;
  events.addEventListener("session_expiring", (event) => {
    banner("Your session ends in " + event.data + " s unless you use it.", false);
    note("The BFF says: the session ends in " + event.data + " s", "bad");
  });
  events.addEventListener("session_ended", (event) => {
    banner("Your session has ended (" + event.data + "). Log in again to go on.", true);
    note("The BFF says: session ended (" + event.data + ")", "bad");
    events.close();
    state.events = null;
    whoami().catch(() => {});
  });
  events.onerror = () => { // the stream ended, or 401: no session any more
    events.close();
    state.events = null;
  };
}

function render() {
  const user = state.user;
  const loggedIn = user !== null;
  $("status").textContent = loggedIn ? "Logged in as " + displayName(user) : "Not logged in";
  $("status").classList.toggle("in", loggedIn);
  $("who").hidden = !loggedIn;
  if (loggedIn) {
    $("who-name").textContent = displayName(user);
    $("who-sub").textContent = user.sub;
    $("who-email").textContent = user.email || "–";
  }
  $("login").disabled = loggedIn;
  $("callapi").disabled = !loggedIn;
  $("logout").disabled = !loggedIn;
  $("auto").disabled = !loggedIn;
  $("sessions-reload").disabled = !loggedIn;
  if (!loggedIn) {
    $("revoke-others").disabled = true;
    $("sessions").replaceChildren();
    $("sessions-empty").hidden = false;
  }
  if (!loggedIn && $("auto").checked) {
    $("auto").checked = false;
    setAuto(false);
  }
  $("refresh-count").textContent = String(state.refreshes);
  tick();
}

// The session inventory: every session of this user, ended here one by one or all but
// this one. What the BFF sends (user agent, address) is shown as text, never as HTML.
async function send(method, path) {
  const response = await fetch(path, { method, headers: { "X-CSRF": "1" }, credentials: "same-origin" });
  state.responses += 1;
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: response.status, body };
}

function when(iso) {
  return new Date(iso).toLocaleString([], { hour12: false });
}

function sessionItem(entry) {
  const item = document.createElement("li");
  const facts = document.createElement("div");
  const agent = document.createElement("div");
  agent.className = "agent";
  agent.textContent = entry.user_agent || "(unknown browser)";
  const detail = document.createElement("div");
  detail.className = "hint";
  detail.textContent = "from " + (entry.client_ip || "an unknown address") + ", signed in " +
    when(entry.created) + ", last seen " + when(entry.last_seen);
  facts.append(agent, detail);
  item.append(facts);
  if (entry.current) {
    const mark = document.createElement("span");
    mark.className = "current";
    mark.textContent = "this device";
    item.append(mark);
  } else {
    const end = document.createElement("button");
    end.textContent = "Sign out";
    end.onclick = async () => {
      const { status, body } = await send("DELETE", "/bff/sessions/" + encodeURIComponent(entry.id));
      show("DELETE /bff/sessions/" + entry.id + " -> " + status, body);
      note(status === 204 ? "Signed out one other device: its next call is refused" :
        "Could not sign out that device (" + status + ")", status === 204 ? "" : "bad");
      await loadSessions();
    };
    item.append(end);
  }
  return item;
}

async function loadSessions() {
  const list = $("sessions");
  if (state.user === null) {
    list.replaceChildren();
    $("sessions-empty").hidden = false;
    return null;
  }
  const { status, body } = await call("/bff/sessions");
  if (status !== 200) {
    list.replaceChildren();
    $("sessions-empty").hidden = false;
    return { status, body };
  }
  list.replaceChildren(...body.sessions.map(sessionItem));
  $("sessions-empty").hidden = true;
  $("revoke-others").disabled = body.sessions.length < 2;
  return { status, body };
}

function setAuto(on) {
  clearInterval(state.autoTimer);
  state.autoTimer = on ? setInterval(() => { callApi().catch(() => {}); }, AUTO_EVERY_MS) : null;
}

$("login").onclick = () => {
  window.location.href = "/bff/login?returnUrl=" + encodeURIComponent(window.location.pathname);
};
$("whoami").onclick = async () => {
  const { status, body } = await whoami();
  show("GET /bff/user -> " + status, body);
};
$("callapi").onclick = async () => {
  const { status, body } = await callApi();
  show("GET /api/whoami -> " + status, body);
};
$("logout").onclick = async () => {
  if (!state.logoutUrl) { await whoami(); }
  if (state.logoutUrl) {
    note("Logging out: the BFF deletes the session and revokes the refresh token");
    window.location.href = state.logoutUrl;
  } else {
    show("Log out", "not logged in");
  }
};
$("auto").onchange = (event) => setAuto(event.target.checked);
$("sessions-reload").onclick = async () => {
  const result = await loadSessions();
  if (result) show("GET /bff/sessions -> " + result.status, result.body);
};
$("revoke-others").onclick = async () => {
  const { status, body } = await send("POST", "/bff/sessions/revoke-others");
  show("POST /bff/sessions/revoke-others -> " + status, body);
  if (status === 200) {
    note("Signed out " + body.revoked + " other device(s): their refresh tokens are revoked");
  } else {
    note("Could not sign out the other devices (" + status + ")", "bad");
  }
  await loadSessions();
};

setInterval(tick, 1000);
whoami().then(({ status }) => {
  if (status !== 200) note("Not logged in: /bff/user answered " + status + " (expected; the page checks on load)");
  return loadSessions();
});
