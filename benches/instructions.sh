#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind: the proxy (pass-through and a
# legacy invite) and nginx (pass-through), each on its own under the same wrk load.
#
#   benches/instructions.sh [SECONDS]      (default 5 s of load per row)
#
# Unlike req/s, an instruction count does not depend on what else the machine is doing, so it
# is the figure to compare changes by on a noisy machine (kernel time is not counted: the two
# proxies make the same system calls per request, see benches/README.md). It prints a markdown
# table, and the ten functions with the most instructions of each proxy row.
set -euo pipefail

secs=${1:-5}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
log() { printf 'instructions: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 2
}

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for t in valgrind callgrind_control wrk curl "$NGINX"; do
    command -v "$t" >/dev/null || die "missing $t (apt-get install valgrind wrk curl nginx)"
done

log "building (release)"
(cd "$root" && cargo build --release --quiet --bin onezone-migration-proxy --example bench_upstream) >&2
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
PROXY_BIN=$target_dir/release/onezone-migration-proxy
UP_BIN=$target_dir/release/examples/bench_upstream

tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fixture_json=$("$UP_BIN" --fixture)
fixture() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$fixture_json" "$1"; }
TOKEN=$(fixture alice_token)
GROUP=$(fixture group_id)
PREFIX=$(fixture api_prefix)

"$UP_BIN" 127.0.0.1:0 --threads 1 --standin >"$tmp/up.out" 2>"$tmp/up.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^standin ' "$tmp/up.out" 2>/dev/null && break; sleep 0.1; done
DIRECT=$(sed -n 1p "$tmp/up.out")
STANDIN=$(sed -n 's/^standin //p' "$tmp/up.out")
[[ -n $STANDIN ]] || die "bench_upstream did not start: $(cat "$tmp/up.log")"

cat >"$tmp/legacy.lua" <<EOF
wrk.method = "POST"
wrk.headers["X-Auth-Token"] = "$TOKEN"
EOF
: >"$tmp/plain.lua"

# measure NAME PORT PATH LUA CMD...: runs CMD under callgrind, counts the instructions of
# SECONDS of wrk load after a warm-up, prints "NAME instructions requests non2xx".
measure() {
    local name=$1 port=$2 path=$3 lua=$4 vpid out
    shift 4
    valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$tmp/$name.cg.%p" \
        "$@" >"$tmp/$name.log" 2>&1 &
    vpid=$!
    pids+=("$vpid")
    for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
    wrk -t1 -c8 -d2s -s "$tmp/$lua" "http://127.0.0.1:$port$path" >/dev/null
    callgrind_control -z "$vpid" >/dev/null
    out=$(wrk -t1 -c8 -d"${secs}s" -s "$tmp/$lua" "http://127.0.0.1:$port$path")
    callgrind_control -d "$vpid" >/dev/null
    sleep 1
    kill -INT "$vpid" 2>/dev/null || true
    wait "$vpid" 2>/dev/null || true
    local dump
    dump=$(ls "$tmp/$name".cg.*.1 2>/dev/null | head -1)
    [[ -n $dump ]] || die "$name: no callgrind dump ($(tail -3 "$tmp/$name.log"))"
    local ir requests bad
    ir=$(awk '/^summary:/{print $2; exit}' "$dump")
    requests=$(awk '/requests in/{print $1}' <<<"$out")
    bad=$(awk '/Non-2xx/{print $NF}' <<<"$out")
    echo "$name $ir $requests ${bad:-0}"
    # The ten functions with the most instructions of their own.
    awk '/^fn=/{fn=substr($0,4); next} /^calls=/{skip=1; next}
         /^[0-9+*-]/{ if (skip) {skip=0; next} if (NF>=2) cost[fn]+=$2 }
         END {for (f in cost) printf "%d\t%s\n", cost[f], f}' "$dump" |
        sort -rn >"$tmp/$name.all"
    head -10 "$tmp/$name.all" >"$tmp/$name.top"
}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

proxy_conf() {
    cat >"$tmp/$1.toml" <<EOF
[listen]
http = ["127.0.0.1:$2"]
[upstream]
url = "http://$3"
[server]
threads = 1
grace_period = "1s"
shutdown_timeout = "1s"
[log]
level = "warn"
EOF
}

rows=()
p=$(port)
proxy_conf pass "$p" "$DIRECT"
log "proxy, pass-through"
rows+=("$(measure proxy-pass "$p" "$PREFIX/user/spaces" plain.lua "$PROXY_BIN" --config "$tmp/pass.toml")")

p=$(port)
proxy_conf legacy "$p" "$STANDIN"
log "proxy, legacy invite"
rows+=("$(measure proxy-legacy "$p" "$PREFIX/groups/$GROUP/users/token" legacy.lua "$PROXY_BIN" --config "$tmp/legacy.toml")")

p=$(port)
mkdir -p "$tmp/nginx"
sed -e "s|@WORKERS@|1|g" -e "s|@LISTEN@|127.0.0.1:$p|g" -e "s|@UPSTREAM@|$DIRECT|g" \
    -e "s|@PREFIX@|$tmp/nginx|g" -e "s|master_process on;|master_process off;|" \
    "$here/nginx.conf" >"$tmp/nginx/nginx.conf"
log "nginx, pass-through"
rows+=("$(measure nginx-pass "$p" "$PREFIX/user/spaces" plain.lua "$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf")")

status=0
echo "| row | requests | instructions per request | vs nginx |"
echo "|---|---|---|---|"
nginx_ipr=$(awk '$1=="nginx-pass" && $3>0 {printf "%d", $2/$3}' <<<"$(printf '%s\n' "${rows[@]}")")
for r in "${rows[@]}"; do
    read -r name ir requests bad <<<"$r"
    if [[ -z $requests || $requests == 0 || $bad != 0 ]]; then
        log "$name: $requests requests, $bad non-2xx"
        status=1
        continue
    fi
    ipr=$((ir / requests))
    echo "| $name | $requests | $ipr | $(awk -v a="$ipr" -v b="${nginx_ipr:-0}" 'BEGIN{if (b>0) printf "%.2f", a/b; else print "-"}') |"
done
for name in proxy-pass proxy-legacy; do
    echo
    echo "Top functions, $name (instructions of their own, all requests):"
    echo
    awk -F'\t' '{printf "    %12d  %s\n", $1, substr($2, 1, 110)}' "$tmp/$name.top"
done
exit $status
