// Renders TeX with npm's KaTeX for site_builder.content.math.NodeKatex: one JSON request per line on
// stdin, [tex, displayMode], one JSON reply per line on stdout, in order: {"html": ...} or {"error": ...}.
// argv[2] is the katex package folder (node_modules/katex). The first line out is {"katex": version}.
"use strict";
const katex = require(process.argv[2]);
const readline = require("readline");

process.stdout.write(JSON.stringify({ katex: katex.version }) + "\n");
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  const [tex, display] = JSON.parse(line);
  let reply;
  try {
    reply = { html: katex.renderToString(tex, { displayMode: display, throwOnError: true }) };
  } catch (err) {
    reply = { error: err instanceof katex.ParseError ? err.message : String(err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
});
