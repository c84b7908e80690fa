// The OpenID provider for bff's browser end-to-end tests: panva's oidc-provider (OpenID
// Certified), configured like a production provider that a BFF meets, plus a test-only
// /_test/ route that reports what happened per user. Loopback only; never for production.
//
//   node provider.mjs --port-file F --client-id ID --client-secret S
//        --redirect-uri URI... --post-logout-redirect-uri URI... [--backchannel-logout-uri URI]
//        [--resource URI] [--access-token-ttl SECONDS] [--host 127.0.0.1] [--port 0]
//        [--resource-server URI=SCOPE...] [--client-credentials] [--token-exchange]
//        [--client-jwks FILE]   the client authenticates with private_key_jwt (RFC 7523)
//                               with the public keys in FILE, instead of its secret
//        [--dpop]               the client's access tokens are DPoP-bound (RFC 9449),
//        [--dpop-nonce]         and the provider requires its DPoP-Nonce in every proof
//
// --resource-server, --client-credentials and --token-exchange are opt-in (the
// live-connections tests): more resource servers (each its own RFC 8707 indicator, JWT
// access tokens whose `aud` is that URI alone), the client-credentials grant and an RFC
// 8693 token-exchange grant for the client; see liveFeatures() at the end.
//
// It listens first (port 0 unless --port) and writes its port to --port-file once the
// issuer is known, so the fixture never races for a port. One JSON line per event on stdout.
import {
  createHash, createPublicKey, createVerify, randomBytes,
} from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'port-file': { type: 'string' },
    'client-id': { type: 'string', default: 'bff-e2e' },
    'client-secret': { type: 'string', default: 'bff-e2e-secret-0123456789abcdef' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'post-logout-redirect-uri': { type: 'string', multiple: true, default: [] },
    'backchannel-logout-uri': { type: 'string' },
    resource: { type: 'string', default: 'https://api.e2e.bff.test' },
    'access-token-ttl': { type: 'string', default: process.env.E2E_ACCESS_TOKEN_TTL || '5' },
    'resource-server': { type: 'string', multiple: true, default: [] },
    'client-credentials': { type: 'boolean', default: false },
    'token-exchange': { type: 'boolean', default: false },
    'client-jwks': { type: 'string' },
    dpop: { type: 'boolean', default: false },
    'dpop-nonce': { type: 'boolean', default: false },
  },
});

if (!['127.0.0.1', 'localhost', '::1'].includes(args.host)) {
  throw new Error('the e2e provider binds loopback addresses only');
}
const accessTokenTTL = Number.parseInt(args['access-token-ttl'], 10);
const RESOURCE = args.resource;
const API_SCOPE = 'api:read';

function log(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}

// ---- what the tests ask about, per account (the login name is the `sub`) ----------------
const perAccount = new Map();
function account(sub) {
  if (!perAccount.has(sub)) {
    perAccount.set(sub, {
      authorization_code_grants: 0,
      refresh_grants: 0,
      refresh_errors: [],
      revocations: 0, // revocation requests that named one of this user's refresh tokens
      backchannel_sent: 0,
      backchannel_failed: [],
      end_sessions: 0,
      refresh_tokens: [], // values (opaque: the value is the jti), oldest first
    });
  }
  return perAccount.get(sub);
}
const unattributed = [];
const hash = (value) => createHash('sha256').update(value).digest('hex').slice(0, 16);

async function refreshTokenStatus(provider, value) {
  const rt = await provider.RefreshToken.find(value, { ignoreExpiration: true });
  if (!rt) return { token_sha256: hash(value), active: false, reason: 'revoked or unknown' };
  const grant = await provider.Grant.find(rt.grantId);
  const active = !rt.consumed && !rt.isExpired && !!grant;
  let reason = 'active';
  if (rt.consumed) reason = 'rotated';
  else if (rt.isExpired) reason = 'expired';
  else if (!grant) reason = 'grant revoked';
  return { token_sha256: hash(value), active, reason };
}

