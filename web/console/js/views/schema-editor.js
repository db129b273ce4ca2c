// A resource's schema, edited as a table of fields (platform admins): add a
// field, rename one (sent as the `rename` map, so its values move with it),
// retype one, remove one, and the options (views, expire_after) as JSON. The
// PUT carries the whole new definition. A change the records cannot take is
// refused by the API with 409 and the field and count in its message, which
// is shown as it comes; 422 shows each bad part of the definition.

import * as api from '../api.js';
import { h, fill, select } from '../dom.js';
import { messages, onSubmit, heading, action } from '../ui.js';

const TYPES = ['string', 'text', 'integer', 'number', 'boolean', 'timestamp', 'json', 'vector'];
const NAME = /^[a-z][a-z0-9_]{0,62}$/;

export async function renderSchemaEditor(root, ctx, service, resource) {
    const msgs = messages();
    fill(root, heading(`Schema of ${service}/${resource}`), h('p', { class: 'loading', text: 'Loading…' }));
    const res = await api.get(api.path`/v1/svc/${service}/schema`);
    if (!ctx.live()) return;
    const def = (res.data.resources ?? {})[resource] ?? null;
    draw(def);

    function draw(current) {
        const rows = Object.entries(current?.fields ?? {}).map(([name, spec]) => fieldRow(name, spec));
        const tbody = h('tbody', {}, rows.map((r) => r.tr));
        const options = h('textarea', {
            name: 'options', rows: 5, class: 'code',
            value: JSON.stringify(current?.options ?? { views: {} }, null, 2),
        });
        const form = h('form', { class: 'schema-editor' },
            h('div', { class: 'table-wrap' }, h('table', {},
                h('thead', {}, h('tr', {}, ['Name', 'Type', 'Required', 'PII', 'Index', 'Default (JSON)', 'Remove']
                    .map((t) => h('th', { scope: 'col', text: t })))),
                tbody)),
            action('Add field', msgs, async () => {
                const r = fieldRow(null, { type: 'string' });
                rows.push(r);
                tbody.append(r.tr);
                r.nameInput.focus();
            }, { name: 'add-field' }),
            h('label', { class: 'field' }, h('span', { class: 'label', text: 'Options (JSON): views, expire_after' }), options),
            h('button', { type: 'submit', class: 'primary', text: current ? 'Save schema' : 'Create resource' }));
        onSubmit(form, msgs, async () => {
            const body = buildBody(rows, options.value);
            const saved = await api.put(api.path`/v1/svc/${service}/schema/${resource}`, body);
            draw(saved.data);
            msgs.say(`Saved: ${service}/${resource} is at version ${saved.data.version}.`);
        });
        fill(root,
            heading(`Schema of ${service}/${resource}`, current
                ? `Version ${current.version}, ${ctx.mode} mode. Renaming a field keeps its values; removing one drops them.`
                : `A new resource in ${ctx.mode} mode: add its fields.`),
            msgs.el, form,
            current ? h('p', {}, h('a', { href: `#/data/${encodeURIComponent(service)}/${encodeURIComponent(resource)}`, text: 'Its records' })) : null);
    }
}

// One editable field. orig: its name in the stored schema (null when new).
function fieldRow(orig, spec) {
    const vec = /^vector\((\d+)\)$/.exec(spec.type ?? '');
    const nameInput = h('input', { type: 'text', name: 'field-name', value: orig ?? '', required: true, 'aria-label': 'Field name' });
    const type = select('field-type', TYPES, vec ? 'vector' : spec.type);
    type.setAttribute('aria-label', 'Field type');
    const dim = h('input', { type: 'number', name: 'field-dim', min: 1, max: 4096, value: vec ? vec[1] : '3', 'aria-label': 'Dimensions', hidden: !vec });
    type.addEventListener('change', () => { dim.hidden = type.value !== 'vector'; });
    const flag = (k) => h('input', { type: 'checkbox', name: `field-${k}`, checked: spec[k] === true, 'aria-label': k });
    const required = flag('required'), pii = flag('pii'), index = flag('index');
    const def = h('input', {
        type: 'text', name: 'field-default', class: 'code', 'aria-label': 'Default',
        value: spec.default === undefined || spec.default === null ? '' : JSON.stringify(spec.default),
    });
    const removed = h('input', { type: 'checkbox', name: 'field-remove', 'aria-label': 'Remove field' });
    const tr = h('tr', {}, h('td', {}, nameInput, orig ? h('span', { class: 'hint orig', text: `was ${orig}` }) : null),
        h('td', {}, type, dim), h('td', {}, required), h('td', {}, pii), h('td', {}, index), h('td', {}, def), h('td', {}, removed));
    const wasHint = tr.querySelector('.orig');
    if (wasHint) {
        wasHint.hidden = true;
        nameInput.addEventListener('input', () => { wasHint.hidden = nameInput.value.trim() === orig; });
    }
    removed.addEventListener('change', () => tr.classList.toggle('removed', removed.checked));
    return {
        tr, nameInput,
        read() {
            const name = nameInput.value.trim();
            // keep what this editor does not show (a vector's metric) as it was
            const out = { ...spec };
            delete out.default;
            out.type = type.value === 'vector' ? `vector(${dim.value})` : type.value;
            out.required = required.checked;
            out.pii = pii.checked;
            out.index = index.checked;
            if (def.value.trim() !== '') out.default = parseJson(def.value, `the default of ${name || 'a new field'}`);
            if (!out.type.startsWith('vector')) delete out.metric;
            return { orig, name, spec: out, removed: removed.checked };
        },
    };
}

function parseJson(text, what) {
    try {
        return JSON.parse(text);
    } catch {
        throw new Error(`${what} is not JSON (a string needs quotes: "lead").`);
    }
}

// The PUT body from the rows; mistakes the console can see are refused here,
// the rest is the API's to judge.
function buildBody(rows, optionsText) {
    const fields = {};
    const rename = {};
    for (const r of rows.map((row) => row.read())) {
        if (r.removed) continue;
        if (!NAME.test(r.name)) throw new Error(`“${r.name}” is not a field name (lower-case letters, digits, _).`);
        if (fields[r.name]) throw new Error(`Two fields are named ${r.name}.`);
        fields[r.name] = r.spec;
        if (r.orig && r.orig !== r.name) rename[r.orig] = r.name;
    }
    const body = { fields };
    if (Object.keys(rename).length) body.rename = rename;
    if (optionsText.trim() !== '') body.options = parseJson(optionsText, 'Options');
    return body;
}
