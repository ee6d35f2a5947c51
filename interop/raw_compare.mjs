#!/usr/bin/env node
// Raw HTTP bytes at protocol 2026-07-28: the same requests (same JSON-RPC ids, same X-Request-ID) POSTed with
// Node's fetch to two mcp-connectors servers, the HTTP fast path on and off (MCP_CONNECTORS_HTTP_FAST_PATH=off);
// status, content type, every other response header but `date`, and the body bytes must be identical.
//
//   node raw_compare.mjs --on URL --off URL [--probe-on FILE --probe-off FILE] [--slow-seconds N] [--show]
//
// The cases are mostly tools/call the fast path answers (success, tool errors, invalid arguments, unknown
// tool, non-ASCII text, odd ids, the Mcp-Param-* check) and requests it must hand to the SDK untouched (a
// failed transport or envelope check, a progress token, other methods, notifications, batches). Round 1 sends
// them one at a time; round 2 sends them all at once. With the probe files (fastpath_probe.py), each case's
// path on the "on" server is checked against what the fast path's docstring says it takes, and the "off"
// server must have answered none on the fast path. --slow-seconds N (N > 15) adds a call of slow_wait that
// outlasts the server's 15 s window, sent to both while round 1 runs: its answer is an SSE stream (a ping
// comment, then the result event), compared byte for byte too. --show prints each answer.
// Prints PASS/FAIL per check; exits 1 on any failure, 2 on bad usage.

import http from 'node:http';
import { parseArgs } from 'node:util';
import { MODERN, SERVER_PAIR_OPTIONS, readProbe } from './compare.mjs';

const { values: opts } = parseArgs({
  options: {
    ...SERVER_PAIR_OPTIONS,
    show: { type: 'boolean', default: false },
    'slow-seconds': { type: 'string' },
    timeout: { type: 'string', default: '120' },
  },
});
if (!opts.on || !opts.off) {
  console.error('raw_compare.mjs: --on URL and --off URL are required');
  process.exit(2);
}

const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientInfo': { name: 'mcp-connectors-interop-raw', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};
const UNICODE_FILE = 'Grüße ☃ 𝄞.json';

function call(id, name, args, meta = META) {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, _meta: meta } };
}

function headersFor(message, extra = {}) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': MODERN,
  };
  if (message && !Array.isArray(message) && typeof message === 'object' && message.method) {
    headers['mcp-method'] = message.method;
    const name = message.params?.name;
    if (typeof name === 'string') headers['mcp-name'] = /^[\x20-\x7e]*$/.test(name) ? name : `=?base64?${Buffer.from(name).toString('base64')}?=`;
  }
  return { ...headers, ...extra };
}

/**
 * The cases. `fast`: true when the fast path must answer it, false when it must go to the SDK, undefined when
 * either is acceptable (reported, not checked). `body` is sent as is when a string, else as JSON.
 */
