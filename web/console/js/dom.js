// DOM building without markup strings. Every text — and every value the API
// sends is text here — goes in through text nodes or properties, never through
// the HTML parser, so a record holding "<img …>" shows as those characters.
// Event handlers are attached with addEventListener: the Content-Security-
// Policy forbids inline ones (and inline styles), and so does this module.

/**
 * h('tag', props, ...children): an element. props: `class`, `text`, `on`
 * ({event: fn}), DOM properties that are not attributes (value, checked,
 * selected, disabled, hidden), anything else as an attribute. Children:
 * nodes, strings (as text), arrays of them; null, undefined and false are skipped.
 */
export function h(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props ?? {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
        else if (k === 'text') el.textContent = String(v);
        else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
        else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled' || k === 'hidden') el[k] = v;
        else if (k.startsWith('on')) throw new Error(`inline handler ${k}: use the on prop`);
        else if (k === 'style') throw new Error('inline style: use a class');
        else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
}

function append(el, children) {
    for (const c of children) {
        if (c === null || c === undefined || c === false) continue;
        if (Array.isArray(c)) append(el, c);
        else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
}

/** Replaces el's children. */
export function fill(el, ...children) {
    el.replaceChildren();
    append(el, children);
    return el;
}

/**
 * table(columns, rows, {empty}): columns are [{label, cell: row → text | Node}].
 * A row's cells are built by each column's cell function.
 */
export function table(columns, rows, { empty = 'Nothing here yet.', caption } = {}) {
    if (rows.length === 0) return h('p', { class: 'empty', text: empty });
    return h('div', { class: 'table-wrap' },
        h('table', {},
            caption ? h('caption', { text: caption }) : null,
            h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: c.label })))),
            h('tbody', {}, rows.map((row) => h('tr', {}, columns.map((c) => {
                const v = c.cell(row);
                return h('td', { class: c.class }, v instanceof Node ? v : display(v));
            }))))));
}

/** A value as the console shows it: null as an em dash, objects as JSON. */
export function display(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
}

// RFC 3339 as the API writes it (always UTC, "Z"), or with an offset or a
// fraction as a person may type one.
const RFC3339 = /^(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/;

/**
 * A point in time from the API (RFC 3339 text, "2026-12-07T15:31:52Z") as the
 * console shows it: "2026-12-07 15:31:52 UTC". Text with an offset is shown
 * in UTC too; anything else (null, text that is no time) as display() has it.
 */
export function when(t) {
    const m = typeof t === 'string' ? RFC3339.exec(t) : null;
    if (m === null) return display(t);
    if (m[4] === 'Z' || m[4] === 'z') return `${m[1]} ${m[2]} UTC`;
    const d = new Date(`${m[1]}T${m[2]}${m[4]}`);
    return Number.isNaN(d.getTime()) ? t : `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)} UTC`;
}

/** A labelled form control: label(text, control). */
export function field(label, control, hint) {
    return h('label', { class: 'field' }, h('span', { class: 'label', text: label }), control,
        hint ? h('span', { class: 'hint', text: hint }) : null);
}

/** A <select> of [value, label] pairs (or plain values). */
export function select(name, options, selected) {
    return h('select', { name }, options.map((o) => {
        const [value, label] = Array.isArray(o) ? o : [o, o];
        return h('option', { value, selected: value === selected, text: label });
    }));
}
