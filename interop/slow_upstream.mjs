#!/usr/bin/env node
// A fake upstream that answers late: GET /wait/<seconds> waits that long, then answers JSON with non-ASCII
// text. The 2026-07-28 checks call it (fixtures/modern-tools/slow.yaml) for a tools/call that outlasts the
// server's 15 s window, so the answer is deferred to an SSE stream (a comment ping, then the result event),
// on the fast path and on the SDK's.
//
//   node slow_upstream.mjs --port N        (run.sh starts it; 127.0.0.1 only)

import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({ options: { port: { type: 'string' } } });
if (!opts.port) {
  console.error('slow_upstream.mjs: --port is required');
  process.exit(2);
}

const server = http.createServer((request, response) => {
  const match = /^\/wait\/(\d+(?:\.\d+)?)$/.exec(new URL(request.url, 'http://x').pathname);
  if (request.method !== 'GET' || !match) {
    response.writeHead(404, { 'content-type': 'application/json' }).end('{"error": "not found"}');
    return;
  }
  const seconds = Math.min(Number(match[1]), 60);
  const timer = setTimeout(() => {
    const body = JSON.stringify({ waited_seconds: seconds, text: 'lentement — ☃ 𝄞' });
    response.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(body);
  }, seconds * 1000);
  request.on('close', () => {
    if (!response.writableEnded) clearTimeout(timer);
  });
});
server.listen(Number(opts.port), '127.0.0.1', () => console.log(`slow upstream on http://127.0.0.1:${opts.port}`));
