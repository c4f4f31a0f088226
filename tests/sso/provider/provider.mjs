// A real OpenID provider (panva/oidc-provider) for govern's SSO tests, on loopback only.
// Env: PORT, CLIENTS (JSON list of client metadata), ACCOUNTS (JSON: login -> claims, plus amr/acr).
// The sign-in page is a one-field form (the login name); POST /test/accounts replaces the accounts
// so a test can change someone's groups between two sign-ins. Prints "ready <issuer>" when listening.
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
let accounts = JSON.parse(process.env.ACCOUNTS || '{}');
const clients = JSON.parse(process.env.CLIENTS || '[]');

const provider = new Provider(issuer, {
  clients,
  claims: { openid: ['sub', 'acr', 'amr', 'auth_time'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
  conformIdTokenClaims: false, // the granted claims go into the id token, as Okta and Entra ID do
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
  ttl: { IdToken: Number(process.env.ID_TOKEN_TTL || 3600) },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    const { amr, acr, ...claims } = account;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  // Consent is implied: every client of this test provider is first-party.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});

const app = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    if (req.url === '/test/accounts' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      accounts = JSON.parse(body);
      res.end('ok');
      return;
    }
    if (req.url.startsWith('/interaction/')) {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(`<!doctype html><title>Test provider</title><form method="post" action="/interaction/${details.uid}/login">`
          + '<label>Login <input name="login" autofocus></label><button>Sign in</button></form>');
        return;
      }
      let body = '';
      for await (const chunk of req) body += chunk;
      const login = new URLSearchParams(body).get('login') || '';
      const account = accounts[login];
      const result = account
        ? { login: { accountId: login, amr: account.amr || ['pwd'], acr: account.acr } }
        : { error: 'access_denied', error_description: 'unknown login' };
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
      return;
    }
    app(req, res);
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
});
server.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
