// A record's create or edit form, one control per schema field. String and
// text fields take the text as typed; booleans a choice; timestamps RFC 3339
// text (the record's own, as the API answers it: UTC, "…Z") or unix seconds,
// either sent as typed for the API to read; every other type (numbers, json,
// vectors) a JSON value. An edit sends
// only the fields the user changed (an emptied one as null) with If-Match:
// the version the form was filled from, so a record changed meanwhile is a
// 412, not a silent overwrite.

import { h, select } from '../dom.js';

const TEXTUAL = new Set(['string', 'text']);

/**
 * recordForm(fields, record|null) → {el, body()}: body() builds the create
 * body (record null) or the PATCH body (only changed fields), throwing an
 * Error that names a field whose value cannot be read.
 */
export function recordForm(fields, record) {
    const controls = Object.entries(fields).map(([name, spec]) => control(name, spec, record ? record[name] : undefined));
    const el = h('div', { class: 'record-form' }, controls.map((c) => c.label));
    return {
        el,
        body() {
            const out = {};
            for (const c of controls) {
                const v = c.read();
                if (record === null) {
                    if (v !== undefined) out[c.name] = v;
                } else if (JSON.stringify(v ?? null) !== JSON.stringify(record[c.name] ?? null)) {
                    out[c.name] = v ?? null;
                }
            }
            return out;
        },
    };
}

function control(name, spec, value) {
    const type = spec.type ?? 'string';
    const hint = [type === 'timestamp' ? 'timestamp: RFC 3339 (UTC unless it has an offset) or unix seconds' : type,
        spec.required ? 'required' : null, spec.pii ? 'pii' : null].filter(Boolean).join(', ');
    let input, read;
    if (type === 'boolean') {
        input = select(`rec-${name}`, [['', '—'], ['true', 'true'], ['false', 'false']],
            value === true ? 'true' : value === false ? 'false' : '');
        read = () => (input.value === '' ? undefined : input.value === 'true');
    } else if (TEXTUAL.has(type)) {
        input = type === 'text'
            ? h('textarea', { name: `rec-${name}`, rows: 2, value: value ?? '' })
            : h('input', { type: 'text', name: `rec-${name}`, value: value ?? '' });
        read = () => (input.value === '' ? undefined : input.value);
    } else if (type === 'timestamp') {
        input = h('input', {
            type: 'text', name: `rec-${name}`, class: 'code', value: value ?? '',
            placeholder: '2026-12-07T15:31:52Z', autocomplete: 'off', spellcheck: 'false',
        });
        read = () => timestamp(name, input.value);
    } else {
        input = h('input', {
            type: 'text', name: `rec-${name}`, class: 'code',
            value: value === undefined || value === null ? '' : JSON.stringify(value),
            placeholder: type.startsWith('vector') ? '[0.1, 0.2, …]' : 'JSON',
        });
        read = () => {
            if (input.value.trim() === '') return undefined;
            try {
                return JSON.parse(input.value);
            } catch {
                throw new Error(`${name}: not a JSON value (a ${type})`);
            }
        };
    }
    const label = h('label', { class: 'field' }, h('span', { class: 'label', text: name }), input,
        h('span', { class: 'hint', text: hint }));
    return { name, label, read };
}

// A timestamp as typed: digits are unix seconds (a number in the body), text
// goes as it is; whether it is a time is the API's call (its 422 names the
// field). undefined when empty.
function timestamp(name, text) {
    const v = text.trim();
    if (v === '') return undefined;
    if (/^-?\d+$/.test(v)) {
        const n = Number(v);
        if (!Number.isSafeInteger(n)) throw new Error(`${name}: ${v} is too large for unix seconds`);
        return n;
    }
    return v;
}
