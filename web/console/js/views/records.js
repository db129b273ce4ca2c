// A resource's records: a table with the list's filters (`field=op.value`),
// an order, a page size and keyset paging (the answer's next_cursor is the
// next request's cursor; the cursors of earlier pages are kept to go back),
// create / edit / delete (If-Match: the record's version), and below it the
// resource's views (CQRS read models) and vector search.

import * as api from '../api.js';
import { h, fill, table, when, display, select, field } from '../dom.js';
import { messages, action, onSubmit, confirmed, heading } from '../ui.js';
import { recordForm } from './record-form.js';
import { parseFilters } from './query.js';

const SYSTEM_ORDER = ['id', 'created_at', 'updated_at'];
const ORDERABLE = new Set(['string', 'integer', 'number', 'boolean', 'timestamp']);

export async function renderRecords(root, ctx, service, resource) {
    fill(root, heading(`${service}/${resource}`), h('p', { class: 'loading', text: 'Loading…' }));
    const schema = await api.get(api.path`/v1/svc/${service}/schema`);
    if (!ctx.live()) return;
    const def = (schema.data.resources ?? {})[resource];
    if (!def) {
        fill(root, heading(`${service}/${resource}`),
            h('p', { class: 'empty', text: `${service} has no resource ${resource} in ${ctx.mode} mode.` }),
            ctx.platformAdmin ? h('a', { href: `#/schema/${encodeURIComponent(service)}/${encodeURIComponent(resource)}`, text: 'Define it' }) : null);
        return;
    }
    const fields = def.fields ?? {};
    const base = api.path`/v1/svc/${service}/${resource}`;
    const msgs = messages();
    const editor = h('div', { class: 'editor' });
    const list = h('div', { class: 'records' });
    const pager = h('div', { class: 'pager' });

    // --- the query controls
    const orderable = [...SYSTEM_ORDER, ...Object.entries(fields).filter(([, f]) => ORDERABLE.has(f.type) && !f.pii).map(([n]) => n)];
    const controls = h('form', { class: 'inline list-controls' },
        field('Filters', h('input', { type: 'text', name: 'filters', placeholder: 'stage=eq.won&amount=gte.100', size: 36 })),
        field('Order', select('order', orderable.flatMap((n) => [[`${n}.asc`, `${n} ↑`], [`${n}.desc`, `${n} ↓`]]), 'id.asc')),
        field('Per page', select('limit', ['10', '20', '50', '100'], '20')),
        h('button', { type: 'submit', class: 'primary', text: 'Apply' }));
    let query = null;          // the URLSearchParams of the shown list, without cursor
    let cursors = [null];      // cursors[i] loads page i of that query
    let reload = () => show(0); // after a write: the page on screen again
    onSubmit(controls, msgs, async () => {
        const q = new URLSearchParams();
        for (const [k, v] of parseFilters(controls.elements.filters.value)) q.append(k, v);
        q.set('order', controls.elements.order.value);
        q.set('limit', controls.elements.limit.value);
        query = q;
        cursors = [null];
        await show(0);
    });

    async function show(page) {
        const q = new URLSearchParams(query);
        if (cursors[page]) q.set('cursor', cursors[page]);
        const res = await api.get(base, { query: q });
        if (!ctx.live()) return;
        cursors.length = page + 1;
        if (res.data.next_cursor) cursors.push(res.data.next_cursor);
        const rows = res.data.data ?? [];
        fill(list, table([
            { label: 'id', cell: (r) => shortId(r.id) },
            ...Object.entries(fields).map(([n, f]) => ({ label: n, cell: (r) => shown(f, r[n]), class: cellClass(f) })),
            { label: 'version', cell: (r) => r.version, class: 'num' },
            { label: 'updated', cell: (r) => when(r.updated_at), class: 'nowrap' },
            {
                label: '', cell: (r) => h('span', { class: 'row-actions' },
                    action('Edit', msgs, async () => edit(r), { name: 'edit-record' }),
                    action('Delete', msgs, () => remove(r), { kind: 'danger', name: 'delete-record' })),
            },
        ], rows, { empty: 'No records match.' }));
        fill(pager,
            page > 0 ? action('Previous', msgs, () => show(page - 1), { name: 'prev' }) : null,
            h('span', { class: 'page-no', text: `Page ${page + 1} · ${rows.length} record(s)` }),
            cursors.length > page + 1 ? action('Next', msgs, () => show(page + 1), { name: 'next' }) : null);
        reload = () => show(page);
    }

    function create() {
        const form = recordForm(fields, null);
        const el = h('form', { class: 'record-edit' }, h('h2', { text: 'New record' }), form.el,
            h('button', { type: 'submit', class: 'primary', text: 'Create' }),
            action('Cancel', msgs, async () => fill(editor)));
        onSubmit(el, msgs, async () => {
            const res = await api.post(base, form.body());
            fill(editor);
            msgs.say(`Created ${res.data.id}.`);
            await reload();
        });
        fill(editor, el);
    }

    async function edit(r) {
        // the form starts from the record as it is now, with its version
        const fresh = await api.get(`${base}/${encodeURIComponent(r.id)}`);
        const version = fresh.etag ?? fresh.data.version;
        const form = recordForm(fields, fresh.data);
        const el = h('form', { class: 'record-edit' }, h('h2', { text: `Edit ${fresh.data.id} (version ${version})` }), form.el,
            h('button', { type: 'submit', class: 'primary', text: 'Save' }),
            action('Cancel', msgs, async () => fill(editor)));
        onSubmit(el, msgs, async () => {
            const body = form.body();
            if (Object.keys(body).length === 0) throw new Error('Nothing changed.');
            const res = await api.patch(`${base}/${encodeURIComponent(fresh.data.id)}`, body, { ifMatch: version });
            fill(editor);
            msgs.say(`Saved ${res.data.id}: version ${res.data.version}.`);
            await reload();
        });
        fill(editor, el);
    }

    async function remove(r) {
        if (!confirmed(`Delete record ${r.id}?`)) return;
        await api.del(`${base}/${encodeURIComponent(r.id)}`, { ifMatch: r.version });
        msgs.say(`Deleted ${r.id}.`);
        await reload();
    }

    fill(root,
        heading(`${service}/${resource}`, `Records in ${ctx.mode} mode · schema version ${def.version}`),
        h('p', { class: 'links' },
            h('a', { href: `#/data/${encodeURIComponent(service)}`, text: `← ${service}` }),
            ctx.platformAdmin ? [' · ', h('a', { href: `#/schema/${encodeURIComponent(service)}/${encodeURIComponent(resource)}`, text: 'Edit schema' })] : null),
        controls,
        action('New record', msgs, async () => create(), { name: 'new-record' }),
        msgs.el, editor, list, pager,
        viewsPanel(base, def, ctx),
        searchPanel(base, fields, ctx));

    query = new URLSearchParams({ order: 'id.asc', limit: '20' });
    await show(0);
}

