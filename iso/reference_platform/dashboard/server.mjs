// The reference platform's dashboard: the operator's sign-in over HTTPS with the box's own TLS
// pair, through Better Auth on the platform's database (DESIGN §4, §5, §10).
//
// Started by bin/clawdie-platform once the database answers; runs on Debian 12's nodejs (18),
// offline: its modules were put beside it at image build (npm ci from package-lock.json).
// It reads /etc/clawdie/system.env itself (DATABASE_URL as the platform role, BETTER_AUTH_SECRET,
// AGENT_DOMAIN); the environment only says where things are (tests run it in a sandbox):
//   CLAWDIE_SYSTEM_ENV       system.env            (default /etc/clawdie/system.env)
//   CLAWDIE_TLS_KEY/_CERT    the box's TLS pair    (default Debian's snakeoil pair)
//   CLAWDIE_DASHBOARD_PORT   the port to listen on (default 443)
// No secret is ever logged. The first boot made the operator; there is no sign-up.
import "./webcrypto.mjs"; // first: Better Auth needs globalThis.crypto, which Node 18 lacks
import { readFileSync } from "node:fs";
import https from "node:https";
import { betterAuth } from "better-auth";
import { splitSetCookieHeader } from "better-auth/cookies";
import { fromNodeHeaders, toNodeHandler } from "better-auth/node";
import pg from "pg";

const SYSTEM_ENV = process.env.CLAWDIE_SYSTEM_ENV || "/etc/clawdie/system.env";
const TLS_KEY = process.env.CLAWDIE_TLS_KEY || "/etc/ssl/private/ssl-cert-snakeoil.key";
const TLS_CERT = process.env.CLAWDIE_TLS_CERT || "/etc/ssl/certs/ssl-cert-snakeoil.pem";
const PORT = Number(process.env.CLAWDIE_DASHBOARD_PORT || 443);
const FORM_LIMIT = 4096; // bytes: an email and a password

/** system.env as the installer writes it (installer/envfile.py): KEY="value" lines. */
export function readEnv(path) {
  const values = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line || line.startsWith("#") || !line.includes("=")) continue;
    const at = line.indexOf("=");
    let raw = line.slice(at + 1);
    if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) {
      raw = raw.slice(1, -1).replace(/\\(["\\])/g, "$1");
    }
    values[line.slice(0, at)] = raw;
  }
  return values;
}

function makeAuth(env) {
  const origin = `https://${env.AGENT_DOMAIN || "clawdie.local"}`;
  const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 4 });
  pool.on("error", (err) => console.error(`dashboard: database: ${err.message}`));
  return betterAuth({
    database: pool,
    secret: env.BETTER_AUTH_SECRET,
    baseURL: origin,
    trustedOrigins: [origin],
    emailAndPassword: { enabled: true, disableSignUp: true },
    advanced: { useSecureCookies: true },
    telemetry: { enabled: false },
  });
}

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = `body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;color:#1d2433}
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;box-sizing:border-box;font-size:1rem}
button{margin-top:1.2rem;padding:.55rem 1.4rem;font-size:1rem}.refused{color:#a40000;font-weight:600}.who{font-size:1.15rem}`;

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>${escape(title)}</title>
<style>${STYLE}</style></head><body><h1>${escape(title)}</h1>${body}</body></html>\n`;
}

function signInPage(message, email = "") {
  const note = message ? `<p class="refused" role="alert">${escape(message)}</p>` : "";
  return page(
    "Clawdie dashboard: sign in",
    `${note}<form method="post" action="/sign-in">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" value="${escape(email)}" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>`,
  );
}

function signedInPage(email) {
  return page(
    "Clawdie dashboard",
    `<p class="who">Signed in as <strong>${escape(email)}</strong></p>
<form method="post" action="/sign-out"><button type="submit">Sign out</button></form>`,
  );
}

const HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin", // (no-referrer would make the form's Origin "null")
  "strict-transport-security": "max-age=31536000",
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
};

function send(res, status, html, extra = {}) {
  res.writeHead(status, { ...HEADERS, ...extra });
  res.end(html);
}

/** The cookies a Better Auth answer sets, one a header (Node 18's Headers joins them). */
function cookiesOf(headers) {
  return splitSetCookieHeader(headers.get("set-cookie") || "");
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => {
      body += chunk;
      if (body.length > FORM_LIMIT) reject(new Error("the form is too large"));
    });
    req.on("end", () => resolve(new URLSearchParams(body)));
    req.on("error", reject);
  });
}

/** A form post must come from this page: its Origin (when the browser sends one) is this host. */
function sameOrigin(req) {
  const origin = req.headers.origin;
  if (!origin) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

async function showHome(auth, req, res) {
  const session = await auth.api.getSession({ headers: fromNodeHeaders(req.headers) });
  if (session) send(res, 200, signedInPage(session.user.email));
  else send(res, 200, signInPage(""));
}

async function signIn(auth, req, res) {
  const form = await readForm(req);
  const email = (form.get("email") || "").trim();
  const password = form.get("password") || "";
  const answer = await auth.api.signInEmail({
    body: { email, password, rememberMe: true },
    headers: fromNodeHeaders(req.headers),
    asResponse: true,
  });
  if (answer.ok) {
    res.writeHead(303, { ...HEADERS, location: "/", "set-cookie": cookiesOf(answer.headers) });
    res.end();
    return;
  }
  const message =
    answer.status === 429
      ? "Too many tries: wait a minute, then sign in again."
      : "Sign-in refused: wrong email or password.";
  console.log(`dashboard: a sign-in was refused (${answer.status})`);
  send(res, 401, signInPage(message, email));
}

async function signOut(auth, req, res) {
  const answer = await auth.api.signOut({
    headers: fromNodeHeaders(req.headers),
    asResponse: true,
  });
  res.writeHead(303, { ...HEADERS, location: "/", "set-cookie": cookiesOf(answer.headers) });
  res.end();
}

function router(auth) {
  const api = toNodeHandler(auth); // Better Auth's own endpoints, for the platform's clients
  return async (req, res) => {
    const path = (req.url || "/").split("?")[0];
    try {
      if (path.startsWith("/api/auth/")) return await api(req, res);
      if (req.method === "GET" && path === "/") return await showHome(auth, req, res);
      if (req.method === "POST" && (path === "/sign-in" || path === "/sign-out")) {
        if (!sameOrigin(req)) return send(res, 403, page("Refused", "<p>Cross-site form.</p>"));
        return await (path === "/sign-in" ? signIn : signOut)(auth, req, res);
      }
      send(res, 404, page("Not found", '<p><a href="/">The dashboard</a></p>'));
    } catch (err) {
      console.error(`dashboard: ${req.method} ${path}: ${err.message}`);
      if (!res.headersSent) send(res, 500, page("The dashboard has a problem", "<p>See the platform's log.</p>"));
    }
  };
}

function main() {
  const env = readEnv(SYSTEM_ENV);
  for (const key of ["DATABASE_URL", "BETTER_AUTH_SECRET"]) {
    if (!env[key]) throw new Error(`${SYSTEM_ENV} has no ${key}`);
  }
  const tls = { key: readFileSync(TLS_KEY), cert: readFileSync(TLS_CERT) };
  const server = https.createServer(tls, router(makeAuth(env)));
  server.listen(PORT, () => {
    console.log(`DASHBOARD-READY https on port ${PORT} (Node ${process.version})`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

try {
  main();
} catch (err) {
  console.error(`DASHBOARD-FAILED: ${err.message}`);
  process.exit(1);
}