// ---- the provider -----------------------------------------------------------------------
const server = createServer();
server.listen(Number.parseInt(args.port, 10), args.host, () => {
  const { port } = server.address();
  const host = args.host.includes(':') ? `[${args.host}]` : args.host;
  const issuer = `http://${host}:${port}`;

  const client = {
    client_id: args['client-id'],
    client_secret: args['client-secret'],
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: args['redirect-uri'],
    post_logout_redirect_uris: args['post-logout-redirect-uri'],
  };
  if (args['client-jwks']) {
    delete client.client_secret;
    client.token_endpoint_auth_method = 'private_key_jwt';
    client.jwks = JSON.parse(readFileSync(args['client-jwks'], 'utf8'));
  }
  if (args.dpop) client.dpop_bound_access_tokens = true;
  if (args['backchannel-logout-uri']) {
    client.backchannel_logout_uri = args['backchannel-logout-uri'];
    client.backchannel_logout_session_required = true;
  }

  const live = liveFeatures(args, issuer, client);
  const provider = new Provider(issuer, {
    clients: [client],
    // Cookie signing keys: fresh per run, the provider lives only as long as the tests.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            name: `E2E ${sub}`,
            preferred_username: sub,
            email: `${sub}@e2e.bff.test`,
            email_verified: true,
          };
        },
      };
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    // bff shows the ID token's claims on /bff/user: put profile claims in the ID token
    // instead of leaving them to /userinfo (the access token is for the API anyway).
    conformIdTokenClaims: false,
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    // oidc-provider drops `offline_access` unless the request says prompt=consent (OIDC
    // Core §11), and bff sends no prompt: by default it would get no refresh token at all
    // (and end every session when the first access token expires). §11 also allows "other
    // conditions" for offline access: this client may refresh, so it gets a refresh token,
    // which then lives as long as the provider session.
    issueRefreshToken: async (ctx, client_) => client_.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: accessTokenTTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    // oidc-provider's outgoing fetch (back-channel logout) refuses special-use addresses
    // (SSRF protection). Every party here is on loopback, so drop that dispatcher.
    fetch: (url, options) => {
      const { dispatcher: _ssrfGuard, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    features: {
      devInteractions: { enabled: true }, // the login and consent pages the browser fills
      revocation: { enabled: true },
      dPoP: args['dpop-nonce']
        ? { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true }
        : { enabled: true },
      backchannelLogout: { enabled: true },
      clientCredentials: { enabled: live.clientCredentials },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resource) => {
          if (live.servers.has(resource)) return live.info(resource);
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          // RFC 9068 JWT access tokens, so the test API verifies them by JWKS alone.
          return {
            scope: API_SCOPE,
            audience: RESOURCE,
            accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });
  live.install(provider);
  provider.on('server_error', (ctx, err) => log('server_error', { message: String(err) }));
  provider.on('refresh_token.saved', (token) => {
    account(token.accountId).refresh_tokens.push(token.jti);
  });
  provider.on('backchannel.success', (ctx, client_, accountId, sid) => {
    account(accountId).backchannel_sent += 1;
    log('backchannel.success', { sub: accountId, sid });
  });
  provider.on('backchannel.error', (ctx, err, client_, accountId, sid) => {
    account(accountId).backchannel_failed.push(String(err));
    log('backchannel.error', { sub: accountId, sid, message: String(err) });
  });
  provider.on('end_session.success', (ctx) => {
    const sub = ctx.oidc.session?.accountId;
    if (sub) account(sub).end_sessions += 1;
    log('end_session.success', { sub });
  });

  // Count what each request did, after the provider answered it.
  provider.use(async (ctx, next) => {
    if (ctx.path.startsWith('/_test/')) {
      await testRoute(ctx, provider);
      return;
    }
    await next();
    const route = ctx.oidc?.route;
    if (route === 'token') {
      const grantType = ctx.oidc.params?.grant_type;
      const entities = ctx.oidc.entities || {};
      const sub = entities.Account?.accountId
        || entities.RefreshToken?.accountId
        || entities.AuthorizationCode?.accountId;
      const ok = ctx.status === 200;
      log('token', { grant_type: grantType, sub, status: ctx.status, error: ok ? undefined : ctx.body?.error_description, scope: ok ? ctx.body?.scope : undefined, code_scope: entities.AuthorizationCode?.scope, refresh_token: ok ? Boolean(ctx.body?.refresh_token) : undefined });
      if (!sub) {
        // A refresh token the provider no longer knows: no user to charge it to.
        if (!ok) unattributed.push({ grant_type: grantType, error: ctx.body?.error_description });
        return;
      }
      if (grantType === 'refresh_token') {
        if (ok) account(sub).refresh_grants += 1;
        else account(sub).refresh_errors.push(ctx.body?.error_description || ctx.body?.error);
      } else if (grantType === 'authorization_code' && ok) {
        account(sub).authorization_code_grants += 1;
      }
    } else if (route === 'revocation') {
      const rt = ctx.oidc.entities?.RefreshToken;
      log('revocation', { sub: rt?.accountId, status: ctx.status, kind: rt ? 'refresh_token' : undefined });
      if (rt) account(rt.accountId).revocations += 1;
    }
  });

  server.on('request', provider.callback());
  log('listening', { issuer, port, access_token_ttl: accessTokenTTL, resource: RESOURCE });
  if (args['port-file']) writeFileSync(args['port-file'], `${port}\n`);
});

async function testRoute(ctx, provider) {
  ctx.set('cache-control', 'no-store');
  const sub = ctx.query.sub;
  if (ctx.method === 'GET' && ctx.path === '/_test/stats' && typeof sub === 'string') {
    const entry = account(sub);
    const tokens = await Promise.all(
      entry.refresh_tokens.map((value) => refreshTokenStatus(provider, value)),
    );
    ctx.body = { sub, ...entry, refresh_tokens: tokens, unattributed_token_errors: unattributed };
    return;
  }
  if (ctx.method === 'GET' && ctx.path === '/_test/refresh-token-values' && typeof sub === 'string') {
    // Test-only: lets a test search the browser for the exact refresh token strings.
    ctx.body = { sub, values: account(sub).refresh_tokens };
    return;
  }
  ctx.status = 404;
  ctx.body = { error: 'not_found' };
}

// ---- opt-in: more resource servers, client credentials, token exchange ---------------------
// --resource-server URI=SCOPE adds a resource server (JWT access tokens, `aud` = URI only).
// --client-credentials lets the client use RFC 6749 §4.4. --token-exchange registers an
// RFC 8693 grant (oidc-provider 9 has none built in): the subject token must be a JWT
// access token this provider issued to this same client, verified against the provider's
// own JWKS; the answer is a new JWT access token for the one requested `resource`, with the
// subject's `sub`. GET /_test/grants?sub= lists these grants (and the client's).
function liveFeatures(opts, issuer, client) {
  const servers = new Map(opts['resource-server'].map((pair) => {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--resource-server wants URI=SCOPE, got ${pair}`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }));
  const exchangeGrant = 'urn:ietf:params:oauth:grant-type:token-exchange';
  const tokenType = 'urn:ietf:params:oauth:token-type:access_token';
  const extra = [
    ...(opts['client-credentials'] ? ['client_credentials'] : []),
    ...(opts['token-exchange'] ? [exchangeGrant] : []),
  ];
  if (extra.length) client.grant_types = [...client.grant_types, ...extra];
  const grants = new Map(); // sub (or client_id) -> [{grant_type, resource, jti}]
  const record = (who, entry) => {
    if (!grants.has(who)) grants.set(who, []);
    grants.get(who).push(entry);
  };
  const info = (resource) => ({
    scope: servers.get(resource),
    audience: resource,
    accessTokenTTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  });
  const jwtPayload = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));

  async function verifyOwnAccessToken(token) {
    const parts = typeof token === 'string' ? token.split('.') : [];
    if (parts.length !== 3) throw new errors.InvalidGrant('subject_token is not a JWT');
    let header;
    let claims;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url'));
      claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
    } catch {
      throw new errors.InvalidGrant('subject_token is not a JWT');
    }
    if (header.alg !== 'RS256' || header.typ !== 'at+jwt') {
      throw new errors.InvalidGrant('subject_token is not an RS256 JWT access token');
    }
    const jwks = await (await globalThis.fetch(`${issuer}/jwks`)).json();
    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    if (!jwk) throw new errors.InvalidGrant('subject_token signed by an unknown key');
    const ok = createVerify('RSA-SHA256')
      .update(`${parts[0]}.${parts[1]}`)
      .verify(createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(parts[2], 'base64url'));
    if (!ok) throw new errors.InvalidGrant('subject_token signature invalid');
    if (claims.iss !== issuer) throw new errors.InvalidGrant('subject_token from another issuer');
    if (!(claims.exp > Date.now() / 1000)) throw new errors.InvalidGrant('subject_token expired');
    return claims;
  }

  async function tokenExchange(ctx) {
    const { params, client: caller } = ctx.oidc;
    if (params.subject_token_type !== tokenType) {
      throw new errors.InvalidRequest('subject_token_type must be an access token');
    }
    if (params.requested_token_type && params.requested_token_type !== tokenType) {
      throw new errors.InvalidRequest('only access tokens are issued');
    }
    const subject = await verifyOwnAccessToken(params.subject_token);
    if (subject.client_id !== caller.clientId || subject.sub === caller.clientId) {
      throw new errors.InvalidGrant('subject_token is not a user token of this client');
    }
    const { resource } = params;
    if (typeof resource !== 'string' || !servers.has(resource)) {
      throw new errors.InvalidTarget('one registered resource is required');
    }
    const allowed = new Set(servers.get(resource).split(' '));
    const asked = params.scope ? params.scope.split(' ') : [...allowed];
    const scope = asked.filter((s) => allowed.has(s)).join(' ') || undefined;
    const at = new provider_.AccessToken({
      accountId: subject.sub, client: caller, gty: 'token_exchange', scope,
    });
    at.resourceServer = new provider_.ResourceServer(resource, info(resource));
    ctx.oidc.entity('AccessToken', at);
    const value = await at.save();
    record(subject.sub, { grant_type: exchangeGrant, resource, jti: jwtPayload(value).jti });
    log('token', { grant_type: exchangeGrant, sub: subject.sub, resource, status: 200 });
    ctx.body = {
      access_token: value,
      issued_token_type: tokenType,
      token_type: 'Bearer',
      expires_in: at.expiration,
      scope,
    };
  }

  let provider_;
  return {
    servers,
    info,
    clientCredentials: opts['client-credentials'],
    install(provider) {
      provider_ = provider;
      if (opts['token-exchange']) {
        provider.registerGrantType(exchangeGrant, tokenExchange, [
          'subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'scope',
          'audience', 'actor_token', 'actor_token_type',
        ]);
      }
      if (!servers.size && !extra.length) return;
      // Records the grants these features are about: per sub, which resource it named.
      provider.use(async (ctx, next) => {
        if (ctx.method === 'GET' && ctx.path === '/_test/grants') {
          ctx.set('cache-control', 'no-store');
          ctx.body = { grants: grants.get(String(ctx.query.sub)) || [] };
          return;
        }
        await next();
        const grantType = ctx.oidc?.route === 'token' && ctx.status === 200
          ? ctx.oidc.params?.grant_type : undefined;
        if (grantType !== 'client_credentials' && grantType !== 'refresh_token') return;
        const entities = ctx.oidc.entities || {};
        const who = grantType === 'client_credentials'
          ? ctx.oidc.client.clientId : entities.RefreshToken?.accountId;
        const value = ctx.body?.access_token;
        const jti = typeof value === 'string' && value.split('.').length === 3
          ? jwtPayload(value).jti : undefined;
        if (who) record(who, { grant_type: grantType, resource: ctx.oidc.params.resource, jti });
      });
    },
  };
}