const CASES = [
  { name: 'success, structuredContent (interop_get_data)', fast: true, body: call(1, 'interop_get_data', {}) },
  { name: 'non-ASCII arguments and result, raw UTF-8 body', fast: true, body: call(2, 'modern_get_file', { name: UNICODE_FILE }) },
  { name: 'non-ASCII arguments, \\u-escaped ASCII body', fast: true, body: JSON.stringify(call(3, 'modern_get_file', { name: UNICODE_FILE })).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) },
  { name: 'text result with a query parameter', fast: true, body: call(4, 'modern_get_file', { name: 'notes.txt', limit: 3 }) },
  { name: 'upstream 404 → isError', fast: true, body: call(5, 'interop_get_missing', {}) },
  { name: 'upstream 404 → isError, tool with an outputSchema', fast: true, body: call(6, 'interop_get_missing_typed', {}) },
  { name: 'invalid arguments (below minimum) → isError', fast: true, body: call(7, 'modern_get_file', { name: 'notes.txt', limit: 0 }) },
  { name: 'invalid arguments (unknown, non-ASCII) → isError', fast: true, body: call(8, 'interop_get_data', { 'clé': 'größer ☃ 𝄞' }) },
  { name: 'unknown tool → -32602', fast: true, body: call(9, 'no_such_tool_anywhere', {}) },
  { name: 'batch_invoke of three calls', fast: true, body: call(10, 'batch_invoke', { calls: [{ tool: 'interop_get_data', arguments: {} }, { tool: 'modern_get_file', arguments: { name: UNICODE_FILE } }, { tool: 'interop_get_missing', arguments: {} }] }) },
  { name: 'string id with non-ASCII text', fast: true, body: call('id-☃-𝄞', 'interop_get_data', {}) },
  { name: 'id 0', fast: true, body: call(0, 'interop_get_data', {}) },
  { name: 'id 2^53+1 (beyond a double)', fast: true, body: `{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/call","params":{"name":"interop_get_data","arguments":{},"_meta":${JSON.stringify(META)}}}` },
  { name: 'arguments omitted', fast: true, body: { jsonrpc: '2.0', id: 14, method: 'tools/call', params: { name: 'interop_get_data', _meta: META } } },
  { name: 'extra _meta keys kept out of the answer', fast: true, body: call(15, 'interop_get_data', {}, { ...META, 'example.com/trace': 'abc' }) },
  { name: 'x-mcp-header tool, Mcp-Param-FileName header matching', fast: true, body: call(16, 'modern_get_file_routed', { name: 'notes.txt' }), headers: { 'mcp-param-filename': 'notes.txt' } },
  { name: 'x-mcp-header tool, non-ASCII value base64-encoded in the header', fast: true, body: call(17, 'modern_get_file_routed', { name: UNICODE_FILE }), headers: { 'mcp-param-filename': `=?base64?${Buffer.from(UNICODE_FILE).toString('base64')}?=` } },
  { name: 'x-mcp-header tool, Mcp-Param-FileName header not matching', fast: false, body: call(18, 'modern_get_file_routed', { name: 'notes.txt' }), headers: { 'mcp-param-filename': 'other.txt' } },
  { name: 'x-mcp-header tool, Mcp-Param-FileName header missing', fast: false, body: call(19, 'modern_get_file_routed', { name: 'notes.txt' }) },
  { name: 'x-mcp-header tool, Mcp-Param-FileName header twice', fast: false, body: call(20, 'modern_get_file_routed', { name: 'notes.txt' }), duplicate: ['mcp-param-filename', 'notes.txt'] },
  { name: 'Mcp-Method header twice', fast: false, body: call(21, 'interop_get_data', {}), duplicate: ['mcp-method', 'tools/call'] },
  { name: 'Mcp-Param header for a tool without x-mcp-header', fast: true, body: call(22, 'modern_get_file', { name: 'notes.txt' }), headers: { 'mcp-param-name': 'notes.txt' } },
  { name: 'progress token → handed to the SDK', fast: false, body: call(23, 'interop_get_data', {}, { ...META, progressToken: 'p-23' }) },
  { name: 'Accept: application/json only', fast: false, body: call(24, 'interop_get_data', {}), headers: { accept: 'application/json' } },
  { name: 'Accept: text/event-stream only', fast: false, body: call(25, 'interop_get_data', {}), headers: { accept: 'text/event-stream' } },
  { name: 'Content-Type: text/plain', fast: false, body: call(26, 'interop_get_data', {}), headers: { 'content-type': 'text/plain' } },
  { name: 'Mcp-Name header not matching params.name', fast: false, body: call(27, 'interop_get_data', {}), headers: { 'mcp-name': 'interop_get_missing' } },
  { name: 'Mcp-Method header not matching the method', fast: false, body: call(28, 'interop_get_data', {}), headers: { 'mcp-method': 'tools/list' } },
  { name: 'no Mcp-Method / Mcp-Name headers', fast: false, body: call(29, 'interop_get_data', {}), omit: ['mcp-method', 'mcp-name'] },
  { name: '_meta protocolVersion not matching the header', fast: false, body: call(30, 'interop_get_data', {}, { ...META, 'io.modelcontextprotocol/protocolVersion': '2025-11-25' }) },
  { name: 'no _meta at all', fast: false, body: { jsonrpc: '2.0', id: 31, method: 'tools/call', params: { name: 'interop_get_data', arguments: {} } } },
  { name: 'no clientInfo in _meta', fast: true, body: call(32, 'interop_get_data', {}, { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': {} }) },
  { name: 'arguments an array', fast: false, body: call(33, 'interop_get_data', []) },
  { name: 'name not a string', fast: false, body: { jsonrpc: '2.0', id: 34, method: 'tools/call', params: { name: 42, arguments: {}, _meta: META } }, omit: ['mcp-name'] },
  { name: 'jsonrpc "1.0"', fast: false, body: { ...call(35, 'interop_get_data', {}), jsonrpc: '1.0' } },
  { name: 'invalid JSON', fast: false, body: '{"jsonrpc":"2.0","id":36,"method":"tools/call",', headers: { 'mcp-method': 'tools/call' } },
  { name: 'a JSON array of two calls', fast: false, body: [call(37, 'interop_get_data', {}), call(38, 'interop_get_data', {})], headers: { 'mcp-method': 'tools/call' } },
  { name: 'tools/call as a notification (no id)', fast: false, body: { jsonrpc: '2.0', method: 'tools/call', params: { name: 'interop_get_data', arguments: {}, _meta: META } } },
  { name: 'MCP-Protocol-Version 2025-11-25 without a session', fast: false, body: call(39, 'interop_get_data', {}), headers: { 'mcp-protocol-version': '2025-11-25' } },
  { name: 'MCP-Protocol-Version 2099-01-01', fast: false, body: call(40, 'interop_get_data', {}), headers: { 'mcp-protocol-version': '2099-01-01' } },
  { name: 'MCP-Protocol-Version twice (2026-07-28, then 2025-11-25)', fast: undefined, body: call(44, 'interop_get_data', {}), extra: [['mcp-protocol-version', '2025-11-25']] },
  { name: 'MCP-Protocol-Version twice (2025-11-25, then 2026-07-28)', fast: false, body: call(45, 'interop_get_data', {}), headers: { 'mcp-protocol-version': '2025-11-25' }, extra: [['mcp-protocol-version', MODERN]] },
  { name: 'Mcp-Name twice, different values', fast: false, body: call(46, 'interop_get_data', {}), extra: [['mcp-name', 'interop_get_missing']] },
  { name: 'Content-Type twice', fast: undefined, body: call(47, 'interop_get_data', {}), extra: [['content-type', 'text/plain']] },
  { name: 'pretty-printed body with surrounding whitespace', fast: true, body: `\n  ${JSON.stringify(call(48, 'modern_get_file', { name: UNICODE_FILE }), null, 2)}\n\n` },
  { name: 'a key given twice in the body (id)', fast: undefined, body: `{"jsonrpc":"2.0","id":49,"id":50,"method":"tools/call","params":{"name":"interop_get_data","arguments":{},"_meta":${JSON.stringify(META)}}}` },
  { name: 'a key given twice in the arguments', fast: undefined, body: `{"jsonrpc":"2.0","id":51,"method":"tools/call","params":{"name":"modern_get_file","arguments":{"name":"nope.json","name":"notes.txt"},"_meta":${JSON.stringify(META)}}}` },
  { name: 'a lone surrogate (\\ud800) in an argument', fast: undefined, body: `{"jsonrpc":"2.0","id":52,"method":"tools/call","params":{"name":"modern_get_file","arguments":{"name":"a\\ud800b.json"},"_meta":${JSON.stringify(META)}}}` },
  { name: 'a lone surrogate in an unknown argument\'s name', fast: undefined, body: `{"jsonrpc":"2.0","id":53,"method":"tools/call","params":{"name":"interop_get_data","arguments":{"\\udfff":1},"_meta":${JSON.stringify(META)}}}` },
  { name: 'a UTF-8 byte-order mark before the body', fast: undefined, bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(call(54, 'interop_get_data', {})))]), body: call(54, 'interop_get_data', {}) },
  { name: 'a byte that is not UTF-8 in an argument (latin-1 é)', fast: undefined, bytes: Buffer.from(JSON.stringify(call(55, 'modern_get_file', { name: 'caf?.json' })).replace('caf?', 'caf\u00e9'), 'latin1'), body: call(55, 'modern_get_file', { name: 'x' }) },
  { name: 'id null', fast: false, body: { ...call(56, 'interop_get_data', {}), id: null } },
  { name: 'id 1.5', fast: undefined, body: `{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"interop_get_data","arguments":{},"_meta":${JSON.stringify(META)}}}` },
  { name: 'id true', fast: false, body: { ...call(57, 'interop_get_data', {}), id: true } },
  { name: 'progressToken null in _meta', fast: undefined, body: call(58, 'interop_get_data', {}, { ...META, progressToken: null }) },
  { name: 'params.task (task-augmented call)', fast: undefined, body: { ...call(59, 'interop_get_data', {}), params: { ...call(59, 'interop_get_data', {}).params, task: { ttl: 60000 } } } },
  { name: 'an unknown key in params', fast: undefined, body: { ...call(60, 'interop_get_data', {}), params: { ...call(60, 'interop_get_data', {}).params, extraKey: '☃' } } },
  { name: 'an unknown top-level key', fast: undefined, body: { ...call(61, 'interop_get_data', {}), extra: 1 } },
  { name: 'tools/list (not the fast path\'s)', fast: false, body: { jsonrpc: '2.0', id: 41, method: 'tools/list', params: { _meta: META } } },
  { name: 'server/discover (not the fast path\'s)', fast: false, body: { jsonrpc: '2.0', id: 42, method: 'server/discover', params: { _meta: META } } },
  { name: 'ping at 2026-07-28', fast: false, body: { jsonrpc: '2.0', id: 43, method: 'ping', params: { _meta: META } } },
];

