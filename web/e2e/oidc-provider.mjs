// A real OpenID Connect provider for the single sign-on tests: the certified `oidc-provider`
// package (installed by scripts/test under .deps/npm), on loopback, with its development
// sign-in pages (any user name signs in). Started by crates/server/tests/sso.rs.
//
//   node web/e2e/oidc-provider.mjs <port> <redirect_uri>
//
// Prints `ready <issuer>` once listening. For the refusal tests a small control path changes
// its behaviour: `POST /__test/mode?codeTtl=<s>` (authorization code lifetime) and
// `POST /__test/mode?resign=1` (ID tokens re-signed with a key the provider does not
// publish, as a forger would).

import { createRequire } from "node:module";
import { generateKeyPairSync } from "node:crypto";

const require = createRequire(process.env.OIDC_PROVIDER_DIR ? `${process.env.OIDC_PROVIDER_DIR}/` : import.meta.url);
const { default: Provider } = await import(require.resolve("oidc-provider"));
const { SignJWT, decodeProtectedHeader, decodeJwt } = await import(require.resolve("jose"));

const port = Number(process.argv[2]);
const redirectUri = process.argv[3];
const issuer = `http://127.0.0.1:${port}`;

const mode = { codeTtl: 60, resign: false, holdCodes: false };
const forgerKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "ironmesh",
      client_secret: "ironmesh-client-secret",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: `subject-${id}`,
          preferred_username: id,
          name: `Test ${id}`,
          email: `${id}@example.test`,
          groups: id.startsWith("ops") ? ["ops"] : ["staff"],
        };
      },
    };
  },
  claims: {
    openid: ["sub"],
    profile: ["preferred_username", "name"],
    email: ["email"],
    groups: ["groups"],
  },
  scopes: ["openid", "profile", "email", "groups"],
  // The relying party reads everything from the ID token.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  ttl: { AuthorizationCode: () => mode.codeTtl },
  cookies: { keys: ["ironmesh-test-cookie-key"] },
});

// The test's control path, ahead of the provider's own routes.
provider.use(async (ctx, next) => {
  if (ctx.path === "/__test/mode" && ctx.method === "POST") {
    if (ctx.query.codeTtl) mode.codeTtl = Number(ctx.query.codeTtl);
    if (ctx.query.resign) mode.resign = ctx.query.resign === "1";
    if (ctx.query.holdCodes) mode.holdCodes = ctx.query.holdCodes === "1";
    ctx.body = mode;
    return;
  }
  await next();
  if (mode.holdCodes && String(ctx.response.get("location")).includes("code=")) {
    await new Promise((r) => setTimeout(r, 2500));
  }
  if (mode.resign && ctx.path === "/token" && ctx.body && ctx.body.id_token) {
    const header = decodeProtectedHeader(ctx.body.id_token);
    const claims = decodeJwt(ctx.body.id_token);
    ctx.body.id_token = await new SignJWT(claims)
      .setProtectedHeader({ alg: header.alg, kid: header.kid })
      .sign(forgerKey);
  }
});

provider.listen(port, "127.0.0.1", () => console.log(`ready ${issuer}`));
