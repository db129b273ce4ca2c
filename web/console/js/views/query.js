// The list's filter language as a user types it, `field=op.value` pairs
// joined by & (e.g. `stage=eq.won&amount=gte.100`), checked for shape here;
// what a field, an operator or a value means is the API's to judge (its 400
// names the filter). Used by the record list (query string) and vector
// search (its `filter` object).

const OPS = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'like', 'in', 'is'];
const RESERVED = new Set(['order', 'limit', 'cursor']);

/** parseFilters(text) → [[field, "op.value"], …]; throws Error naming the bad part. */
export function parseFilters(text) {
    const out = [];
    for (const part of text.split('&').map((s) => s.trim()).filter(Boolean)) {
        const eq = part.indexOf('=');
        if (eq <= 0) throw new Error(`Filter “${part}”: write field=op.value, e.g. stage=eq.won`);
        const name = part.slice(0, eq).trim();
        const cond = part.slice(eq + 1).trim();
        if (RESERVED.has(name)) throw new Error(`Filter “${part}”: ${name} has its own control`);
        const op = cond.split('.', 1)[0];
        if (!OPS.includes(op) || cond.length === op.length)
            throw new Error(`Filter “${part}”: the condition is op.value with op one of ${OPS.join(' ')}`);
        out.push([name, cond]);
    }
    return out;
}
