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

/** Unix seconds as UTC "YYYY-MM-DD HH:MM:SSZ" (the API's timestamps). */
export function when(unix) {
    if (typeof unix !== 'number' || !Number.isFinite(unix)) return display(unix);
    return new Date(unix * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
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
