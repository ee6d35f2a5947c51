#!/usr/bin/env node
// Reads the results of `conformance server --output-dir DIR` and judges them against what mcp-connectors
// is: every scenario is either applicable (each of its checks must pass, bar a listed deliberate deviation)
// or not applicable, with the reason, and with the error our server must give when the reference
// "everything" server's fixture (a tool, prompt, resource or capability we do not have) is missing.
// A not-applicable scenario that fails in any other way (a crash, a timeout, an internal error) counts as a
// failure, so protocol errors on our side are not hidden by the list.
//
//   node conformance_report.mjs RESULTS_DIR TRANSPORT_LABEL [--stdio-bridge]
//
// Prints one row per scenario; exits 1 when an applicable scenario fails, a not-applicable one fails
// unexpectedly, or a scenario produced no results.

import fs from 'node:fs';
import path from 'node:path';

const [resultsDir, label = 'http', ...flags] = process.argv.slice(2);
if (!resultsDir) {
  console.error('usage: conformance_report.mjs RESULTS_DIR LABEL [--stdio-bridge]');
  process.exit(2);
}
const viaBridge = flags.includes('--stdio-bridge');

const METHOD_NOT_FOUND = /MCP error -32601: Method not found/;
const UNKNOWN_TOOL = /MCP error -32602: Unknown tool: 'test_[a-z0-9_]+'/;
const UNKNOWN_RESOURCE = /MCP error -32602: Unknown resource: test:\/\//;

// Scenarios whose checks all apply to us. Their fixtures, where they need one, are in fixtures/conformance-tools/.
const APPLICABLE = {
  'server-initialize': 'initialize handshake',
  ping: 'ping',
  'tools-list': 'first tools/list page: name, description, inputSchema',
  'tools-call-simple-text': 'fixture test_simple_text (GET on the fake upstream) returns text content',
  'tools-call-error': 'fixture test_error_handling (upstream 404) returns isError with text',
  'json-schema-2020-12': 'fixture json_schema_2020_12_tool: $defs and additionalProperties kept in inputSchema',
  'resources-list': 'resources/list (resources capability advertised)',
  'server-sse-multiple-streams': 'concurrent POSTs, each with its own SSE stream',
  'server-sse-polling': 'SEP-1699 SSE polling: SHOULD-level only (warnings, no failing check)',
  'dns-rebinding-protection': 'foreign Host/Origin refused, localhost accepted',
};

// Checks that fail by design, with why. Not counted as failures; listed in the summary.
const DELIBERATE = {
  'json-schema-2020-12-$schema':
    'inputSchema is built by the server (parameters + body properties) and carries no $schema; MCP 2025-11-25 makes ' +
    '2020-12 the default dialect of a schema without one, and the server validates arguments as 2020-12',
};

// Scenarios that need what the reference "everything" server has and a connector server does not.
const NOT_APPLICABLE = {
  'logging-set-level': [METHOD_NOT_FOUND, 'no `logging` capability advertised; logging/setLevel is -32601, as it must be'],
  'completion-complete': [METHOD_NOT_FOUND, 'no `completions` capability advertised (no prompts or resource templates to complete)'],
  'tools-call-image': [UNKNOWN_TOOL, 'needs a tool returning image content; our tools return the upstream answer as text + structuredContent'],
  'tools-call-audio': [UNKNOWN_TOOL, 'needs a tool returning audio content (see tools-call-image)'],
  'tools-call-embedded-resource': [UNKNOWN_TOOL, 'needs a tool returning an embedded resource (see tools-call-image)'],
  'tools-call-mixed-content': [UNKNOWN_TOOL, 'needs a tool returning text + image + resource (see tools-call-image)'],
  'tools-call-with-logging': [METHOD_NOT_FOUND, 'needs the logging capability and a tool that logs to the client'],
  'tools-call-with-progress': [UNKNOWN_TOOL, 'needs a tool that reports progress (a connector call is one upstream request)'],
  'tools-call-sampling': [UNKNOWN_TOOL, 'needs a tool that asks the client for sampling/createMessage; ours never do'],
  'tools-call-elicitation': [UNKNOWN_TOOL, 'needs a tool that asks the client for elicitation/create; ours never do'],
  'elicitation-sep1034-defaults': [UNKNOWN_TOOL, 'elicitation (see tools-call-elicitation)'],
  'elicitation-sep1330-enums': [UNKNOWN_TOOL, 'elicitation (see tools-call-elicitation)'],
  'resources-read-text': [UNKNOWN_RESOURCE, 'reads the reference server\'s test:// resources; ours are events://<connector> (webhook connectors only); unknown URI is -32602 (SEP-2164)'],
  'resources-read-binary': [UNKNOWN_RESOURCE, 'test:// resource (see resources-read-text)'],
  'resources-templates-read': [UNKNOWN_RESOURCE, 'needs a resource template; we have none'],
  'resources-subscribe': [UNKNOWN_RESOURCE, 'subscribes to test://watched-resource (see resources-read-text)'],
  'resources-unsubscribe': [UNKNOWN_RESOURCE, 'test://watched-resource (see resources-read-text)'],
  'prompts-list': [METHOD_NOT_FOUND, 'no `prompts` capability advertised; prompts/* is -32601'],
  'prompts-get-simple': [METHOD_NOT_FOUND, 'no prompts (see prompts-list)'],
  'prompts-get-with-args': [METHOD_NOT_FOUND, 'no prompts (see prompts-list)'],
  'prompts-get-embedded-resource': [METHOD_NOT_FOUND, 'no prompts (see prompts-list)'],
  'prompts-get-with-image': [METHOD_NOT_FOUND, 'no prompts (see prompts-list)'],
};

