// Parse an AsyncAPI document with the official parser; print diagnostics as JSON lines.
// Usage: node asyncapi_parse.cjs <node prefix> <document>. Exit 0 only when it parsed
// with no error-severity diagnostic.
const path = require("path");
const fs = require("fs");
const { Parser } = require(path.join(process.argv[2], "node_modules", "@asyncapi", "parser"));

(async () => {
  const text = fs.readFileSync(process.argv[3], "utf8");
  const { document, diagnostics } = await new Parser().parse(text);
  for (const d of diagnostics) {
    console.log(JSON.stringify({ severity: d.severity, code: d.code, path: d.path, message: d.message }));
  }
  const errors = diagnostics.filter((d) => d.severity === 0);
  if (!document || errors.length) process.exit(1);
  console.log(JSON.stringify({ parsed: true, channels: document.channels().length, operations: document.operations().length, messages: document.messages().length }));
})().catch((e) => { console.error(e); process.exit(2); });
