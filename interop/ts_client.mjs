#!/usr/bin/env node
// The official TypeScript MCP SDK as an independent client of mcp-connectors.
//
//   node ts_client.mjs --transport stdio --python .venv/bin/python --tools DIR [--tools DIR] --page-size 3 \
//        --call interop_get_data --expect fixtures/upstream/data.json --error-tool interop_get_missing \
//        [--typed-error-tool interop_get_missing_typed] [--catalog tools.json] [--raw]
//   node ts_client.mjs --transport http --url http://127.0.0.1:N/mcp --page-size 3 --call ... [--catalog tools.json]
//   node ts_client.mjs --transport sse --url http://127.0.0.1:N/sse --page-size 3 --call ... [--catalog tools.json]
//   (--label NAME prefixes the output lines; default: the transport)
//
// stdio: StdioClientTransport launches `PYTHON -m mcp_server serve --tools DIR... --page-size N` itself.
// http: StreamableHTTPClientTransport; sse: SSEClientTransport (the legacy HTTP+SSE transport, GET /sse).
// Checks: initialize, ping, every tools/list page (nextCursor) twice and four times at once, all identical,
// every tool with a name and an object inputSchema, the tools equal to `mcp-connectors tools --json`
// (--catalog), a tool call checked against the upstream file (text content, structuredContent validated by the
// SDK against the tool's outputSchema), a tool error (isError), the same for a tool with an outputSchema
// (--typed-error-tool; a known issue, reported as XFAIL: see README.md "Findings"), an unknown tool and a bad
// cursor (-32602).
// --raw (stdio) also speaks JSON-RPC to the server directly and compares, byte for byte, what our pipe writer
// (stdout a pipe: mcp_server/_stdio_pipes.py MessageWriter, cached pages from _listing_cache.wire_json) sends
// with what the SDK's own stdio writer sends for the same requests (stdout a regular file).
// Prints PASS/FAIL/XFAIL per check; exits 1 on any failure, 2 on bad usage.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { assert, assertEqual } from './compare.mjs';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, LATEST_PROTOCOL_VERSION, McpError } from '@modelcontextprotocol/sdk/types.js';

const { values: opts } = parseArgs({
  options: {
    transport: { type: 'string' },
    url: { type: 'string' },
    python: { type: 'string' },
    tools: { type: 'string', multiple: true, default: [] },
    'page-size': { type: 'string' },
    call: { type: 'string' },
    expect: { type: 'string' },
    'error-tool': { type: 'string' },
    'typed-error-tool': { type: 'string' },
    catalog: { type: 'string' },
    raw: { type: 'boolean', default: false },
    timeout: { type: 'string', default: '120' },
    label: { type: 'string' },
  },
});

function usage(message) {
  console.error(`ts_client.mjs: ${message}`);
  process.exit(2);
}

const transportKind = opts.transport;
if (!['stdio', 'http', 'sse'].includes(transportKind)) usage('--transport stdio|http|sse is required');
if (transportKind === 'stdio' && !opts.python) usage('--python is required with --transport stdio');
if (transportKind !== 'stdio' && !opts.url) usage(`--url is required with --transport ${transportKind}`);
if (!opts.call || !opts.expect || !opts['error-tool']) usage('--call, --expect and --error-tool are required');
const pageSize = opts['page-size'] ? Number(opts['page-size']) : undefined;
const expected = JSON.parse(fs.readFileSync(opts.expect, 'utf8'));
const catalog = opts.catalog ? JSON.parse(fs.readFileSync(opts.catalog, 'utf8')) : undefined;
const label = opts.label ?? transportKind;

const serverArgs = ['-m', 'mcp_server', 'serve'];
for (const dir of opts.tools) serverArgs.push('--tools', dir);
if (pageSize !== undefined) serverArgs.push('--page-size', String(pageSize));

const results = [];

/** A failure already described in README.md ("Findings"): reported as XFAIL, not counted as a failure. */
class KnownIssue extends Error {}
let serverStderr = ''; // the stdio server's log lines, shown when a check fails

