// A real external OpenID provider for examroom's integration tests: panva's oidc-provider, bound to
// 127.0.0.1. Usage: node op.mjs PORT JWKS_FILE STAFF_REDIRECT_URI
// The signing keys come from JWKS_FILE (private JWKs written by the test), so a test can rotate them by
// restarting the provider with another file. Every request is printed as "request METHOD PATH" so tests can
// count how often the broker fetched the key set.
import fs from 'node:fs';
import Provider from 'oidc-provider';

const [port, jwksFile, staffRedirect] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const jwks = JSON.parse(fs.readFileSync(jwksFile, 'utf8'));

const groupsFor = (id) => {
  if (id.startsWith('nurse')) return ['g-nurses'];
  if (id.startsWith('compliance')) return ['g-compliance'];
  if (id.startsWith('helpdesk')) return ['g-helpdesk'];
  return [];
};

const provider = new Provider(issuer, {
  jwks,
  clients: [
    {
      client_id: 'examroom-staff',
      client_secret: 'staff-secret-for-tests',
      redirect_uris: [staffRedirect],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    {
      client_id: 'clinic-portal',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1:9/portal-callback'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    {
      client_id: 'other-app',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1:9/other-callback'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    {
      client_id: 'emr',
      client_secret: 'emr-secret-for-tests',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'recording:pause-others',
    },
  ],
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: `Test ${id}`, groups: groupsFor(id) };
      },
    };
  },
  claims: { openid: ['sub'], profile: ['name', 'groups'] },
  scopes: ['openid', 'offline_access', 'recording:pause-others'],
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, client) => (client.clientId === 'emr' ? 'urn:examroom:api' : undefined),
      useGrantedResource: () => false,
      getResourceServerInfo: () => ({
        scope: 'recording:pause-others',
        audience: 'urn:examroom:api',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
      }),
    },
  },
  ttl: { IdToken: 3600, AccessToken: 600 },
});
provider.proxy = false;
provider.use(async (ctx, next) => {
  console.log(`request ${ctx.method} ${ctx.path}`);
  await next();
});
provider.listen(Number(port), '127.0.0.1', () => console.log(`listening ${issuer}`));
