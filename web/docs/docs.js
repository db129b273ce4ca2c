/* GET /docs: draws this deployment's OpenAPI document (/openapi.json, the
 * element's data-spec-url) with Redoc, whose standalone bundle the build
 * vendors from npm beside this file (web/docs/vendor.sh): nothing is loaded
 * from another origin. A file of its own, not an inline script, so the
 * page's Content-Security-Policy can say script-src 'self' and nothing more. */
(function () {
    'use strict';
    var el = document.getElementById('redoc');

    if (typeof Redoc === 'undefined') {
        el.textContent = 'The viewer (redoc.standalone.js) did not load; the document is at /openapi.json.';
        return;
    }
    Redoc.init(el.getAttribute('data-spec-url'), {
        expandResponses: '200,201',
        jsonSampleExpandLevel: 3,
        pathInMiddlePanel: true,
        sortPropsAlphabetically: false
    }, el);
}());