async function check(name, fn) {
  const started = performance.now();
  try {
    const note = await fn();
    const ms = (performance.now() - started).toFixed(0);
    results.push({ name, ok: true });
    console.log(`PASS [${label}] ${name}${note ? ` — ${note}` : ''} (${ms} ms)`);
    return true;
  } catch (error) {
    if (error instanceof KnownIssue) {
      results.push({ name, ok: true, known: true });
      console.log(`XFAIL [${label}] ${name}: ${error.message}`);
      return true;
    }
    results.push({ name, ok: false, error });
    console.log(`FAIL [${label}] ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  }
}

// -- through the SDK's Client --------------------------------------------------------------------------------

async function listAll(client) {
  const pages = [];
  let cursor;
  do {
    const page = await client.listTools(cursor === undefined ? undefined : { cursor });
    pages.push(page);
    cursor = page.nextCursor;
    assert(pages.length <= 10_000, 'more than 10,000 pages: the cursor does not advance');
  } while (cursor !== undefined);
  return pages;
}

function checkListing(pages) {
  const tools = pages.flatMap((page) => page.tools);
  assert(tools.length > 0, 'no tools listed');
  const names = new Set();
  for (const tool of tools) {
    assert(typeof tool.name === 'string' && tool.name.length > 0, `a tool without a name: ${JSON.stringify(tool).slice(0, 200)}`);
    assert(!names.has(tool.name), `tool ${tool.name} listed twice`);
    names.add(tool.name);
    const schema = tool.inputSchema;
    assert(schema && typeof schema === 'object' && schema.type === 'object', `${tool.name}: inputSchema is not an object schema`);
  }
  if (pageSize !== undefined) {
    // Every page but the last holds --page-size tools. The last holds the rest of the registry's tools and,
    // by design (mcp_server/_server.py list_tools), the built-in tools (batch_invoke) after them, which may
    // take it past --page-size.
    pages.slice(0, -1).forEach((page, index) => {
      assert(page.tools.length === pageSize, `page ${index} has ${page.tools.length} tools, not --page-size ${pageSize}`);
    });
    assert(pages.at(-1).tools.length > 0, 'an empty last page');
  }
  return tools;
}

function toolResultText(result) {
  assert(Array.isArray(result.content) && result.content.length > 0, 'no content');
  const text = result.content.find((item) => item.type === 'text');
  assert(text && typeof text.text === 'string' && text.text.length > 0, 'no text content');
  return text.text;
}

async function sdkChecks() {
  let transport;
  if (transportKind === 'stdio') {
    transport = new StdioClientTransport({
      command: opts.python,
      args: serverArgs,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
      stderr: 'pipe',
    });
    transport.stderr.on('data', (chunk) => {
      serverStderr = (serverStderr + chunk).slice(-20_000);
    });
  } else if (transportKind === 'sse') {
    transport = new SSEClientTransport(new URL(opts.url));
  } else {
    transport = new StreamableHTTPClientTransport(new URL(opts.url));
  }
  const client = new Client({ name: 'mcp-connectors-interop', version: '1.0.0' }, { capabilities: {} });

  if (!(await check('initialize', async () => {
    await client.connect(transport);
    const info = client.getServerVersion();
    assert(info && info.name === 'mcp-connectors', `serverInfo ${JSON.stringify(info)}`);
    assert(client.getServerCapabilities()?.tools, 'no tools capability');
    const session = transport.sessionId ? `, session ${transport.sessionId.slice(0, 8)}…` : '';
    return `${info.name} ${info.version}, client protocol ${LATEST_PROTOCOL_VERSION}${session}`;
  }))) {
    return;
  }

  await check('ping', async () => {
    const result = await client.ping();
    assertEqual(result, {}, 'ping result and {}');
  });

  let first;
  await check('tools/list, every page (first listing)', async () => {
    first = await listAll(client);
    const tools = checkListing(first);
    const last = first.at(-1).tools.length;
    return `${tools.length} tools on ${first.length} pages${pageSize !== undefined && last > pageSize ? ` (the last has ${last}: the built-ins follow the registry's last page)` : ''}`;
  });

  await check('tools/list, every page again (cached pages), identical to the first', async () => {
    assert(first, 'no first listing');
    const second = await listAll(client);
    checkListing(second);
    assertEqual(second, first, 'second and first listing');
  });

  await check('tools/list, four listings at once, each identical to the first', async () => {
    assert(first, 'no first listing');
    const listings = await Promise.all([1, 2, 3, 4].map(() => listAll(client)));
    listings.forEach((listing, index) => assertEqual(listing, first, `concurrent listing ${index} and first listing`));
  });

  if (catalog) {
    await check('listed tools equal `mcp-connectors tools --json`', async () => {
      assert(first, 'no first listing');
      assertEqual(first.flatMap((page) => page.tools), catalog, 'listed tools and catalog');
    });
  }

  await check(`tools/call ${opts.call} (result checked against the upstream file)`, async () => {
    // The SDK validates structuredContent against the outputSchema of the tools of the last page it listed:
    // list the page that holds the tool, as a client about to call it would.
    let cursor;
    for (;;) {
      const page = await client.listTools(cursor === undefined ? undefined : { cursor });
      if (page.tools.some((tool) => tool.name === opts.call)) {
        assert(client.getToolOutputValidator(opts.call), `${opts.call} has no outputSchema (the check needs one)`);
        break;
      }
      assert(page.nextCursor !== undefined, `${opts.call} is not listed`);
      cursor = page.nextCursor;
    }
    const result = await client.callTool({ name: opts.call, arguments: {} });
    assert(result.isError !== true, `isError: ${JSON.stringify(result.content).slice(0, 300)}`);
    assertEqual(JSON.parse(toolResultText(result)), expected, 'text content and upstream file');
    assertEqual(result.structuredContent, expected, 'structuredContent and upstream file');
    return 'text + structuredContent (validated by the SDK against outputSchema)';
  });

  await check(`tools/call ${opts['error-tool']} (upstream 404 → isError)`, async () => {
    const result = await client.callTool({ name: opts['error-tool'], arguments: {} });
    assert(result.isError === true, `isError is ${result.isError}`);
    const text = toolResultText(result);
    assert(text.includes('404'), `error text does not mention 404: ${text.slice(0, 200)}`);
  });

  if (opts['typed-error-tool']) {
    const tool = opts['typed-error-tool'];
    await check(`tools/call ${tool} (upstream 404 → isError, tool with an outputSchema)`, async () => {
      let cursor;
      for (;;) { // load the tool's output validator, as for the call above
        const page = await client.listTools(cursor === undefined ? undefined : { cursor });
        if (page.tools.some((t) => t.name === tool)) break;
        assert(page.nextCursor !== undefined, `${tool} is not listed`);
        cursor = page.nextCursor;
      }
      assert(client.getToolOutputValidator(tool), `${tool} has no outputSchema (the check needs one)`);
      let result;
      // Fixed: the outputSchema is served as anyOf [result, error body], so SDK 1.x's check of isError results passes.
      result = await client.callTool({ name: tool, arguments: {} });
      assert(result.isError === true, `isError is ${result.isError}`);
      assert(toolResultText(result).includes('404'), 'error text does not mention 404');
      return 'the error body conforms to the served outputSchema';
    });
  }

  await check('tools/call of an unknown tool → JSON-RPC error -32602', async () => {
    try {
      const result = await client.callTool({ name: 'no_such_tool_anywhere', arguments: {} });
      throw new Error(`answered with a result: ${JSON.stringify(result).slice(0, 200)}`);
    } catch (error) {
      assert(error instanceof McpError, `not an McpError: ${error}`);
      assert(error.code === ErrorCode.InvalidParams, `code ${error.code}: ${error.message}`);
    }
  });

  await check('tools/list with a bad cursor → JSON-RPC error -32602', async () => {
    try {
      await client.listTools({ cursor: 'not-a-cursor' });
      throw new Error('answered with a result');
    } catch (error) {
      assert(error instanceof McpError, `not an McpError: ${error}`);
      assert(error.code === ErrorCode.InvalidParams, `code ${error.code}: ${error.message}`);
    }
  });

  await check('ping after everything else', async () => {
    assertEqual(await client.ping(), {}, 'ping result and {}');
  });

  if (transportKind === 'http' && transport.sessionId !== undefined) {
    await check('session terminated (DELETE)', async () => {
      await transport.terminateSession();
      assert(transport.sessionId === undefined, 'session id kept');
    });
  }
  await check('close', async () => {
    await client.close();
  });
}

// -- raw JSON-RPC lines on stdio, our pipe writer against the SDK's writer ------------------------------------

class RawServer {
  /** `stdout`: 'pipe' (our MessageWriter) or a path (a regular file: the SDK's own stdio writer). */
  constructor(stdout) {
    this.file = stdout === 'pipe' ? null : stdout;
    this.fd = this.file ? fs.openSync(this.file, 'w+') : null;
    this.buffer = Buffer.alloc(0);
    this.consumed = 0;
    this.stderr = '';
    this.child = spawn(opts.python, serverArgs, {
      stdio: ['pipe', this.fd ?? 'pipe', 'pipe'],
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    if (this.fd !== null) fs.closeSync(this.fd);
    this.child.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    if (!this.file) {
      this.child.stdout.on('data', (chunk) => {
        this.buffer = Buffer.concat([this.buffer, chunk]);
      });
    }
  }

  output() {
    return this.file ? fs.readFileSync(this.file) : this.buffer;
  }

  send(message) {
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  /** The next complete line (Buffer, without its newline). */
  async nextLine(timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const output = this.output();
      const end = output.indexOf(0x0a, this.consumed);
      if (end >= 0) {
        const line = output.subarray(this.consumed, end);
        this.consumed = end + 1;
        return line;
      }
      if (Date.now() > deadline) {
        throw new Error(`no reply line within ${timeoutMs} ms (${output.length - this.consumed} bytes pending); stderr:\n${this.stderr.slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  async request(message) {
    this.send(message);
    const line = await this.nextLine();
    const reply = JSON.parse(line.toString('utf8'));
    assert(reply.id === message.id, `reply id ${reply.id} for request ${message.id}: ${line.toString('utf8').slice(0, 200)}`);
    return { line, reply };
  }

  async close() {
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

async function rawSession(stdout) {
  const server = new RawServer(stdout);
  const transcript = [];
  let id = 0;
  let exit;
  const request = async (method, params) => {
    const message = { jsonrpc: '2.0', id: ++id, method, ...(params === undefined ? {} : { params }) };
    const { line, reply } = await server.request(message);
    transcript.push({ method, params, line, reply });
    return reply;
  };
  try {
    const init = await request('initialize', {
      protocolVersion: LATEST_PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'mcp-connectors-interop-raw', version: '1.0.0' },
    });
    assert(init.result, `initialize failed: ${JSON.stringify(init).slice(0, 300)}`);
    server.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    const listings = [];
    for (let round = 0; round < 2; round++) {
      const pages = [];
      let cursor;
      do {
        const reply = await request('tools/list', cursor === undefined ? {} : { cursor });
        assert(reply.result, `tools/list failed: ${JSON.stringify(reply).slice(0, 300)}`);
        pages.push(transcript.at(-1));
        cursor = reply.result.nextCursor;
      } while (cursor !== undefined);
      listings.push(pages);
    }
    await request('tools/call', { name: opts.call, arguments: {} });
    await request('tools/call', { name: opts['error-tool'], arguments: {} });
    if (opts['typed-error-tool']) await request('tools/call', { name: opts['typed-error-tool'], arguments: {} });
    await request('tools/call', { name: 'no_such_tool_anywhere', arguments: {} });
    await request('tools/list', { cursor: 'not-a-cursor' });
    await request('ping');
  } finally {
    exit = await server.close();
  }
  return { output: server.output(), transcript, exit, stderr: server.stderr };
}

/** initialize, then `count` requests sent at once and stdin closed straight after: the replies written. */
async function burstThenEof(stdout, count) {
  const server = new RawServer(stdout);
  let exit;
  try {
    await server.request({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mcp-connectors-interop-eof', version: '1.0.0' } },
    });
    const lines = [JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })];
    for (let id = 1; id <= count; id++) {
      const method = id % 2 ? 'ping' : 'tools/list';
      lines.push(JSON.stringify({ jsonrpc: '2.0', id, method, ...(method === 'tools/list' ? { params: {} } : {}) }));
    }
    server.child.stdin.write(`${lines.join('\n')}\n`);
  } finally {
    exit = await server.close();
  }
  const text = server.output().subarray(server.consumed).toString('utf8');
  const ids = text.split('\n').filter(Boolean).map((line) => JSON.parse(line).id);
  return { ids, exit };
}

/** A reply line from its `"result":` on: the bytes of a page, whatever the request id. */
function resultBytes(line) {
  const at = line.indexOf('"result":');
  assert(at > 0, `no "result" in ${line.toString('utf8').slice(0, 200)}`);
  return line.subarray(at);
}

async function rawChecks() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-interop-'));
  let pipe;
  let file;
  await check('raw stdio: replies written by our pipe writer', async () => {
    pipe = await rawSession('pipe');
    assert(pipe.exit.code === 0, `server exit ${JSON.stringify(pipe.exit)} after stdin closed; stderr:\n${pipe.stderr.slice(-1500)}`);
    const text = pipe.output;
    assert(text.length > 0 && text[text.length - 1] === 0x0a, 'output does not end with a newline');
    const lines = text.subarray(0, -1).toString('utf8').split('\n');
    assert(lines.length === pipe.transcript.length, `${lines.length} lines on stdout for ${pipe.transcript.length} requests (nothing else may be written)`);
    for (const line of lines) JSON.parse(line);
    assert(Buffer.from(text.toString('utf8'), 'utf8').equals(text), 'stdout is not valid UTF-8');
    return `${lines.length} lines, ${text.length} bytes, exit 0 on stdin EOF`;
  });
  if (!pipe) return;

  await check('raw stdio: second listing byte-identical to the first (cached pages, pre-serialized text)', async () => {
    const pages = pipe.transcript.filter((entry) => entry.method === 'tools/list' && entry.reply.result);
    assert(pages.length % 2 === 0, `odd number of pages ${pages.length}`);
    const half = pages.length / 2;
    for (let i = 0; i < half; i++) {
      const a = resultBytes(pages[i].line);
      const b = resultBytes(pages[half + i].line);
      assert(a.equals(b), `page ${i}: ${a.length} bytes the first time, ${b.length} the second`);
      assert(isDeepStrictEqual(JSON.parse(a.subarray(9, -1).toString()), pages[i].reply.result), `page ${i}: result not at the end of the envelope`);
    }
    return `${half} pages`;
  });

  if (catalog) {
    await check('raw stdio: listed tools equal `mcp-connectors tools --json`', async () => {
      const pages = pipe.transcript.filter((entry) => entry.method === 'tools/list' && entry.reply.result);
      const tools = pages.slice(0, pages.length / 2).flatMap((entry) => entry.reply.result.tools);
      assertEqual(tools, catalog, 'raw listed tools and catalog');
    });
  }

  await check('raw stdio: every byte equal to what the SDK\'s own stdio writer sends (stdout a regular file)', async () => {
    file = await rawSession(path.join(tmp, 'sdk-writer.jsonl'));
    assert(file.exit.code === 0, `server exit ${JSON.stringify(file.exit)}; stderr:\n${file.stderr.slice(-1500)}`);
    if (!file.output.equals(pipe.output)) {
      const a = pipe.output.toString('utf8').split('\n');
      const b = file.output.toString('utf8').split('\n');
      const index = a.findIndex((line, i) => line !== b[i]);
      throw new Error(`line ${index + 1} differs:\n  pipe: ${a[index]?.slice(0, 300)}\n  file: ${b[index]?.slice(0, 300)}`);
    }
    return `${file.output.length} bytes identical`;
  });

  const cache = process.env.MCP_CONNECTORS_STARTUP_CACHE;
  if (file && cache && cache.toLowerCase() !== 'off') {
    // The first session wrote a start-up snapshot (mcp_server/_warm_start.py); the second, same command and
    // environment, answered initialize and the listing from it while loading: the bytes above included those.
    await check('raw stdio: the second start answered initialize and every page from the start-up snapshot', async () => {
      const found = /answered initialize and (\d+) tools\/list page\(s\) from the start-up snapshot/.exec(file.stderr);
      assert(found, `no answer from the snapshot in the second server's log:\n${file.stderr.slice(-1500)}`);
      const pages = pipe.transcript.filter((entry) => entry.method === 'tools/list' && entry.reply.result).length / 2;
      assert(Number(found[1]) === pages, `${found[1]} pages from the snapshot, the listing has ${pages}`);
      return `${found[1]} pages`;
    });
  }

  const burst = 20;
  await check(`raw stdio: ${burst} requests then stdin closed at once: every reply written before exit (our pipe writer)`, async () => {
    const { ids, exit } = await burstThenEof('pipe', burst);
    assert(exit.code === 0, `server exit ${JSON.stringify(exit)}`);
    assert(ids.length === burst, `${ids.length} replies of ${burst} (ids ${ids.join(',')})`);
  });
  await check(`raw stdio: ${burst} requests then stdin closed at once, stdout a regular file (blocking writer)`, async () => {
    const { ids, exit } = await burstThenEof(path.join(tmp, 'file-eof.jsonl'), burst);
    assert(exit.code === 0, `server exit ${JSON.stringify(exit)}`);
    assert(ids.length === burst, `${ids.length} replies of ${burst} (ids ${ids.join(',')})`);
  });
  fs.rmSync(tmp, { recursive: true, force: true });
}

// -------------------------------------------------------------------------------------------------------------

const watchdog = setTimeout(() => {
  console.log(`FAIL [${label}] the checks did not finish within ${opts.timeout} s (a hang)`);
  if (serverStderr) console.log(`--- [${label}] server stderr (last lines) ---\n${serverStderr.slice(-4000)}`);
  process.exit(1);
}, Number(opts.timeout) * 1000);
watchdog.unref();

await sdkChecks();
if (opts.raw) {
  if (transportKind !== 'stdio') usage('--raw needs --transport stdio');
  await rawChecks();
}

const failed = results.filter((result) => !result.ok);
if (failed.length && serverStderr) console.log(`--- [${label}] server stderr (last lines) ---\n${serverStderr.slice(-4000)}`);
const known = results.filter((result) => result.known).length;
console.log(`[${label}] ${results.length - failed.length - known}/${results.length} checks passed${known ? `, ${known} known issue(s) (XFAIL)` : ''}${failed.length ? `, ${failed.length} FAILED` : ''}`);
process.exit(failed.length ? 1 : 0);
