// Sends every request example of the document to the running stack, and
// every other operation of its fixed routes once, and checks each answer: a
// status the document lists for that operation, and a body that holds to the
// schema it gives for that status (the error envelope for the errors).
// The examples come from the document alone (components.examples, attached
// by schema name): no list of routes here. What an example cannot know is
// filled in from the answers before it: a path parameter without an example
// ({id}, {user_id}) from the last object created or listed under that path,
// a body field ending in _token (refresh_token, invite_token) from the
// answers that carried one, each used once, by the first request that waits
// for one. An operation waits until those exist; deletes, and logout, come
// last, so nothing they remove is missing for the rest. Requests run as the
// caller whose token the script is given, except those that act on the
// caller's own account (AS below): they run as one of the examples' people,
// with the token the answer to that person's signup or login carried. A
// body's token from a message (a reset, a verification) is the one the
// deployment's mailer would send, read from GET /v1/admin/events. An
// operation without a body whose path parameter nothing answered (the
// caller's only session, an account to erase) is reported as skipped.
// Usage: node openapi_examples.js URL TOKEN   (TOKEN: a platform admin's)
// Prints TAP lines (ok / not ok); exits 1 when any failed.
const SwaggerParser = require("@apidevtools/swagger-parser");
const Ajv2020 = require("ajv/dist/2020"); // swagger-parser's own, locked in tests/tools

const [base, adminToken] = process.argv.slice(2);
const METHODS = ["get", "put", "post", "patch", "delete"];
let failed = 0;

function report(ok, name, detail) {
    console.log(`${ok ? "ok" : "not ok"} - ${name}`);
    if (!ok) {
        failed++;
        if (detail !== undefined) console.log(`#   ${String(detail).slice(0, 600).replace(/\n/g, "\n#   ")}`);
    }
}

// Operations on one's own account, and whose (the examples' people, by email)
const AS = {
    post_v1_auth_invites_accept: "ada@example.com",     // the invite example names her
    post_v1_auth_password: "ada@example.com",
    post_v1_auth_logout: "ada@example.com",
    delete_v1_auth_me: "grace@example.com",             // PasswordOnly's password is hers
};
// Last, in this order: they end the person's sessions.
const FINALLY = ["post_v1_auth_logout", "post_v1_auth_password_reset"];
// A body's "token" from the message of this kind.
const MAILED = {
    post_v1_auth_password_reset: "auth.password_reset_requested",
    post_v1_auth_verify: "auth.email_verification_requested",
};
const state = { ids: {}, tokens: {}, people: {}, mailed: {} };

// "/v1/svc/{service}/{resource}/{id}" with params → its collection so far, filled
function fill(path, params, upto) {
    return path.slice(0, upto).replace(/\{([^}]+)\}/g, (_, n) => params[n] ?? `{${n}}`);
}

// The path with its parameters, or null while one cannot be filled yet.
function pathFor(unit) {
    const params = {};
    for (const p of unit.op.parameters ?? []) {
        if (p.in !== "path") continue;
        if (p.example !== undefined) {
            params[p.name] = p.example;
            continue;
        }
        const at = unit.path.indexOf(`{${p.name}}`);
        const coll = fill(unit.path, params, at - 1);
        const v = state.ids[coll]?.[p.name];
        if (v === undefined) return null;
        params[p.name] = v;
    }
    return fill(unit.path, params, unit.path.length);
}

// The example's body with its _token fields filled, or null while one is unknown.
function bodyFor(unit) {
    if (unit.body === undefined) return undefined;
    const body = structuredClone(unit.body);
    const kind = MAILED[unit.op.operationId];
    for (const k of Object.keys(body))
        if (k.endsWith("_token") && (state.tokens[k] ?? []).length === 0) return null;
    if (kind !== undefined && "token" in body && (state.mailed[kind] ?? []).length === 0) return null;
    for (const k of Object.keys(body))
        if (k.endsWith("_token")) body[k] = state.tokens[k].shift();
    if (kind !== undefined && "token" in body) body.token = state.mailed[kind].shift();
    return body;
}

// What an answer tells the operations after it.
function learn(method, path, sent, status, body) {
    if (status < 200 || status > 299 || body === null || typeof body !== "object") return;
    for (const [k, v] of Object.entries(body))
        if (k.endsWith("_token") && k !== "access_token" && typeof v === "string") (state.tokens[k] ??= []).push(v);
    if (typeof sent?.email === "string" && typeof body.access_token === "string")
        state.people[sent.email] = body.access_token;
    const ids = (state.ids[path] ??= {});
    const from = method === "post" ? [body] : Array.isArray(body.data) ? body.data : [];
    for (const item of from) {
        if (item === null || typeof item !== "object" || item.current === true) continue; // never the caller's own session
        for (const k of ["id", "user_id"])
            if (typeof item[k] === "string") ids[k] = item[k];
        if (typeof item.kind === "string" && typeof item.data?.token === "string")
            (state.mailed[item.kind] ??= []).push(item.data.token);
    }
}

