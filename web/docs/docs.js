/* GET /docs: draws this deployment's OpenAPI document (/openapi.json, the
 * element's data-spec-url) with Redoc, whose standalone bundle the build
 * vendors from npm beside this file (web/docs/vendor.sh): nothing is loaded
 * from another origin. A file of its own, not an inline script, so the
 * page's Content-Security-Policy can say script-src 'self' and nothing more.
 *
 * Without a token the document has the fixed routes only. A token typed in
 * the bar (or given in the fragment, /docs#token=…&mode=live, as a link
 * from another page of the deployment may do) fetches the document of its
 * mode, with every resource's own paths. The token is kept nowhere: not in
 * storage, and a fragment's is taken out of the address bar at once. */
(function () {
    'use strict';
    var el = document.getElementById('redoc');
    var form = document.getElementById('token-form');
    var input = document.getElementById('token');
    var mode = document.getElementById('mode');
    var status = document.getElementById('token-status');
    var url = el.getAttribute('data-spec-url');
    var options = {
        expandResponses: '200,201',
        jsonSampleExpandLevel: 3,
        pathInMiddlePanel: true,
        sortPropsAlphabetically: false
    };

    if (typeof Redoc === 'undefined') {
        el.textContent = 'The viewer (redoc.standalone.js) did not load; the document is at ' + url + '.';
        return;
    }

    function show(token, m) {
        status.textContent = '';
        if (!token) {
            Redoc.init(url, options, el);
            return;
        }
        fetch(url, {headers: {'Authorization': 'Bearer ' + token, 'Tessera-Mode': m}, cache: 'no-store'})
            .then(function (res) {
                return res.json().then(function (body) {
                    if (!res.ok)
                        throw new Error(res.status + ' ' + ((body && body.error && body.error.message) || res.statusText));
                    Redoc.init(body, options, el);
                    status.textContent = '';
                });
            })
            .catch(function (err) {
                /* the fixed routes still, under the reason */
                status.textContent = 'Not with that token (' + err.message + '): the routes without resources below.';
                Redoc.init(url, options, el);
            });
    }

    var frag = new URLSearchParams(window.location.hash.slice(1));
    var token = frag.get('token');
    if (token) {
        window.history.replaceState(null, '', window.location.pathname + window.location.search);
        if (frag.get('mode') === 'live')
            mode.value = 'live';
    }
    form.addEventListener('submit', function (ev) {
        ev.preventDefault();
        show(input.value.trim(), mode.value);
    });
    show(token, mode.value);
}());