// A field's value in a table: a timestamp as when() shows times (the API
// answers RFC 3339 text in UTC), anything else as display() has it.
function shown(spec, v) {
    return spec && spec.type === 'timestamp' ? when(v) : display(v);
}

function cellClass(spec) {
    return spec && spec.type === 'timestamp' ? 'nowrap' : undefined;
}

// An id's last 8 characters (a v7 UUID starts with its time: the end tells
// records apart), the whole id on hover.
function shortId(id) {
    return h('code', { title: String(id), text: `…${String(id).slice(-8)}` });
}

// The resource's views (options.views): GET …/views/{view} → rows of key, count, sums.
function viewsPanel(base, def, ctx) {
    const names = Object.keys(def.options?.views ?? {});
    if (names.length === 0) return null;
    const msgs = messages();
    const out = h('div');
    const form = h('form', { class: 'inline views' }, field('View', select('view', names, names[0])),
        h('button', { type: 'submit', text: 'Show' }));
    onSubmit(form, msgs, async () => {
        const res = await api.get(`${base}/views/${encodeURIComponent(form.elements.view.value)}`);
        if (!ctx.live()) return;
        const rows = res.data.data ?? [];
        const keys = [...new Set(rows.flatMap((r) => Object.keys(r.key ?? {})))];
        const sums = [...new Set(rows.flatMap((r) => Object.keys(r.sum ?? {})))];
        fill(out,
            h('p', { class: 'hint', text: `as of ${when(res.data.as_of)} · lag ${display(res.data.lag_ms)} ms${res.data.truncated ? ' · truncated' : ''}` }),
            table([
                ...keys.map((k) => ({ label: k, cell: (r) => display(r.key?.[k]) })),
                { label: 'count', cell: (r) => display(r.count), class: 'num' },
                ...sums.map((k) => ({ label: `sum(${k})`, cell: (r) => display(r.sum?.[k]), class: 'num' })),
            ], rows, { empty: 'The view has no rows.' }));
    });
    return h('section', { class: 'panel' }, h('h2', { text: 'Views' }), form, msgs.el, out);
}

// Vector search over the resource's vector fields: POST …/search.
function searchPanel(base, fields, ctx) {
    const vectors = Object.entries(fields).filter(([, f]) => /^vector\(\d+\)$/.test(f.type ?? '')).map(([n]) => n);
    if (vectors.length === 0) return null;
    const msgs = messages();
    const out = h('div');
    const form = h('form', { class: 'search' },
        field('Field', select('field', vectors, vectors[0])),
        field('Vector (JSON array)', h('input', { type: 'text', name: 'vector', class: 'code', required: true, placeholder: '[0.1, 0.2, 0.3]' })),
        field('k', h('input', { type: 'number', name: 'k', min: 1, max: 1000, value: '10' })),
        field('Metric', select('metric', [['', '(the field\'s)'], 'cosine', 'l2', 'inner'], '')),
        field('Filters', h('input', { type: 'text', name: 'filters', placeholder: 'stage=eq.won' })),
        h('button', { type: 'submit', class: 'primary', text: 'Search' }));
    onSubmit(form, msgs, async () => {
        let vector;
        try {
            vector = JSON.parse(form.elements.vector.value);
        } catch {
            throw new Error('The vector is a JSON array of numbers, e.g. [0.1, 0.2, 0.3].');
        }
        const body = { field: form.elements.field.value, vector, k: Number(form.elements.k.value) };
        if (form.elements.metric.value) body.metric = form.elements.metric.value;
        const filter = Object.fromEntries(parseFilters(form.elements.filters.value));
        if (Object.keys(filter).length) body.filter = filter;
        const res = await api.post(`${base}/search`, body);
        if (!ctx.live()) return;
        const cols = Object.keys(fields).filter((n) => !vectors.includes(n));
        fill(out,
            h('p', { class: 'hint', text: `metric ${display(res.data.metric)} · ${res.data.exact ? 'exact' : 'approximate'} · ${display(res.data.strategy)}` }),
            table([
                { label: '_score', cell: (r) => display(r._score), class: 'num' },
                { label: 'id', cell: (r) => shortId(r.id) },
                ...cols.map((n) => ({ label: n, cell: (r) => shown(fields[n], r[n]), class: cellClass(fields[n]) })),
            ], res.data.data ?? [], { empty: 'Nothing matched.' }));
    });
    return h('section', { class: 'panel' }, h('h2', { text: 'Vector search' }), form, msgs.el, out);
}