async function send(unit, path, body) {
    const headers = {};
    const open = Array.isArray(unit.op.security) && unit.op.security.every((s) => Object.keys(s).length === 0);
    const who = AS[unit.op.operationId];
    const token = who !== undefined ? state.people[who] : adminToken;
    if (!open) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(base + path, {
        method: unit.method.toUpperCase(), headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = text.length > 0 ? JSON.parse(text) : null; } catch { json = undefined; }
    return { status: res.status, text, json, type: res.headers.get("content-type") ?? "" };
}

async function main() {
    const raw = await (await fetch(`${base}/openapi.json`)).json();
    const doc = await SwaggerParser.dereference(structuredClone(raw));
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    const compiled = new Map();
    const validator = (schema) => {
        if (!compiled.has(schema)) compiled.set(schema, ajv.compile(schema));
        return compiled.get(schema);
    };

    const units = [];
    let nexamples = 0;
    for (const [path, item] of Object.entries(doc.paths))
        for (const method of METHODS) {
            const op = item[method];
            if (op === undefined) continue;
            const last = FINALLY.indexOf(op.operationId);
            const deferred = last >= 0 || method === "delete";
            if (op.requestBody !== undefined) {
                const exs = op.requestBody.content?.["application/json"]?.examples ?? {};
                report(Object.keys(exs).length > 0, `${method.toUpperCase()} ${path}: its body has an example`);
                for (const [name, ex] of Object.entries(exs)) {
                    units.push({ path, method, op, name, body: ex.value, deferred, last });
                    nexamples++;
                }
            } else {
                units.push({ path, method, op, name: null, body: undefined, deferred, last });
            }
        }

    const pending = units.filter((u) => !u.deferred);
    const later = units.filter((u) => u.deferred && u.last < 0)
        .concat(units.filter((u) => u.last >= 0).sort((a, b) => a.last - b.last));
    let ran2xx = 0, ranExamples = 0;
    for (const phase of [pending, later]) {
        let queue = phase;
        while (queue.length > 0) {
            const waiting = [];
            for (const unit of queue) {
                const path = pathFor(unit);
                const body = bodyFor(unit);
                const who = AS[unit.op.operationId];
                if (path === null || body === null || (who !== undefined && state.people[who] === undefined)) {
                    waiting.push(unit);
                    continue;
                }
                const r = await send(unit, path, body);
                const name = `${unit.method.toUpperCase()} ${unit.path}${unit.name ? ` [example ${unit.name}]` : ""} → ${r.status}`;
                const documented = unit.op.responses[String(r.status)];
                if (documented === undefined) {
                    report(false, `${name}: a status the document lists (${Object.keys(unit.op.responses).join(" ")})`, r.text);
                    continue;
                }
                const schema = documented.content?.["application/json"]?.schema;
                let ok = true, why;
                if (schema !== undefined) {
                    const v = validator(schema);
                    ok = r.json !== undefined && r.json !== null && v(r.json);
                    why = `${ajv.errorsText(v.errors)}; body: ${r.text}`;
                } else if (r.status === 204) {
                    ok = r.text.length === 0;
                    why = "a 204 with a body";
                }
                report(ok, `${name}: documented, the body as its schema says`, why);
                if (r.status >= 200 && r.status < 300) ran2xx++;
                if (unit.name) ranExamples++;
                learn(unit.method, path, body, r.status, r.json);
                if (unit.name !== null && (r.status < 200 || r.status > 299))
                    report(false, `${name}: the example succeeds`, r.text);
            }
            if (waiting.length === queue.length) {
                for (const u of waiting) {
                    const name = `${u.method.toUpperCase()} ${u.path}${u.name ? ` [example ${u.name}]` : ""}`;
                    if (u.body === undefined && pathFor(u) === null)
                        console.log(`ok - ${name}: not sent # SKIP no answer gave its path parameter`);
                    else
                        report(false, `${name}: sent`, "a path parameter, token or person nothing before it answered");
                }
                break;
            }
            queue = waiting;
        }
    }
    report(ranExamples === nexamples && nexamples > 0,
           `every request example of the document was sent (${ranExamples} of ${nexamples}; ${ran2xx} of ${units.length} requests answered 2xx)`);
}

main().then(() => process.exit(failed === 0 ? 0 : 1), (err) => {
    console.log(`not ok - the examples run: ${err.stack}`);
    process.exit(1);
});
