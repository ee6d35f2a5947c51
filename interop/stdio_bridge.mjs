#!/usr/bin/env node
// The MCP conformance suite tests servers over HTTP only (`conformance server --url`). This bridge lets it
// reach our *stdio* transport: an HTTP endpoint made of the TypeScript SDK's own Streamable HTTP server
// transport that, for each MCP session, launches `PYTHON -m mcp_server serve ARGS...` with the SDK's
// StdioClientTransport and relays every JSON-RPC message both ways unchanged. It speaks no MCP itself: the
// initialize result, every reply and every error come from our stdio server, written by our MessageWriter.
// What it cannot pass through is HTTP behaviour (Host/Origin checks, SSE streams): those scenarios test the
// bridge (conformance_report.mjs --stdio-bridge marks them).
//
//   node stdio_bridge.mjs --port N --python PYTHON -- serve --tools DIR ...

import { randomUUID } from 'node:crypto';
import http from 'node:http';

import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

const argv = process.argv.slice(2);
const split = argv.indexOf('--');
const own = split >= 0 ? argv.slice(0, split) : argv;
const serverArgs = split >= 0 ? argv.slice(split + 1) : ['serve'];
const option = (name) => {
  const at = own.indexOf(name);
  return at >= 0 ? own[at + 1] : undefined;
};
const port = Number(option('--port'));
const python = option('--python');
if (!port || !python) {
  console.error('usage: stdio_bridge.mjs --port N --python PYTHON -- serve ARGS...');
  process.exit(2);
}

const MAX_LIVE = 4; // the suite runs scenarios one after another and never ends its sessions: keep a few
const sessions = new Map(); // session id -> { http, stdio }
const live = []; // every open session, oldest first

async function closeSession(entry) {
  const index = live.indexOf(entry);
  if (index >= 0) live.splice(index, 1);
  if (entry.http.sessionId) sessions.delete(entry.http.sessionId);
  await entry.stdio.close().catch(() => {});
  await entry.http.close().catch(() => {});
}

async function openSession() {
  const stdio = new StdioClientTransport({
    command: python,
    args: ['-m', 'mcp_server', ...serverArgs],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
    stderr: 'inherit',
  });
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    // Registered before the initialize reply is sent: the client's next request may come at once.
    onsessioninitialized: (id) => sessions.set(id, entry),
    enableDnsRebindingProtection: true,
    allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`],
  });
  const entry = { http: transport, stdio };
  transport.onmessage = (message) => {
    stdio.send(message).catch((error) => console.error(`bridge: to stdio: ${error}`));
  };
  stdio.onmessage = (message) => {
    transport.send(message).catch((error) => console.error(`bridge: to HTTP: ${error}`));
  };
  stdio.onclose = () => {
    if (live.includes(entry)) console.error('bridge: the stdio server exited while its session was open');
  };
  await stdio.start();
  await transport.start();
  live.push(entry);
  while (live.length > MAX_LIVE) await closeSession(live[0]);
  return entry;
}

const server = http.createServer(async (req, res) => {
  try {
    const { pathname } = new URL(req.url, `http://${req.headers.host ?? '127.0.0.1'}`);
    if (pathname !== '/mcp') {
      res.writeHead(404).end();
      return;
    }
    const sessionId = req.headers['mcp-session-id'];
    if (sessionId) {
      const entry = sessions.get(sessionId);
      if (!entry) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
        return;
      }
      await entry.http.handleRequest(req, res);
      if (req.method === 'DELETE') await closeSession(entry);
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: no session' }, id: null }));
      return;
    }
    // A POST without a session: an initialize for a new stdio server (the SDK transport refuses anything else).
    const entry = await openSession();
    await entry.http.handleRequest(req, res);
    if (!entry.http.sessionId) await closeSession(entry);
  } catch (error) {
    console.error(`bridge: ${error?.stack ?? error}`);
    if (!res.headersSent) res.writeHead(500).end();
  }
});

const shutdown = async () => {
  server.close();
  await Promise.all([...live].map(closeSession));
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
server.listen(port, '127.0.0.1', () => console.error(`bridge: http://127.0.0.1:${port}/mcp -> stdio ${python} -m mcp_server ${serverArgs.join(' ')}`));
