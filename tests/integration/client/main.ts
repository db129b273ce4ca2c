/* 82_client.sh's program: the generated client (build/client, `make client`)
 * against the running stack, compiled with tsc --strict and run under Node.
 * login → create a deal → list the deals → read it, each answer checked, and
 * the mode header; the lines marked @ts-expect-error fail the compile when the
 * document's types are looser than the resource's definition (a wrong
 * document, a wrong client).
 *   node main.js BASE_URL EMAIL PASSWORD */
import { createClient, type Schemas } from "./client/index.js";

const [base, email, password] = process.argv.slice(2);
let failed = 0;
function check(name: string, ok: boolean, detail?: unknown): void {
    console.log(`${ok ? "ok" : "not ok"} - client: ${name}`);
    if (!ok) {
        failed++;
        if (detail !== undefined) console.log(`#   ${JSON.stringify(detail).slice(0, 400)}`);
    }
}

const api = createClient({ baseUrl: base });

const login = await api.POST("/v1/auth/login", { body: { email, password } });
check("POST /v1/auth/login → 200 with a token pair", login.response.status === 200 && login.data !== undefined &&
      login.data.token_type === "Bearer" && login.data.access_token.length > 0, login.error);
if (login.data === undefined) process.exit(1);
api.setToken(login.data.access_token);

const title = `client deal ${process.pid}`;
/* stage has a default: a create may leave it out */
const created = await api.POST("/v1/svc/crm/deals", { body: { title, amount: 1234.5 } });
const deal: Schemas["svc_crm_deals"] | undefined = created.data;
check("POST /v1/svc/crm/deals → 201, typed as svc_crm_deals", created.response.status === 201 && deal !== undefined &&
      deal.title === title && deal.amount === 1234.5 && deal.stage === "lead" && deal.version === 1, created.error);
if (deal === undefined) process.exit(1);
// @ts-expect-error: a deal has no such field (the record schema is closed)
void deal.no_such_field;
// @ts-expect-error: amount is a number
const wrong: Schemas["svc_crm_deals_Input"] = { title: "x", amount: "12" };
void wrong;
// @ts-expect-error: title and amount are required, with no default
const missing: Schemas["svc_crm_deals_Input"] = { stage: "won" };
void missing;

const list = await api.GET("/v1/svc/crm/deals", { params: { query: { title: `eq.${title}`, limit: 10 } } });
const rows = list.data?.data ?? [];
check("GET /v1/svc/crm/deals?title=eq.… → 200 with the deal just made", list.response.status === 200 &&
      rows.length === 1 && rows[0].id === deal.id && rows[0].amount === 1234.5, list.error ?? list.data);

const one = await api.GET("/v1/svc/crm/deals/{id}", { params: { path: { id: deal.id } } });
check("GET /v1/svc/crm/deals/{id} → 200, the same deal", one.response.status === 200 && one.data?.id === deal.id,
      one.error);

const missingRec = await api.GET("/v1/svc/crm/deals/{id}", {
    params: { path: { id: "00000000-0000-4000-8000-000000000000" } },
});
check("an unknown id → 404 with the error envelope, typed", missingRec.response.status === 404 &&
      missingRec.error?.error.code === "not_found" && missingRec.error.error.request_id.length > 0, missingRec.error);

const live = createClient({ baseUrl: base, token: login.data.access_token, tesseraMode: "live" });
const me = await live.GET("/v1/auth/me");
check("a client made for live mode sends Tessera-Mode: live", me.response.status === 200 && me.data?.mode === "live",
      me.error ?? me.data);

process.exit(failed === 0 ? 0 : 1);
