#!/usr/bin/env node
// The TypeScript SDK v2 client (@modelcontextprotocol/client) at protocol 2026-07-28 (no initialize; the
// per-request `_meta` envelope) against two mcp-connectors servers: the HTTP fast path on
// (mcp_server/_http_fastpath.py) and off (MCP_CONNECTORS_HTTP_FAST_PATH=off). The same scenario runs against
// each; every result and every error the client sees must be identical between the two.
//
//   node ts_client_modern.mjs --on URL --off URL --probe-on FILE --probe-off FILE --page-size 3 \
//        --catalog tools.json --data fixtures/upstream/data.json --files fixtures/upstream/files [--slow-seconds N]
//
// --slow-seconds N (N > 15): also a call of slow_wait that outlasts the server's 15 s window (answered as an
// SSE stream), one client per server, started first and awaited last.
// The servers run under fastpath_probe.py, which records each tools/call the fast path answered (by the
// X-Request-ID header this client sets on every HTTP request): the "on" server must have answered every
// tools/call but the one asking for progress (handed to the SDK), the "off" server none.
// Prints PASS/FAIL per check; exits 1 on any failure, 2 on bad usage.

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MODERN, SERVER_PAIR_OPTIONS, assert, assertEqual, readProbe } from './compare.mjs';

