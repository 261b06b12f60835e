// An OpenID Connect provider for the sign-on tests: the certified `oidc-provider` package with
// static clients, users with passwords and groups, and a plain HTML login form (what a browser
// fills in). Consent is granted as soon as the user has signed in.
//
//   node oidc-server.mjs CONFIG.json
//
// CONFIG: {"issuer": "http://127.0.0.1:5556", "port": 5556,
//          "clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//          "users": {"alice": {"password", "email", "groups": [...]}}}
import http from 'node:http';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = cfg.users;

const provider = new Provider(cfg.issuer, {
  clients: cfg.clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: c.client_secret ? 'client_secret_basic' : 'none',
    ...c,
  })),
  cookies: { keys: ['bulwark-oidc-test-cookies'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // The claims go into the ID token too (Bulwark reads the groups from it).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  async findAccount(ctx, sub) {
    const u = users[sub];
    if (!u) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, email: u.email, email_verified: true, name: sub, groups: u.groups ?? [] };
      },
    };
  },
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, error, status = 200) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.end(`<!doctype html><html><head><title>Sign in</title></head><body>
<h1>Test identity provider</h1>${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" id="login">
<label for="username">Username</label><input id="username" name="username" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit" id="sign-in">Sign in</button></form></body></html>`);
}

async function form(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10000) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function consent(req, res, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const saved = await grant.save();
  await provider.interactionFinished(req, res, { consent: grantId ? {} : { grantId: saved } }, {
    mergeWithLastSubmission: true,
  });
}

const handle = provider.callback();
http
  .createServer(async (req, res) => {
    const path = new URL(req.url, cfg.issuer).pathname;
    const m = path.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (!m) return handle(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'POST' && m[2]) {
        const f = await form(req);
        const name = f.get('username') ?? '';
        const u = users[name];
        if (!u || u.password !== f.get('password')) {
          return loginPage(res, details.uid, 'Wrong username or password', 401);
        }
        return provider.interactionFinished(req, res, { login: { accountId: name } }, {
          mergeWithLastSubmission: false,
        });
      }
      if (details.prompt.name === 'login') return loginPage(res, details.uid);
      return consent(req, res, details);
    } catch (e) {
      res.statusCode = 400;
      res.setHeader('Content-Type', 'text/plain');
      res.end(`interaction failed: ${e.message}`);
    }
  })
  .listen(cfg.port, '127.0.0.1', () => console.log(`oidc provider ${cfg.issuer}`));
