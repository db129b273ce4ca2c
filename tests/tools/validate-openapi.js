// Validates an OpenAPI document against the 3.1 schema and its own $refs
// (@apidevtools/swagger-parser); exits 1 with the reason when it does not hold.
// Usage: node validate-openapi.js FILE
const SwaggerParser = require("@apidevtools/swagger-parser");

SwaggerParser.validate(process.argv[2]).then(
    (api) => console.log(`valid: OpenAPI ${api.openapi}, ${Object.keys(api.paths).length} paths`),
    (err) => { console.error(err.message); process.exit(1); });
