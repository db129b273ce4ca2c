/* A typed client of one tessera deployment, made by `make client` from the
 * deployment's own GET /openapi.json: schema.d.ts beside this file holds its
 * paths and schemas (openapi-typescript); the requests go through
 * openapi-fetch, the client's one runtime dependency (package.json).
 *
 *   import { createClient } from "./client/index.js";
 *   const api = createClient({ baseUrl: "http://127.0.0.1:8080" });
 *   const { data, error } = await api.POST("/v1/auth/login", { body: { email, password } });
 *   if (data) api.setToken(data.access_token);
 *   const deals = await api.GET("/v1/svc/crm/deals", { params: { query: { stage: "eq.won" } } });
 *
 * Paths, bodies and answers are checked by the compiler: a resource's own
 * paths (/v1/svc/crm/deals) are typed with its fields when the document was
 * fetched with a token of the mode they live in (make client TOKEN=…). */
import createFetchClient, { type Client, type ClientOptions, type Middleware } from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };
/** The document's component schemas: Error, TokenPair, svc_crm_deals, … */
export type Schemas = components["schemas"];
/** Every answer that is not a 2xx carries this envelope (DESIGN §5). */
export type ApiError = Schemas["Error"];

export interface TesseraClientOptions extends ClientOptions {
    /** An access token or an API key, sent as `Authorization: Bearer …`. */
    token?: string;
    /** A JWT's mode, sent as `Tessera-Mode` (an API key's is its prefix's);
     * not `mode`, which is fetch's own option. */
    tesseraMode?: "test" | "live";
}

export type TesseraClient = Client<paths> & {
    /** The token sent from now on (undefined: none, e.g. after logout). */
    setToken(token: string | undefined): void;
    setMode(mode: "test" | "live" | undefined): void;
};

export function createClient(options: TesseraClientOptions = {}): TesseraClient {
    const { token, tesseraMode, ...rest } = options;
    let bearer = token;
    let tmode = tesseraMode;
    const client = createFetchClient<paths>(rest);
    /* a header the caller set on one request wins over the client's */
    const auth: Middleware = {
        onRequest({ request }) {
            if (bearer !== undefined && !request.headers.has("Authorization"))
                request.headers.set("Authorization", `Bearer ${bearer}`);
            if (tmode !== undefined && !request.headers.has("Tessera-Mode"))
                request.headers.set("Tessera-Mode", tmode);
            return request;
        },
    };
    client.use(auth);
    return Object.assign(client, {
        setToken(t: string | undefined) {
            bearer = t;
        },
        setMode(m: "test" | "live" | undefined) {
            tmode = m;
        },
    });
}

export default createClient;