import { Client, ProtocolError, SdkError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const { values: opts } = parseArgs({
  options: {
    ...SERVER_PAIR_OPTIONS,
    'page-size': { type: 'string' },
    catalog: { type: 'string' },
    data: { type: 'string' },
    files: { type: 'string' },
    timeout: { type: 'string', default: '120' },
    'slow-seconds': { type: 'string' },
  },
});

function usage(message) {
  console.error(`ts_client_modern.mjs: ${message}`);
  process.exit(2);
}
for (const name of ['on', 'off', 'catalog', 'data', 'files']) if (!opts[name]) usage(`--${name} is required`);
const pageSize = opts['page-size'] ? Number(opts['page-size']) : undefined;
const catalog = JSON.parse(fs.readFileSync(opts.catalog, 'utf8'));
const data = JSON.parse(fs.readFileSync(opts.data, 'utf8'));
const UNICODE_FILE = 'Grüße ☃ 𝄞.json';
const unicodeData = JSON.parse(fs.readFileSync(path.join(opts.files, UNICODE_FILE), 'utf8'));
const notesText = fs.readFileSync(path.join(opts.files, 'notes.txt'), 'utf8');

const results = [];

async function check(label, name, fn) {
  const started = performance.now();
  try {
    const note = await fn();
    const ms = (performance.now() - started).toFixed(0);
    results.push({ name: `${label}: ${name}`, ok: true });
    console.log(`PASS [${label}] ${name}${note ? ` — ${note}` : ''} (${ms} ms)`);
    return true;
  } catch (error) {
    results.push({ name: `${label}: ${name}`, ok: false, error });
    console.log(`FAIL [${label}] ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  }
}

function textOf(result) {
  assert(Array.isArray(result.content) && result.content.length > 0, `no content: ${JSON.stringify(result).slice(0, 300)}`);
  const item = result.content.find((c) => c.type === 'text');
  assert(item && typeof item.text === 'string', 'no text content');
  return item.text;
}

/** What the client handed back: a result, or the thrown error's class, code, message and data. */
async function outcome(promise) {
  try {
    return { result: await promise };
  } catch (error) {
    return {
      error: {
        class: error?.constructor?.name,
        protocolError: error instanceof ProtocolError,
        sdkError: error instanceof SdkError,
        code: error?.code,
        message: error?.message,
        data: error?.data,
      },
    };
  }
}

function isToolError(o, code) {
  assert(o.result, `threw instead of a tool error: ${JSON.stringify(o.error)}`);
  assert(o.result.isError === true, `isError is ${o.result.isError}`);
  const body = JSON.parse(textOf(o.result));
  assert(body.success === false, `text is not an error body: ${textOf(o.result).slice(0, 200)}`);
  if (code) assert(body.error_code === code, `error_code ${body.error_code}, not ${code}: ${body.error}`);
  assertEqual(o.result.structuredContent, body, 'structuredContent and the text');
  return body;
}

function isProtocolError(o, code) {
  assert(o.error, `answered with a result: ${JSON.stringify(o.result)?.slice(0, 300)}`);
  assert(o.error.protocolError, `not a ProtocolError: ${o.error.class} ${o.error.message}`);
  assert(o.error.code === code, `code ${o.error.code}, not ${code}: ${o.error.message}`);
}

/**
 * A fetch that gives every HTTP request a distinct X-Request-ID (`<label>-<n>`, the same numbering in both
 * runs) and records each exchange: method, JSON-RPC method and id, progress token, status, content type, body.
 */
function recordingFetch(label) {
  const exchanges = [];
  let n = 0;
  const fetchFn = async (url, init = {}) => {
    const requestId = `${label}-${++n}`;
    const headers = new Headers(init.headers);
    headers.set('x-request-id', requestId);
    let message;
    try {
      message = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
    } catch {
      message = undefined;
    }
    const exchange = {
      requestId,
      httpMethod: init.method ?? 'GET',
      method: message?.method,
      id: message?.id,
      progress: message?.params?._meta?.progressToken !== undefined,
      protocolVersionHeader: headers.get('mcp-protocol-version'),
      metaVersion: message?.params?._meta?.['io.modelcontextprotocol/protocolVersion'],
      paramHeaders: Object.fromEntries([...headers].filter(([key]) => key.startsWith('mcp-param-'))),
    };
    exchanges.push(exchange);
    const response = await fetch(url, { ...init, headers });
    exchange.status = response.status;
    exchange.contentType = response.headers.get('content-type');
    exchange.sessionId = response.headers.get('mcp-session-id');
    // The body bytes, from a clone. Not for an SSE answer: the clone of a stream the SDK has read its message
    // from never ends (Node 22's fetch), so those are compared by status and type here, by bytes in raw_compare.mjs.
    exchange.body = exchange.contentType?.startsWith('text/event-stream')
      ? Promise.resolve('sse')
      : response.clone().arrayBuffer().then((buffer) => Buffer.from(buffer), () => null);
    return response;
  };
  return { fetchFn, exchanges };
}

/** The scenario against one server: per-server checks, and the list of outcomes to compare. */
async function scenario(label, url, probeFile) {
  const outcomes = [];
  const record = (step, o) => {
    outcomes.push({ step, ...o });
    return o;
  };
  const { fetchFn, exchanges } = recordingFetch(label);
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: fetchFn });
  const client = new Client(
    { name: 'mcp-connectors-interop-modern', version: '1.0.0' },
    { capabilities: {}, versionNegotiation: { mode: { pin: MODERN } } },
  );

  if (!(await check(label, `connect, pinned to ${MODERN} (server/discover, no initialize)`, async () => {
    await client.connect(transport);
    assert(client.getNegotiatedProtocolVersion() === MODERN, `negotiated ${client.getNegotiatedProtocolVersion()}`);
    assert(client.getProtocolEra() === 'modern', `era ${client.getProtocolEra()}`);
    const info = client.getServerVersion();
    assert(info?.name === 'mcp-connectors', `serverInfo ${JSON.stringify(info)}`);
    assert(client.getServerCapabilities()?.tools, 'no tools capability');
    assert(!exchanges.some((e) => e.method === 'initialize'), 'an initialize was sent');
    record('discover', { result: client.getDiscoverResult() });
    return `${info.name} ${info.version}, supportedVersions ${JSON.stringify(client.getDiscoverResult()?.supportedVersions)}`;
  }))) {
    return { outcomes, exchanges };
  }

  let listed;
  await check(label, 'tools/list, every page (aggregated by the client)', async () => {
    const o = record('tools/list (all pages)', await outcome(client.listTools()));
    assert(o.result, `error ${JSON.stringify(o.error)}`);
    listed = o.result.tools;
    assert(o.result.nextCursor === undefined, 'nextCursor after the aggregate');
    const pages = exchanges.filter((e) => e.method === 'tools/list').length;
    assertEqual(listed, catalog, 'listed tools and `mcp-connectors tools --json`');
    return `${listed.length} tools, ${pages} tools/list requests`;
  });

  await check(label, 'tools/list, page by page (cursor), the same tools', async () => {
    const pages = [];
    let cursor;
    do {
      // The first page through the client's plain request (listTools() without a cursor aggregates every page).
      const o = await outcome(cursor === undefined ? client.request({ method: 'tools/list', params: {} }) : client.listTools({ cursor }));
      assert(o.result, `error ${JSON.stringify(o.error)}`);
      record(`tools/list page ${pages.length}`, o);
      pages.push(o.result);
      cursor = o.result.nextCursor;
      assert(pages.length < 1000, 'the cursor does not advance');
    } while (cursor !== undefined);
    if (pageSize !== undefined) {
      pages.slice(0, -1).forEach((page, i) => assert(page.tools.length === pageSize, `page ${i}: ${page.tools.length} tools`));
    }
    assertEqual(pages.flatMap((p) => p.tools), catalog, 'paged tools and catalog');
    return `${pages.length} pages`;
  });

  await check(label, 'tools/call interop_get_data: text + structuredContent (outputSchema validated by the client)', async () => {
    const o = record('call interop_get_data', await outcome(client.callTool({ name: 'interop_get_data', arguments: {} })));
    assert(o.result, `error ${JSON.stringify(o.error)}`);
    assert(o.result.isError !== true, `isError: ${textOf(o.result).slice(0, 200)}`);
    assertEqual(JSON.parse(textOf(o.result)), data, 'text and upstream file');
    assertEqual(o.result.structuredContent, data, 'structuredContent and upstream file');
    assertEqual(o.result._meta?.['io.modelcontextprotocol/serverInfo']?.name, 'mcp-connectors', 'result _meta serverInfo name');
  });

  await check(label, `tools/call modern_get_file, non-ASCII name in the arguments and text in the result`, async () => {
    const o = record('call modern_get_file unicode', await outcome(client.callTool({ name: 'modern_get_file', arguments: { name: UNICODE_FILE } })));
    assert(o.result && o.result.isError !== true, `not a success: ${JSON.stringify(o).slice(0, 300)}`);
    assertEqual(o.result.structuredContent, unicodeData, 'structuredContent and the upstream file');
    assertEqual(JSON.parse(textOf(o.result)), unicodeData, 'text and the upstream file');
  });

  await check(label, 'tools/call modern_get_file notes.txt (a text answer, with a query parameter)', async () => {
    const o = record('call modern_get_file text', await outcome(client.callTool({ name: 'modern_get_file', arguments: { name: 'notes.txt', limit: 3 } })));
    assert(o.result && o.result.isError !== true, `not a success: ${JSON.stringify(o).slice(0, 300)}`);
    assert(textOf(o.result) === notesText, `text ${JSON.stringify(textOf(o.result))} is not the file's`);
  });

  await check(label, 'tools/call interop_get_missing: upstream 404 → isError', async () => {
    const o = record('call interop_get_missing', await outcome(client.callTool({ name: 'interop_get_missing', arguments: {} })));
    const body = isToolError(o, 'UPSTREAM_ERROR');
    assert(body.error.includes('404'), `error does not mention 404: ${body.error}`);
  });

  await check(label, 'tools/call interop_get_missing_typed: upstream 404 → isError (tool with an outputSchema)', async () => {
    isToolError(record('call interop_get_missing_typed', await outcome(client.callTool({ name: 'interop_get_missing_typed', arguments: {} }))), 'UPSTREAM_ERROR');
  });

  await check(label, 'tools/call modern_get_file of a missing non-ASCII name → isError 404', async () => {
    isToolError(record('call modern_get_file missing', await outcome(client.callTool({ name: 'modern_get_file', arguments: { name: 'nicht da – ☃.json' } }))), 'UPSTREAM_ERROR');
  });

  for (const [what, name] of [['an ASCII name', 'notes.txt'], ['a non-ASCII name', UNICODE_FILE]]) {
    await check(label, `tools/call modern_get_file_routed, ${what} mirrored in Mcp-Param-FileName (x-mcp-header)`, async () => {
      const o = record(`call routed ${what}`, await outcome(client.callTool({ name: 'modern_get_file_routed', arguments: { name } })));
      assert(o.result && o.result.isError !== true, `not a success: ${JSON.stringify(o).slice(0, 300)}`);
      if (name === UNICODE_FILE) assertEqual(o.result.structuredContent, unicodeData, 'structuredContent and the upstream file');
      else assert(textOf(o.result) === notesText, 'text is not the file\'s');
      const sent = exchanges.filter((e) => e.method === 'tools/call').at(-1);
      const header = sent?.paramHeaders?.['mcp-param-filename'];
      assert(header !== undefined, `the client sent no Mcp-Param-FileName header (${JSON.stringify(sent?.paramHeaders)})`);
      return `header sent: ${header}`;
    });
  }

  for (const [what, args] of [
    ['an unknown argument (non-ASCII value)', { name: 'notes.txt', bogus: 'größer ☃' }],
    ['an integer below its minimum', { name: 'notes.txt', limit: 0 }],
    ['a string where an integer goes', { name: 'notes.txt', limit: 'drei' }],
    ['a required argument missing', {}],
    ['a number where a string goes', { name: 42 }],
  ]) {
    await check(label, `tools/call modern_get_file with ${what} → isError INVALID_ARGUMENTS`, async () => {
      isToolError(record(`call invalid: ${what}`, await outcome(client.callTool({ name: 'modern_get_file', arguments: args }))), 'INVALID_ARGUMENTS');
    });
  }

  await check(label, 'tools/call of an unknown tool → ProtocolError -32602', async () => {
    isProtocolError(record('call unknown tool', await outcome(client.callTool({ name: 'no_such_tool_anywhere', arguments: {} }))), -32602);
  });

  await check(label, 'tools/call of an unknown non-ASCII tool name → ProtocolError -32602', async () => {
    isProtocolError(record('call unknown unicode tool', await outcome(client.callTool({ name: 'outil_inconnu_☃', arguments: {} }))), -32602);
  });

  await check(label, 'tools/call batch_invoke: three calls, results in order', async () => {
    const o = record('call batch_invoke', await outcome(client.callTool({
      name: 'batch_invoke',
      arguments: {
        calls: [
          { tool: 'interop_get_data', arguments: {} },
          { tool: 'modern_get_file', arguments: { name: UNICODE_FILE } },
          { tool: 'interop_get_missing', arguments: {} },
        ],
      },
    })));
    assert(o.result && o.result.isError !== true, `not a success: ${JSON.stringify(o).slice(0, 300)}`);
    const batch = o.result.structuredContent ?? JSON.parse(textOf(o.result));
    const items = batch.results;
    assert(Array.isArray(items) && items.length === 3, `results ${JSON.stringify(batch).slice(0, 300)}`);
    assertEqual(items.map((r) => [r.tool, r.success]), [['interop_get_data', true], ['modern_get_file', true], ['interop_get_missing', false]], 'tools and outcomes');
    assertEqual(items[0].result, data, 'first result and data.json');
    assertEqual(items[1].result, unicodeData, 'second result and the non-ASCII file');
  });

  await check(label, 'tools/call with a progress token (onprogress) → the same result', async () => {
    const o = record('call with progress', await outcome(client.callTool({ name: 'interop_get_data', arguments: {} }, { onprogress: () => {} })));
    assert(o.result && o.result.isError !== true, `not a success: ${JSON.stringify(o).slice(0, 300)}`);
    assertEqual(o.result.structuredContent, data, 'structuredContent and upstream file');
    assert(exchanges.some((e) => e.method === 'tools/call' && e.progress), 'no request carried a progress token');
  });

  await check(label, 'eight tools/call at once, each as answered alone', async () => {
    const calls = [];
    for (let i = 0; i < 8; i++) {
      calls.push(i % 2
        ? client.callTool({ name: 'modern_get_file', arguments: { name: UNICODE_FILE } })
        : client.callTool({ name: 'interop_get_data', arguments: {} }));
    }
    const answers = await Promise.all(calls.map((p) => outcome(p)));
    answers.forEach((o, i) => {
      record(`concurrent call ${i}`, o);
      assert(o.result && o.result.isError !== true, `call ${i}: ${JSON.stringify(o).slice(0, 200)}`);
      assertEqual(o.result.structuredContent, i % 2 ? unicodeData : data, `call ${i} structuredContent`);
    });
  });

  await check(label, 'tools/list with a bad cursor → ProtocolError -32602', async () => {
    isProtocolError(record('tools/list bad cursor', await outcome(client.listTools({ cursor: 'not-a-cursor' }))), -32602);
  });

  await check(label, 'server/discover again (client.discover()), the same as at connect', async () => {
    const o = record('discover again', await outcome(client.discover()));
    assert(o.result, `error ${JSON.stringify(o.error)}`);
    // client.discover() hands back the result without its resultType; getDiscoverResult() keeps it.
    const { resultType, ...atConnect } = outcomes[0].result;
    assertEqual(o.result, atConnect, 'discover result and the one at connect (without resultType)');
  });

  await check(label, `every request at ${MODERN}: header and _meta envelope, no session`, async () => {
    const posts = exchanges.filter((e) => e.httpMethod === 'POST' && e.method);
    assert(posts.length > 0, 'no POST seen');
    for (const e of posts) {
      assert(e.protocolVersionHeader === MODERN, `${e.method}: MCP-Protocol-Version ${e.protocolVersionHeader}`);
      assert(e.metaVersion === MODERN, `${e.method}: _meta protocolVersion ${e.metaVersion}`);
      assert(!e.sessionId, `${e.method}: the server gave a session id ${e.sessionId}`);
    }
    const calls = posts.filter((e) => e.method === 'tools/call');
    const contentTypes = [...new Set(calls.map((e) => e.contentType))];
    return `${posts.length} requests (${calls.length} tools/call), tools/call answers: ${contentTypes.join(', ')}`;
  });

  await check(label, 'close', async () => {
    await client.close();
  });

  // A second client in 'auto' mode: the server/discover probe must select the 2026-07-28 era by itself.
  await check(label, `connect in 'auto' mode selects ${MODERN}`, async () => {
    const auto = recordingFetch(`${label}-auto`);
    const other = new Client({ name: 'mcp-connectors-interop-modern-auto', version: '1.0.0' }, { capabilities: {}, versionNegotiation: { mode: 'auto' } });
    await other.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: auto.fetchFn }));
    try {
      assert(other.getNegotiatedProtocolVersion() === MODERN, `negotiated ${other.getNegotiatedProtocolVersion()}`);
      assert(!auto.exchanges.some((e) => e.method === 'initialize'), 'fell back to initialize');
      const o = record('auto: call interop_get_data', await outcome(other.callTool({ name: 'interop_get_data', arguments: {} })));
      assertEqual(o.result?.structuredContent, data, 'structuredContent and upstream file');
      exchanges.push(...auto.exchanges);
    } finally {
      await other.close();
    }
  });

  for (const e of exchanges) e.body = await e.body;

  if (probeFile) {
    await check(label, 'fastpath_probe: which tools/call the fast path answered', async () => {
      const probe = readProbe(probeFile);
      assert(probe, `no probe file ${probeFile}`);
      const unhooked = probe.find((p) => p.event === 'unhooked');
      assert(!unhooked, `the probe could not hook the fast path: ${unhooked?.reason}`);
      assert(probe.some((p) => p.event === 'hooked'), 'the probe did not start');
      // The slow call (its own client, `<label>-slow-<n>`) is checked on its own.
      const answered = new Set(probe.filter((p) => p.event === 'answered' && !String(p.x_request_id).startsWith(`${label}-slow-`)).map((p) => p.x_request_id));
      const calls = exchanges.filter((e) => e.method === 'tools/call');
      if (label === 'off') {
        assert(answered.size === 0, `the fast path answered ${answered.size} calls with MCP_CONNECTORS_HTTP_FAST_PATH=off`);
        return `0 of ${calls.length} tools/call (all through the SDK)`;
      }
      const expected = calls.filter((e) => !e.progress).map((e) => e.requestId);
      const missing = expected.filter((id) => !answered.has(id));
      const extra = [...answered].filter((id) => !expected.includes(id));
      assert(missing.length === 0, `not answered on the fast path: ${missing.join(', ')}`);
      assert(extra.length === 0, `answered on the fast path but not expected: ${extra.join(', ')}`);
      return `${answered.size} of ${calls.length} tools/call on the fast path (the one with a progress token went to the SDK)`;
    });
  }
  return { outcomes, exchanges };
}

