// A real OpenID Connect provider (oidc-provider) for claimgate's end-to-end tests.
// Loopback only. Usage: node server.js PORT
// Clients (client_credentials): "app" obtains tokens; "gateway" introspects them.
// Resource indicators decide the access-token format: a resource containing "jwt" gets a JWT
// access token (RS256, verifiable with the provider's jwks_uri), any other an opaque one.
// Every token carries the custom claim tenant=acme. GET /__stats reports how many
// introspection requests the provider has answered, so tests can count them.
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
  ],
  jwks: { keys: [jwk] },
  features: {
    devInteractions: { enabled: false },
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

let introspections = 0;
provider.use(async (ctx, next) => {
  if (ctx.path === '/__stats') {
    ctx.body = { introspections };
    return;
  }
  if (ctx.path === '/token/introspection' && ctx.method === 'POST') introspections += 1;
  await next();
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