// Through stdio_bridge.mjs these test the bridge's own HTTP layer (the SDK's server transport), not us.
const BRIDGE_HTTP_ONLY = new Set(['dns-rebinding-protection', 'server-sse-multiple-streams', 'server-sse-polling']);

const found = new Map();
for (const entry of fs.readdirSync(resultsDir)) {
  const match = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(entry);
  const file = path.join(resultsDir, entry, 'checks.json');
  if (match && fs.existsSync(file)) found.set(match[1], JSON.parse(fs.readFileSync(file, 'utf8')));
}

const known = new Set([...Object.keys(APPLICABLE), ...Object.keys(NOT_APPLICABLE)]);
const rows = [];
let problems = 0;
const count = (checks, status) => checks.filter((c) => c.status === status).length;

for (const name of [...known, ...[...found.keys()].filter((n) => !known.has(n))]) {
  const checks = found.get(name);
  if (!checks) {
    if (known.has(name)) {
      rows.push([name, 'MISSING', 'no results written (the suite crashed or skipped it)']);
      problems++;
    }
    continue;
  }
  const failures = checks.filter((c) => c.status === 'FAILURE');
  const warnings = checks.filter((c) => c.status === 'WARNING');
  const tally = `${count(checks, 'SUCCESS')} passed, ${failures.length} failed, ${warnings.length} warnings`;
  if (viaBridge && BRIDGE_HTTP_ONLY.has(name)) {
    rows.push([name, 'n/a (bridge)', `${tally}; tests the bridge's HTTP layer, not our stdio server`]);
    continue;
  }
  if (name in APPLICABLE) {
    const deliberate = failures.filter((c) => c.id in DELIBERATE);
    const real = failures.filter((c) => !(c.id in DELIBERATE));
    const notes = [
      ...real.map((c) => `FAILED ${c.id}: ${c.errorMessage ?? c.description}`),
      ...deliberate.map((c) => `deliberate: ${c.id} (${DELIBERATE[c.id]})`),
      ...warnings.map((c) => `warning ${c.id}: ${c.errorMessage ?? c.description}`),
    ];
    const status = real.length ? 'FAIL' : deliberate.length ? 'PASS*' : 'PASS';
    if (real.length) problems++;
    rows.push([name, status, [tally, ...notes].join('; ')]);
  } else if (name in NOT_APPLICABLE) {
    const [expectedError, reason] = NOT_APPLICABLE[name];
    const unexpected = failures.filter((c) => !expectedError.test(c.errorMessage ?? ''));
    if (unexpected.length) {
      problems++;
      rows.push([name, 'FAIL', `n/a scenario failed unexpectedly: ${unexpected.map((c) => `${c.id}: ${c.errorMessage}`).join('; ')}`]);
    } else if (!failures.length) {
      rows.push([name, 'PASS (n/a)', `${tally}; passed although listed as not applicable (${reason})`]);
    } else {
      rows.push([name, 'n/a', `${reason} [answered: ${failures[0].errorMessage.replace(/^Failed: /, '')}]`]);
    }
  } else {
    // A scenario this list does not know (a newer suite): judged strictly.
    const status = failures.length ? 'FAIL' : 'PASS';
    if (failures.length) problems++;
    rows.push([name, status, `${tally} (scenario not classified in conformance_report.mjs)${failures.map((c) => `; FAILED ${c.id}: ${c.errorMessage}`).join('')}`]);
  }
}

const width = Math.max(...rows.map((r) => r[0].length));
console.log(`conformance (${label}):`);
for (const [name, status, note] of rows) console.log(`  ${name.padEnd(width)}  ${status.padEnd(12)}  ${note}`);
const tallies = {};
for (const [, status] of rows) tallies[status] = (tallies[status] ?? 0) + 1;
console.log(`conformance (${label}): ${Object.entries(tallies).map(([s, n]) => `${n} ${s}`).join(', ')}; ${problems ? `${problems} PROBLEM(S)` : 'no problems'}`);
process.exit(problems ? 1 : 0);
