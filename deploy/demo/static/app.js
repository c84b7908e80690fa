// The demo SPA: no token ever reaches this code. Every call is same-origin and carries
// `X-CSRF: 1`, which a cross-site page cannot add without a CORS preflight.
"use strict";

const output = document.getElementById("output");
const status = document.getElementById("status");
let logoutUrl = null;

function show(label, value) {
  output.textContent = label + "\n" + (typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

async function call(path) {
  // no-store: browsers otherwise queue identical concurrent GETs behind each other.
  const response = await fetch(path, { headers: { "X-CSRF": "1" }, credentials: "same-origin", cache: "no-store" });
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: response.status, body };
}

async function whoami() {
  const { status: code, body } = await call("/bff/user");
  if (code === 200) {
    logoutUrl = body["bff:logout_url"];
    status.textContent = "Logged in as " + (body.name || body.preferred_username || body.sub);
  } else {
    logoutUrl = null;
    status.textContent = "Not logged in";
  }
  return { code, body };
}

document.getElementById("login").onclick = () => {
  window.location.href = "/bff/login?returnUrl=" + encodeURIComponent(window.location.pathname);
};
document.getElementById("whoami").onclick = async () => {
  const { code, body } = await whoami();
  show("GET /bff/user -> " + code, body);
};
document.getElementById("callapi").onclick = async () => {
  const { status: code, body } = await call("/api/whoami");
  show("GET /api/whoami -> " + code, body);
};
document.getElementById("logout").onclick = async () => {
  if (!logoutUrl) { await whoami(); }
  if (logoutUrl) { window.location.href = logoutUrl; } else { show("Log out", "not logged in"); }
};

whoami();
