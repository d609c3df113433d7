// A real OpenID Connect provider (oidc-provider) for claimgate's end-to-end tests.
// Loopback only. Usage: node server.js PORT
// Clients (client_credentials): "app" obtains tokens; "gateway" introspects them.
// Resource indicators decide the access-token format: a resource containing "jwt" gets a JWT
// access token (RS256, verifiable with the provider's jwks_uri), any other an opaque one.
// Every token carries the custom claim tenant=acme. GET /__stats reports how many
// introspection requests the provider has answered, so tests can count them.
// OAUTH2 login flow: the confidential web client "web" (authorization code, PKCE optional,
// RP-initiated logout) accepts any loopback redirect and post-logout URI (the gateways' ports
// are only known at run time); dev interactions (any login, any password) are on.
// POST /__token-mode?mode=500|garbage|normal makes the token endpoint fail on purpose, for
// the tests of a provider that answers the code exchange badly.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 0);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-rs256', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [
    { client_id: 'app', client_secret: 'app-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'orders:read orders:admin' },
    { client_id: 'gateway', client_secret: 'gateway-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    { client_id: 'web', client_secret: 'web-secret', grant_types: ['authorization_code'], response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'], post_logout_redirect_uris: ['http://127.0.0.1/'] },
  ],
  jwks: { keys: [jwk] },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'api://orders',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => ({
        scope: 'orders:read orders:admin',
        audience: resource,
        accessTokenTTL: 600,
        accessTokenFormat: resource.includes('jwt') ? 'jwt' : 'opaque',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  extraTokenClaims: async () => ({ tenant: 'acme' }),
  scopes: ['orders:read', 'orders:admin'],
});

const loopback = (uri) => /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?\//.test(uri);
const { redirectUriAllowed, postLogoutRedirectUriAllowed } = provider.Client.prototype;
provider.Client.prototype.redirectUriAllowed = function (uri) {
  return (this.clientId === 'web' && loopback(uri)) || redirectUriAllowed.call(this, uri);
};
provider.Client.prototype.postLogoutRedirectUriAllowed = function (uri) {
  return (this.clientId === 'web' && loopback(uri)) || postLogoutRedirectUriAllowed.call(this, uri);
};

let introspections = 0;
let tokenMode = 'normal';
provider.use(async (ctx, next) => {
  if (ctx.path === '/__stats') {
    ctx.body = { introspections };
    return;
  }
  if (ctx.path === '/__token-mode' && ctx.method === 'POST') {
    tokenMode = new URLSearchParams(ctx.querystring).get('mode') || 'normal';
    ctx.body = { tokenMode };
    return;
  }
  if (ctx.path === '/token' && ctx.method === 'POST' && tokenMode !== 'normal') {
    if (tokenMode === '500') {
      ctx.status = 500;
      ctx.body = { error: 'server_error' };
    } else {
      ctx.status = 200;
      ctx.type = 'application/json';
      ctx.body = '{"access_token": "not json';
    }
    return;
  }
  if (ctx.path === '/token/introspection' && ctx.method === 'POST') introspections += 1;
  await next();
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