const results = [];
function record(name, ok, detail) {
  results.push({ name, ok });
  console.log(`${ok ? 'PASS' : 'FAIL'} [raw] ${name}${detail ? `${ok ? ' — ' : ': '}${detail}` : ''}`);
}

/** Node's fetch for ordinary cases; node:http when a header is sent twice (fetch folds repeated headers). */
async function send(url, kase, requestId) {
  const bodyText = kase.bytes ?? (typeof kase.body === 'string' ? kase.body : JSON.stringify(kase.body));
  let parsed = kase.body;
  if (typeof kase.body === 'string') {
    try {
      parsed = JSON.parse(kase.body); // for the routing headers only (the body goes as written)
    } catch {
      parsed = undefined;
    }
  }
  const headers = headersFor(parsed, kase.headers);
  for (const key of kase.omit ?? []) delete headers[key];
  headers['x-request-id'] = requestId;
  if (!kase.duplicate && !kase.extra) {
    const response = await fetch(url, { method: 'POST', headers, body: bodyText });
    const body = Buffer.from(await response.arrayBuffer());
    const responseHeaders = [...response.headers].filter(([key]) => key !== 'date');
    return { status: response.status, contentType: response.headers.get('content-type'), headers: responseHeaders, body };
  }
  const target = new URL(url);
  const raw = Object.entries({ host: target.host, ...headers }).flatMap(([key, value]) => [key, value]);
  if (kase.duplicate) {
    const [dupName, dupValue] = kase.duplicate;
    if (headers[dupName] === undefined) raw.push(dupName, dupValue);
    raw.push(dupName, dupValue);
  }
  for (const [key, value] of kase.extra ?? []) raw.push(key, value);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: raw }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => {
        const responseHeaders = [];
        for (let i = 0; i < response.rawHeaders.length; i += 2) {
          const key = response.rawHeaders[i].toLowerCase();
          if (key !== 'date') responseHeaders.push([key, response.rawHeaders[i + 1]]);
        }
        resolve({ status: response.statusCode, contentType: response.headers['content-type'] ?? null, headers: responseHeaders, body: Buffer.concat(chunks) });
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(bodyText);
  });
}