const watchdog = setTimeout(() => {
  console.log(`FAIL [modern] the checks did not finish within ${opts.timeout} s (a hang)`);
  process.exit(1);
}, Number(opts.timeout) * 1000);
watchdog.unref();

/** The slow call through its own client (SSE after the server's window); the outcome and the HTTP exchange. */
async function slowCall(label, url) {
  const { fetchFn, exchanges } = recordingFetch(`${label}-slow`);
  const client = new Client({ name: 'mcp-connectors-interop-modern-slow', version: '1.0.0' }, { capabilities: {}, versionNegotiation: { mode: { pin: MODERN } } });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: fetchFn }));
  const seconds = Number(opts['slow-seconds']);
  const o = await outcome(client.callTool({ name: 'slow_wait', arguments: { seconds } }, { timeout: (seconds + 30) * 1000 }));
  await client.close();
  for (const e of exchanges) e.body = await e.body;
  return { o, exchange: exchanges.find((e) => e.method === 'tools/call') };
}
const slow = opts['slow-seconds'] === undefined ? null : Promise.all([slowCall('on', opts.on), slowCall('off', opts.off)]);

const on = await scenario('on', opts.on, opts['probe-on']);
const off = await scenario('off', opts.off, opts['probe-off']);

if (slow) {
  // Node may see nothing pending while the SDK waits for the server's first SSE bytes: hold the loop open.
  const hold = setInterval(() => {}, 1000);
  const [slowOn, slowOff] = await slow;
  clearInterval(hold);
  for (const [label, { o, exchange }] of [['on', slowOn], ['off', slowOff]]) {
    await check(label, `tools/call slow_wait ${opts['slow-seconds']} s, past the server's 15 s window (SSE)`, async () => {
      assert(o.result && o.result.isError !== true, `not a success: ${JSON.stringify(o).slice(0, 300)}`);
      assertEqual(o.result.structuredContent, { waited_seconds: Number(opts['slow-seconds']), text: 'lentement — ☃ 𝄞' }, 'structuredContent');
      assert(exchange?.contentType === 'text/event-stream', `answered as ${exchange?.contentType}, not an SSE stream`);
      return `answered as ${exchange.contentType}`;
    });
  }
  if (opts['probe-on']) {
    await check('on', 'fastpath_probe: the slow call was answered on the fast path', async () => {
      const answered = (readProbe(opts['probe-on']) ?? []).filter((p) => p.event === 'answered').map((p) => p.x_request_id);
      assert(answered.includes(slowOn.exchange?.requestId), `${slowOn.exchange?.requestId} is not in the probe file`);
    });
  }
  on.outcomes.push({ step: 'slow call', ...slowOn.o });
  off.outcomes.push({ step: 'slow call', ...slowOff.o });
  on.exchanges.push(slowOn.exchange);
  off.exchanges.push(slowOff.exchange);
}

