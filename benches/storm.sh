#!/usr/bin/env bash
# The load benchmark: a storm of buys from a crowd of distinct users against the release build
# on the embedded store, measured with wrk. Everything runs on 127.0.0.1 and stops by itself.
#
#   bash benches/storm.sh                      # defaults below
#   USERS=200000 DURATION=30s bash benches/storm.sh
#   STORE=redis bash benches/storm.sh          # on a redis-server started here (free port)
#   STORE=redis REPLICA=1 WAIT='{ replicas: 1, timeout: 20ms }' bash benches/storm.sh
#                                              # with a replica, each reservation WAITed for
#
# Needs wrk (apt-get install wrk), python3 (the stand-in origin) and, for STORE=redis,
# redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-100000}          # distinct logged-in users
STOCK=${STOCK:-500}             # units on sale
DURATION=${DURATION:-15s}       # wrk run time
CONNECTIONS=${CONNECTIONS:-256} # wrk connections
WRK_THREADS=${WRK_THREADS:-1}   # wrk threads
EDGE_THREADS=${EDGE_THREADS:-1} # flashgate worker threads
STORE=${STORE:-memory}          # memory | redis
REPLICA=${REPLICA:-0}           # redis: 1 starts a replica of the store
WAIT=${WAIT:-}                  # redis: store.wait, e.g. "{ replicas: 1, timeout: 20ms }"

command -v wrk >/dev/null || { echo "storm: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
bin=target/release/flashgate

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listen=$(free_port); admin=$(free_port); origin=$(free_port)
store="{ kind: memory }"
if [ "$STORE" = redis ]; then
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes \
    --appendfsync everysec --dir "$tmp" > "$tmp/redis.log" 2>&1 & pids+=($!)
  for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  if [ "$REPLICA" = 1 ]; then
    replica_port=$(free_port)
    mkdir -p "$tmp/replica"
    redis-server --port "$replica_port" --bind 127.0.0.1 --save "" --dir "$tmp/replica" \
      --replicaof 127.0.0.1 "$redis_port" > "$tmp/replica.log" 2>&1 & pids+=($!)
    for _ in $(seq 1 100); do
      redis-cli -p "$replica_port" info replication 2>/dev/null | grep -q 'master_link_status:up' && break
      sleep 0.1
    done
  fi
  store="{ kind: redis, url: 'redis://127.0.0.1:$redis_port'${WAIT:+, wait: $WAIT} }"
fi
now=$(date -u +%s)
cat > "$tmp/storm.yaml" <<YAML
listen: 127.0.0.1:$listen
admin_listen: 127.0.0.1:$admin
threads: $EDGE_THREADS
secrets: { login: storm-login-secret-0123456789abcdef-0123, edge: storm-edge-secret-0123456789abcdef-01234 }
origin: { url: "http://127.0.0.1:$origin", path: /orders }
store: $store
static_dir: static
catalog: { products: [1-1000] }
sales:
  - { product: 42, stock: $STOCK, starts_at: "$(date -u -d @$((now - 60)) +%FT%TZ)", ends_at: "$(date -u -d @$((now + 3600)) +%FT%TZ)" }
limits:
  - { name: per-ip, key: ip, requests: 100000000, per: 10s, expected_keys: 1000 }
  - { name: per-uid, key: uid, requests: 5, per: 10s, expected_keys: $USERS }
  - { name: global, key: global, requests: 100000000, per: 1s }
YAML

[ "$STORE" = redis ] && "$bin" stock load --config "$tmp/storm.yaml"
python3 scripts/echo-origin.py "$origin" > "$tmp/origin.log" 2>&1 & pids+=($!)
RUST_LOG=warn "$bin" run --config "$tmp/storm.yaml" 2> "$tmp/edge.log" & pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$admin/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$admin/healthz" >/dev/null || { cat "$tmp/edge.log"; exit 1; }

echo "storm: minting $USERS login tokens"
"$bin" token --config "$tmp/storm.yaml" --uid "1-$USERS" --prefix u > "$tmp/tokens"
path=$(curl -fs "http://127.0.0.1:$listen/sale/42/button.js" | grep -o '/buy/42/[0-9a-f]*')

echo "storm: $CONNECTIONS connections, $DURATION, $USERS users, stock $STOCK, store $STORE, edge threads $EDGE_THREADS${WAIT:+, wait $WAIT}"
[ "$STORE" = redis ] && redis-cli -p "$redis_port" config resetstat >/dev/null
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/storm.lua \
  "http://127.0.0.1:$listen$path" -- "$tmp/tokens"

echo "storm: edge counters"
curl -fs "http://127.0.0.1:$admin/metrics" \
  | grep -E '^flashgate_(requests_total\{.*route="buy"|stock_remaining|store_seconds_(count|sum)|reservations_unacknowledged_total)' | grep -v ' 0$'
if [ "$STORE" = redis ]; then
  echo "storm: redis commands during the storm (scripts' inner commands included)"
  redis-cli -p "$redis_port" info commandstats | grep -E '^cmdstat_(evalsha|eval|get|script)' || true
  "$bin" stock show --config "$tmp/storm.yaml"
fi
wins=$(grep -c x-flashgate-reservation "$tmp/origin.log" || true)
echo "storm: origin received $wins orders (stock $STOCK)"
[ "$wins" -le "$STOCK" ] || { echo "storm: OVERSOLD" >&2; exit 1; }