/** The headers, sorted; a session id (a random value the SDK's legacy path hands out) only as present. */
function sortedHeaders(headers) {
  const shown = headers.map(([key, value]) => [key, key === 'mcp-session-id' ? '<session id>' : value]);
  return JSON.stringify(shown.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function compare(label, kase, a, b) {
  const problems = [];
  if (a.status !== b.status) problems.push(`status ${a.status} on, ${b.status} off`);
  if (a.contentType !== b.contentType) problems.push(`content-type ${a.contentType} on, ${b.contentType} off`);
  if (!a.body.equals(b.body)) problems.push(`body differs:\n    on:  ${a.body.toString('utf8').slice(0, 800)}\n    off: ${b.body.toString('utf8').slice(0, 800)}`);
  if (sortedHeaders(a.headers) !== sortedHeaders(b.headers)) problems.push(`headers differ:\n    on:  ${sortedHeaders(a.headers)}\n    off: ${sortedHeaders(b.headers)}`);
  const summary = `${a.status} ${a.contentType ?? '-'}, ${a.body.length} bytes`;
  record(`${label} ${kase.name}: on = off`, problems.length === 0, problems.length ? problems.join('; ') : summary);
  if (opts.show) console.log(`    ${a.body.toString('utf8').slice(0, 400)}`);
}

const watchdog = setTimeout(() => {
  console.log(`FAIL [raw] the checks did not finish within ${opts.timeout} s (a hang)`);
  process.exit(1);
}, Number(opts.timeout) * 1000);
watchdog.unref();

// The slow call (SSE after the 15 s window), to both servers at once, while round 1 runs.
const SLOW = opts['slow-seconds'] === undefined ? null : {
  name: `slow_wait ${opts['slow-seconds']} s: the answer deferred to SSE (ping, then the result event)`,
  fast: true,
  body: call('slow-1', 'slow_wait', { seconds: Number(opts['slow-seconds']) }),
};
const slowAnswers = SLOW ? Promise.all([send(opts.on, SLOW, 'raw-slow'), send(opts.off, SLOW, 'raw-slow')]) : null;

// Round 1: one at a time, on then off for each case.
const round1 = [];
for (const [index, kase] of CASES.entries()) {
  const requestId = `raw-${index + 1}`;
  const on = await send(opts.on, kase, requestId);
  const off = await send(opts.off, kase, requestId);
  round1.push({ on, off });
  compare('round 1', kase, on, off);
}

// Round 2: every case at once, to each server at the same time; each answer as in round 1.
const round2 = await Promise.all(CASES.map(async (kase, index) => {
  const requestId = `raw-${index + 1}-b`;
  const [on, off] = await Promise.all([send(opts.on, kase, requestId), send(opts.off, kase, requestId)]);
  return { on, off };
}));
{
  const problems = [];
  round2.forEach(({ on, off }, index) => {
    const kase = CASES[index];
    const first = round1[index].on;
    for (const [label, answer] of [['on', on], ['off', off]]) {
      if (answer.status !== first.status || answer.contentType !== first.contentType || !answer.body.equals(first.body)) {
        problems.push(`${kase.name} (${label}): ${answer.status} ${answer.body.toString('utf8').slice(0, 300)} != round 1 ${first.status} ${first.body.toString('utf8').slice(0, 300)}`);
      }
    }
  });
  record(`round 2: ${CASES.length} cases sent at once to both servers, every answer byte-identical to round 1`, problems.length === 0, problems.length ? problems.join('\n  ') : `${2 * CASES.length} answers`);
}

if (SLOW) {
  const [on, off] = await slowAnswers;
  compare('slow', SLOW, on, off);
  const text = on.body.toString('utf8');
  const sse = on.contentType === 'text/event-stream' && /^: ping\r\n\r\n/.test(text) && /\r\nevent: message\r\ndata: \{.*"id":"slow-1".*"waited_seconds/.test(`\r\n${text}`.replace(/\r\n\r\n(?=event)/, '\r\n'));
  record(`slow ${SLOW.name}: an SSE stream`, sse, sse ? `${on.contentType}, ${(text.match(/: ping/g) ?? []).length} ping(s), then the result event` : `${on.contentType}: ${text.slice(0, 300)}`);
}

if (opts['probe-on'] || opts['probe-off']) {
  const on = readProbe(opts['probe-on']) ?? [];
  const off = readProbe(opts['probe-off']) ?? [];
  const unhooked = [...on, ...off].find((p) => p.event === 'unhooked');
  if (unhooked || !on.some((p) => p.event === 'hooked')) {
    record('fastpath_probe: the probe is hooked', false, unhooked ? unhooked.reason : 'no "hooked" line in the probe file');
  } else {
    const answeredOn = new Set(on.filter((p) => p.event === 'answered').map((p) => p.x_request_id));
    const answeredOff = off.filter((p) => p.event === 'answered' && String(p.x_request_id).startsWith('raw-'));
    const wrong = [];
    const paths = [];
    CASES.forEach((kase, index) => {
      for (const suffix of ['', '-b']) {
        const fast = answeredOn.has(`raw-${index + 1}${suffix}`);
        if (suffix === '') paths.push(`${fast ? 'fast' : 'SDK '}  ${kase.name}`);
        if (kase.fast !== undefined && fast !== kase.fast) wrong.push(`${kase.name}${suffix ? ' (round 2)' : ''}: ${fast ? 'fast path' : 'SDK'}, expected ${kase.fast ? 'fast path' : 'SDK'}`);
      }
    });
    if (SLOW && !answeredOn.has('raw-slow')) wrong.push(`${SLOW.name}: SDK, expected fast path`);
    const fastCount = CASES.filter((_, index) => answeredOn.has(`raw-${index + 1}`)).length;
    record('fastpath_probe: each case took the expected path on the "on" server', wrong.length === 0,
      wrong.length ? wrong.join('; ') : `${fastCount} of ${CASES.length} cases on the fast path, the rest through the SDK`);
    if (opts.show || wrong.length) for (const line of paths) console.log(`    ${line}`);
    record('fastpath_probe: the "off" server answered nothing on the fast path', answeredOff.length === 0, `${answeredOff.length} answered`);
  }
}

const failed = results.filter((r) => !r.ok);
console.log(`[raw] ${results.length - failed.length}/${results.length} checks passed${failed.length ? `, ${failed.length} FAILED` : ''}`);
process.exit(failed.length ? 1 : 0);