await check('on = off', 'every result and error the client saw is identical, fast path on and off', async () => {
  assert(on.outcomes.length === off.outcomes.length, `${on.outcomes.length} outcomes on, ${off.outcomes.length} off`);
  on.outcomes.forEach((a, i) => {
    const b = off.outcomes[i];
    assert(a.step === b.step, `step ${i}: ${a.step} / ${b.step}`);
    assertEqual(a, b, `"${a.step}" (on, off)`);
  });
  return `${on.outcomes.length} outcomes`;
});

await check('on = off', 'every HTTP exchange of the client identical: status, content type, body bytes', async () => {
  assert(on.exchanges.length === off.exchanges.length, `${on.exchanges.length} exchanges on, ${off.exchanges.length} off`);
  let bytes = 0;
  let sse = 0;
  on.exchanges.forEach((a, i) => {
    const b = off.exchanges[i];
    const what = `exchange ${i} (${a.httpMethod} ${a.method ?? ''} id ${a.id})`;
    assert(a.method === b.method && a.id === b.id, `${what}: off sent ${b.method} id ${b.id}`);
    assert(a.status === b.status, `${what}: status ${a.status} on, ${b.status} off`);
    assert(a.contentType === b.contentType, `${what}: content-type ${a.contentType} on, ${b.contentType} off`);
    assert(a.body && b.body, `${what}: a body could not be read`);
    if (a.body === 'sse' || b.body === 'sse') {
      assert(a.body === b.body, `${what}: an SSE answer on one side only`);
      sse++;
      return;
    }
    if (!a.body.equals(b.body)) {
      throw new Error(`${what}: bodies differ\n  on:  ${a.body.toString('utf8').slice(0, 600)}\n  off: ${b.body.toString('utf8').slice(0, 600)}`);
    }
    bytes += a.body.length;
  });
  return `${on.exchanges.length} exchanges, ${bytes} bytes${sse ? `; ${sse} SSE answer(s) by status and type (their bytes: raw-modern)` : ''}`;
});

const failed = results.filter((r) => !r.ok);
console.log(`[modern] ${results.length - failed.length}/${results.length} checks passed${failed.length ? `, ${failed.length} FAILED` : ''}`);
process.exit(failed.length ? 1 : 0);
