#!/usr/bin/env bash
# bench/run.sh: accel side by side with nginx, HAProxy and Varnish on this
# machine, loopback only. It starts one origin (bench/origin) and every
# system with the configs in bench/accel.yaml and bench/peers/, runs each
# scenario for all of them interleaved (A B C D, D C B A, ...), and prints
# Markdown tables of medians: req/s with ratios to accel, server CPU-seconds
# per 100k requests, memory, coalescing, and how many origin fetches each
# scenario caused (the check that every system really caches the hits).
#
#   bench/run.sh                 # full run: ROUNDS=3, DURATION=6 (about 17 min on 2 cores)
#   QUICK=1 bench/run.sh         # smoke run: 1 round of 1 s (about 2 min)
#   ROUNDS=5 DURATION=10 SYSTEMS="accel haproxy" bench/run.sh
#   SCENARIOS="h1-1k miss-nostore" SYSTEMS="accel haproxy" bench/run.sh
#
# Environment: ROUNDS, DURATION (seconds per measurement), SYSTEMS (subset
# of "accel nginx haproxy varnish floor accelmem"; floor, bench/floor, is
# not in the default: it is the least a Go server does for the HTTP/1 rows,
# the reference for what accel costs above the Go runtime and the kernel;
# nor is accelmem, accel with its persistent tier off, memory only as
# HAProxy's cache and Varnish's malloc storage: what persistence costs),
# SCENARIOS (subset of the scenario
# names below, with coalescing and idle; all by default), IDLE_CONNS
# (10000), PIN (1: servers and load on separate cores, see below; 0:
# shared), PORT_BASE (24000:
# the run uses PORT_BASE..PORT_BASE+446), KEEP=1 keeps the work directory.
# Progress goes to stderr, the tables to stdout. Not part of CI.
set -euo pipefail

if [ "${QUICK:-0}" = 1 ]; then
	ROUNDS=${ROUNDS:-1}
	DURATION=${DURATION:-1}
	IDLE_CONNS=${IDLE_CONNS:-2000}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
IDLE_CONNS=${IDLE_CONNS:-10000}
SYSTEMS=${SYSTEMS:-accel nginx haproxy varnish}
all_scenarios="h1-1k h1-16k h1-1m h1tls-1k miss-nostore miss-store h2c-1k h2tls-1k hs12-full hs12-resumed hs13-full hs13-resumed coalescing idle"
SCENARIOS=${SCENARIOS:-$all_scenarios}
PORT_BASE=${PORT_BASE:-24000}
read -r -a systems <<<"$SYSTEMS"
# scenarios: the measured ones with a row in the rate tables, in run order.
scenarios=()
for sc in $all_scenarios; do
	case $sc in coalescing | idle) continue ;; esac
	[[ " $SCENARIOS " = *" $sc "* ]] && scenarios+=("$sc")
done
wanted() { [[ " $SCENARIOS " = *" $1 "* ]]; }

repo=$(cd "$(dirname "$0")/.." && pwd)
bench=$repo/bench

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
for sc in $SCENARIOS; do
	[[ " $all_scenarios " = *" $sc "* ]] || die "unknown scenario $sc (SCENARIOS: $all_scenarios)"
done

# --- ports: one origin, then each system's cleartext, h2c and TLS ports ---
ORIGIN=$PORT_BASE
ACCEL_HTTP=$((PORT_BASE + 80)) ACCEL_TLS=$((PORT_BASE + 443))
NGINX_HTTP=$((PORT_BASE + 81)) NGINX_H2C=$((PORT_BASE + 82)) NGINX_TLS=$((PORT_BASE + 444))
HAPROXY_HTTP=$((PORT_BASE + 83)) HAPROXY_TLS=$((PORT_BASE + 445))
VARNISH_HTTP=$((PORT_BASE + 84))
FLOOR_HTTP=$((PORT_BASE + 85))
ACCELMEM_HTTP=$((PORT_BASE + 86)) ACCELMEM_TLS=$((PORT_BASE + 446))

# h1_port, h2c_port, tls_port SYSTEM: the port of that kind, or empty where
# the system has none (Varnish has no TLS, floor only HTTP/1.1; accelmem
# listens on TLS too, but its handshakes are accel's).
h1_port() {
	case $1 in
	accel) echo "$ACCEL_HTTP" ;; nginx) echo "$NGINX_HTTP" ;;
	haproxy) echo "$HAPROXY_HTTP" ;; varnish) echo "$VARNISH_HTTP" ;;
	floor) echo "$FLOOR_HTTP" ;; accelmem) echo "$ACCELMEM_HTTP" ;;
	esac
}
h2c_port() {
	case $1 in
	accel) echo "$ACCEL_HTTP" ;; nginx) echo "$NGINX_H2C" ;;
	haproxy) echo "$HAPROXY_HTTP" ;; varnish) echo "$VARNISH_HTTP" ;;
	accelmem) echo "$ACCELMEM_HTTP" ;;
	esac
}
tls_port() {
	case $1 in
	accel) echo "$ACCEL_TLS" ;; nginx) echo "$NGINX_TLS" ;;
	haproxy) echo "$HAPROXY_TLS" ;; varnish) echo "" ;;
	esac
}

# --- tools: install what is missing from Debian ---
install_missing() {
	local need=() pair
	for pair in wrk:wrk h2load:nghttp2-client nginx:nginx haproxy:haproxy varnishd:varnish \
		openssl:openssl curl:curl ss:iproute2 ps:procps; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
	done
	[ ${#need[@]} = 0 ] && return
	[ "$(id -u)" = 0 ] || die "missing ${need[*]}: run as root or apt-get install them"
	log "installing ${need[*]}"
	# Debian starts a package's service on install; the suite runs its own
	# copies on loopback and must leave nothing listening.
	local policy=/usr/sbin/policy-rc.d made=0
	if [ ! -e $policy ]; then
		printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && made=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	[ $made = 1 ] && rm -f $policy
	return 0
}
install_missing
command -v go >/dev/null || die "go is needed to build accel"

ulimit -n "$(ulimit -Hn)" # 10 000 idle connections: the client and every server need the descriptors
[ "$(ulimit -n)" -ge $((IDLE_CONNS + 500)) ] ||
	die "ulimit -n is $(ulimit -n); IDLE_CONNS=$IDLE_CONNS needs more (or lower IDLE_CONNS)"

# HAProxy reserves two descriptors per connection (client and server side)
# and refuses to start without them: where the hard limit is low (20 000 on
# the machine of the first runs) its maxconn ends a little below IDLE_CONNS.
HAPROXY_MAXCONN=$((IDLE_CONNS + 100))
[ $(((HAPROXY_MAXCONN * 2) + 40)) -le "$(ulimit -n)" ] || HAPROXY_MAXCONN=$((($(ulimit -n) - 40) / 2))

for p in $ORIGIN $ACCEL_HTTP $ACCEL_TLS $NGINX_HTTP $NGINX_H2C $NGINX_TLS $HAPROXY_HTTP $HAPROXY_TLS $VARNISH_HTTP $FLOOR_HTTP $ACCELMEM_HTTP $ACCELMEM_TLS; do
	[ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p is in use (set PORT_BASE)"
done

# --- cores: the servers on one half, the load on the other ---
# Each server is bound to the upper half of the cores, as a load
# generator runs on a machine of its own: wrk, h2load, the bench client
# and the origin are bound to the lower half. Sharing every core, a
# server's rate also measured how its scheduler yielded to wrk. Go's
# GOMAXPROCS, HAProxy's nbthread and Varnish's pools follow the binding;
# nginx's worker_processes auto counts every core online, so it is given
# the number. PIN=0 shares every core as the first runs did.
ncpu=$(nproc)
server_on=() load_on=() NGINX_WORKERS=$ncpu
if [ "${PIN:-1}" = 1 ]; then
	[ "$ncpu" -ge 2 ] || die "PIN=1 needs two cores or more (PIN=0 shares one)"
	half=$((ncpu / 2))
	cores() { if [ "$1" = "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }
	load_on=(taskset -c "$(cores 0 $((half - 1)))") server_on=(taskset -c "$(cores "$half" $((ncpu - 1)))")
	NGINX_WORKERS=$((ncpu - half))
fi

# --- work directory, processes, cleanup ---
RUN=$(mktemp -d /tmp/accel-bench.XXXXXX)
chmod 755 "$RUN"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 50); do
		local alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then log "work directory kept: $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: run CMD in the background, logging to $RUN/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$RUN/$name.log" 2>&1 &
	pids+=($!)
	eval "pid_$name=$!"
}

# wait_port PORT NAME: until something accepts on the port, or fail with
# the system's log.
wait_port() {
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	cat "$RUN/$2.log" >&2 || true
	die "$2 does not listen on $1"
}

# fill FILE >OUT: the config template with this run's ports and paths.
fill() {
	sed -e "s|@RUN@|$RUN|g" -e "s|@ORIGIN@|$ORIGIN|g" \
		-e "s|@ACCEL_HTTP@|$ACCEL_HTTP|g" -e "s|@ACCEL_TLS@|$ACCEL_TLS|g" \
		-e "s|@NGINX_HTTP@|$NGINX_HTTP|g" -e "s|@NGINX_H2C@|$NGINX_H2C|g" -e "s|@NGINX_TLS@|$NGINX_TLS|g" \
		-e "s|@HAPROXY_HTTP@|$HAPROXY_HTTP|g" -e "s|@HAPROXY_TLS@|$HAPROXY_TLS|g" \
		-e "s|@HAPROXY_MAXCONN@|$HAPROXY_MAXCONN|g" -e "s|@NGINX_WORKERS@|$NGINX_WORKERS|g" "$1"
}

# --- build and start ---
# As the Dockerfile builds the binary we ship: static (no cgo, so no libc
# mapped and pebble's memtables in the Go heap), paths trimmed, no symbol
# table. A default build on a machine with a C compiler links cgo, and
# after the same warm-up and hit run 23 MB of its file was resident
# against 19 of the static one's, which the RSS rows would count.
log "building accel and the bench tools into $RUN/bin (CGO_ENABLED=0 -trimpath -ldflags=-s -w, as the Dockerfile)"
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$RUN/bin/" ./cmd/accel ./bench/origin ./bench/client ./bench/floor)
BIN=$RUN/bin

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=bench.local -addext subjectAltName=DNS:bench.local,IP:127.0.0.1 \
	-keyout "$RUN/key.pem" -out "$RUN/cert.pem" 2>/dev/null
cat "$RUN/cert.pem" "$RUN/key.pem" >"$RUN/haproxy.pem"

start origin "${load_on[@]}" "$BIN/origin" -listen "127.0.0.1:$ORIGIN"
wait_port "$ORIGIN" origin

for s in "${systems[@]}"; do
	case $s in
	accel)
		mkdir -p "$RUN/accel"
		fill "$bench/accel.yaml" >"$RUN/accel.yaml"
		start accel "${server_on[@]}" "$BIN/accel" -config "$RUN/accel.yaml"
		;;
	nginx)
		mkdir -p "$RUN/nginx/cache"
		fill "$bench/peers/nginx.conf" >"$RUN/nginx.conf"
		start nginx "${server_on[@]}" nginx -p "$RUN/nginx" -e "$RUN/nginx/error.log" -c "$RUN/nginx.conf" -g 'daemon off;'
		;;
	haproxy)
		fill "$bench/peers/haproxy.cfg" >"$RUN/haproxy.cfg"
		start haproxy "${server_on[@]}" haproxy -db -f "$RUN/haproxy.cfg"
		;;
	varnish)
		mkdir -p "$RUN/varnish"
		fill "$bench/peers/varnish.vcl" >"$RUN/varnish.vcl"
		start varnish "${server_on[@]}" varnishd -F -j none -n "$RUN/varnish" -T none -a "127.0.0.1:$VARNISH_HTTP" \
			-f "$RUN/varnish.vcl" -s malloc,256m -p feature=+http2 -p timeout_idle=75
		;;
	floor)
		start floor "${server_on[@]}" "$BIN/floor" -listen "127.0.0.1:$FLOOR_HTTP" -origin "127.0.0.1:$ORIGIN"
		;;
	accelmem)
		# accel.yaml on ports and directories of its own, cache.dir off.
		mkdir -p "$RUN/accelmem"
		ACCEL_HTTP=$ACCELMEM_HTTP ACCEL_TLS=$ACCELMEM_TLS fill "$bench/accel.yaml" |
			sed -e "s|\"$RUN/accel/cache\"|off|" -e '/^  disk:/d' -e "s|$RUN/accel/|$RUN/accelmem/|" >"$RUN/accelmem.yaml"
		grep -q '^  dir: off$' "$RUN/accelmem.yaml" || die "accelmem: bench/accel.yaml no longer names the cache directory as run.sh expects"
		start accelmem "${server_on[@]}" "$BIN/accel" -config "$RUN/accelmem.yaml"
		;;
	*) die "unknown system $s (SYSTEMS: accel nginx haproxy varnish floor accelmem)" ;;
	esac
	for port in $(h1_port "$s") $(h2c_port "$s") $(tls_port "$s"); do wait_port "$port" "$s"; done
done
log "started: ${systems[*]} (work directory $RUN)"

# --- measuring a server: its process tree, CPU ticks, RSS ---
CLK_TCK=$(getconf CLK_TCK)

# tree PID: the PID and all its descendants (nginx's workers, Varnish's child).
tree() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			queue = root; out = ""
			while (queue != "") {
				split(queue, q, " "); queue = ""
				for (i in q) { out = out " " q[i]; queue = queue " " kids[q[i]] }
				gsub(/^ +| +$/, "", queue)
			}
			print out
		}'
}

# cpu_ticks SYSTEM: utime+stime of every process of the system.
cpu_ticks() {
	local pidvar=pid_$1 p line rest total=0
	for p in $(tree "${!pidvar}"); do
		line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		rest=${line##*) }
		read -r -a f <<<"$rest"
		total=$((total + f[11] + f[12]))
	done
	echo $total
}

# rss_mb SYSTEM: the sum of VmRSS of every process of the system, in MB.
rss_mb() {
	local pidvar=pid_$1 p kb=0 v
	for p in $(tree "${!pidvar}"); do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
		kb=$((kb + ${v:-0}))
	done
	echo $((kb / 1024))
}

origin_total() { curl -fsS "http://127.0.0.1:$ORIGIN/_count" | awk '{print $2}'; }
# origin_fetches PATH: how often the origin was asked for PATH ("" for
# all paths): a scenario's fetches are counted for its own path only, so
# that a miss still in flight from the previous one is not charged to it.
origin_fetches() {
	if [ -z "$1" ]; then origin_total; else curl -fsS "http://127.0.0.1:$ORIGIN/_count?path=$1"; fi
}

# --- scenarios ---
# Each measurement appends: scenario system round rate requests cpu_per_100k
# errors origin_fetches_per_100_requests.
results=$RUN/results.tsv
: >"$results"

# supports SCENARIO SYSTEM: whether the system can run it.
supports() {
	case $1 in
	h1tls-1k | h2tls-1k | hs*) [ -n "$(tls_port "$2")" ] ;;
	h2c-1k) [ -n "$(h2c_port "$2")" ] ;;
	coalescing) [ "$2" != floor ] ;; # not a cache: every request is a fetch
	*) return 0 ;;
	esac
}

# settle: until the origin has seen the last requests of the previous
# measurement (misses still in flight when the load tool stopped), so that
# they are not counted against the next one.
settle() {
	local a b
	for _ in $(seq 30); do
		a=$(origin_total)
		sleep 0.1
		b=$(origin_total)
		[ "$a" = "$b" ] && return 0
	done
}

# measure SCENARIO SYSTEM ROUND: one run of the load tool, its result line.
measure() {
	local sc=$1 s=$2 r=$3 out url rate requests errors
	settle
	local h1 tls
	h1="http://127.0.0.1:$(h1_port "$s")" tls="https://127.0.0.1:$(tls_port "$s")"
	local before_cpu before_origin opath=/1k
	case $sc in
	h1-16k) opath=/16k ;; h1-1m) opath=/1m ;; miss-nostore) opath=/nostore ;; miss-store) opath= ;;
	esac
	before_origin=$(origin_fetches "$opath")
	before_cpu=$(cpu_ticks "$s")
	case $sc in
	h1-1k | h1-16k | h1-1m | h1tls-1k | miss-nostore | miss-store)
		local conns=64 args=()
		case $sc in
		h1-1k) url=$h1/1k ;;
		h1-16k) url=$h1/16k ;;
		h1-1m) url=$h1/1m conns=16 ;;
		h1tls-1k) url=$tls/1k ;;
		miss-nostore) url=$h1/nostore ;;
		miss-store)
			url=$h1/
			args=(-s "$bench/store.lua" "$url" -- "$s-$r-$RANDOM$RANDOM")
			;;
		esac
		[ ${#args[@]} = 0 ] && args=("$url")
		out=$("${load_on[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s "${args[@]}" 2>&1) || true
		requests=$(awk '/requests in/ {print $1}' <<<"$out")
		rate=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
		errors=$(awk '/Socket errors:/ {gsub(",", ""); e += $4 + $6 + $8 + $10} /Non-2xx/ {e += $NF} END {print e + 0}' <<<"$out")
		;;
	h2c-1k | h2tls-1k)
		if [ "$sc" = h2c-1k ]; then url="http://127.0.0.1:$(h2c_port "$s")/1k"; else url=$tls/1k; fi
		out=$("${load_on[@]}" h2load -c16 -m32 -D "$DURATION" "$url" 2>&1) || true
		requests=$(awk '/^requests:/ {print $8}' <<<"$out")
		rate=$(awk '/^finished in/ {printf "%.0f", $4}' <<<"$out")
		errors=$(awk '/^requests:/ {f = $10 + $12 + $14} /^status codes:/ {n = $5 + $7 + $9} END {print f + n}' <<<"$out")
		;;
	hs12-full | hs12-resumed | hs13-full | hs13-resumed)
		local v=1.${sc:3:1} resume=()
		[[ $sc = *resumed ]] && resume=(-resume)
		out=$("${load_on[@]}" "$BIN/client" handshake -addr "127.0.0.1:$(tls_port "$s")" -tls "$v" "${resume[@]}" -c 16 -d "${DURATION}s" 2>&1) || true
		requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$out")
		rate=$(sed -n 's/.*rate=\([0-9]*\).*/\1/p' <<<"$out")
		errors=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$out")
		if [[ $sc = *resumed ]]; then
			local resumed
			resumed=$(sed -n 's/.*resumed=\([0-9]*\).*/\1/p' <<<"$out")
			# A handshake that should have resumed and did not counts as an error.
			errors=$((${errors:-0} + ${requests:-0} - ${resumed:-0}))
		fi
		;;
	esac
	local cpu=$(($(cpu_ticks "$s") - before_cpu)) fetched=$(($(origin_fetches "$opath") - before_origin))
	if [ -z "${requests:-}" ] || [ "${requests:-0}" = 0 ]; then
		log "  $sc $s: no result: $(tr '\n' ' ' <<<"$out" | cut -c1-300)"
		requests=0 rate=0
	fi
	awk -v sc="$sc" -v s="$s" -v r="$r" -v rate="${rate:-0}" -v n="$requests" -v cpu="$cpu" -v hz="$CLK_TCK" \
		-v e="${errors:-0}" -v f="$fetched" 'BEGIN {
			per = n > 0 ? cpu / hz / n * 100000 : 0
			of = n > 0 ? f / n * 100 : 0
			printf "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%.2f\n", sc, s, r, rate, n, per, e, of
		}' >>"$results"
	log "  $sc $s round $r: $rate/s, errors ${errors:-0}, origin fetches $fetched"
}

# rounds SCENARIO: ROUNDS interleaved rounds over every system that can run it.
rounds() {
	local r order i
	for r in $(seq "$ROUNDS"); do
		order=()
		if [ $((r % 2)) = 1 ]; then
			order=("${systems[@]}")
		else
			for ((i = ${#systems[@]} - 1; i >= 0; i--)); do order+=("${systems[$i]}"); done
		fi
		for s in "${order[@]}"; do
			supports "$1" "$s" && measure "$1" "$s" "$r"
		done
	done
	return 0
}

# Warm every cache with the hit URLs (twice: a cache may store on the
# second request) over HTTP/1.1, h2c and TLS, so hit runs measure hits.
log "warming the caches"
for s in "${systems[@]}"; do
	for path in /1k /16k /1m; do
		for _ in 1 2; do
			curl -fsS -o /dev/null "http://127.0.0.1:$(h1_port "$s")$path"
			[ -z "$(h2c_port "$s")" ] || curl -fsS -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$(h2c_port "$s")$path"
			[ -z "$(tls_port "$s")" ] || curl -fsSk -o /dev/null "https://127.0.0.1:$(tls_port "$s")$path"
		done
	done
done
# headers of a hit per system, shown with the results
for s in "${systems[@]}"; do
	curl -fsS -o /dev/null -D - "http://127.0.0.1:$(h1_port "$s")/1k" |
		grep -iE '^(age|cache-status|x-cache-status|x-varnish|via):' | tr -d '\r' | paste -sd ' ' |
		sed "s/^/$s: /" >>"$RUN/hit-headers.txt" || true
done

declare -A rss_start rss_hit rss_pre_idle rss_idle idle_note coalesce
for s in "${systems[@]}"; do rss_start[$s]=$(rss_mb "$s"); done

start_time=$(date +%s)
for sc in "${scenarios[@]}"; do
	log "scenario $sc"
	rounds "$sc"
	if [ "$sc" = h1-1k ]; then
		for s in "${systems[@]}"; do rss_hit[$s]=$(rss_mb "$s"); done
	fi
done

wanted coalescing && log "scenario coalescing: 200 concurrent cold requests for one URL"
wanted coalescing && for r in $(seq "$ROUNDS"); do
	for s in "${systems[@]}"; do
		supports coalescing "$s" || continue
		path=/slow/$s-$r-$RANDOM
		out=$("${load_on[@]}" "$BIN/client" burst -addr "127.0.0.1:$(h1_port "$s")" -path "$path" -n 200 2>&1) || true
		n=$(curl -fsS "http://127.0.0.1:$ORIGIN/_count?path=$path")
		coalesce[$s]="${coalesce[$s]:-} $n"
		log "  $s round $r: $n origin fetches ($out)"
	done
done

wanted idle && log "scenario idle: $IDLE_CONNS idle keep-alive connections"
wanted idle && for s in "${systems[@]}"; do
	# The cache holds what the miss scenarios stored: the idle row is read
	# against this one.
	rss_pre_idle[$s]=$(rss_mb "$s")
	"${load_on[@]}" "$BIN/client" idle -addr "127.0.0.1:$(h1_port "$s")" -n "$IDLE_CONNS" -hold 5s >"$RUN/idle-$s.out" 2>&1 &
	idle_pid=$!
	pids+=("$idle_pid")
	for _ in $(seq 1200); do
		grep -qs '^ready' "$RUN/idle-$s.out" && break
		kill -0 "$idle_pid" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1
	rss_idle[$s]=$(rss_mb "$s")
	wait "$idle_pid" || true
	# forget the ended client: its PID may be reused before cleanup
	keep=()
	for p in "${pids[@]}"; do [ "$p" = "$idle_pid" ] || keep+=("$p"); done
	pids=("${keep[@]}")
	idle_note[$s]=$(tr '\n' ' ' <"$RUN/idle-$s.out" | sed 's/ready //; s/ *$//')
	log "  $s: ${rss_idle[$s]} MB (${idle_note[$s]})"
done
elapsed=$(($(date +%s) - start_time))

# --- tables ---
# med SCENARIO SYSTEM COLUMN: the median over rounds of a results column
# (4 rate, 6 CPU per 100k, 7 errors, 8 origin fetches per 100 requests).
med() {
	awk -F'\t' -v sc="$1" -v s="$2" -v c="$3" '$1 == sc && $2 == s {print $c}' "$results" | sort -g |
		awk '{v[NR] = $1} END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# num N: N rounded, in groups of three digits.
num() { awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); o = ""; while (length(s) > 3) { o = " " substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) } print s o }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2f×", a / b; else print "–" }'; }

label() {
	case $1 in
	h1-1k) echo "h1 hit 1 KiB" ;; h1-16k) echo "h1 hit 16 KiB" ;; h1-1m) echo "h1 hit 1 MiB (-c16)" ;;
	h1tls-1k) echo "h1 over TLS hit 1 KiB" ;; miss-nostore) echo "miss, no-store origin" ;;
	miss-store) echo "miss, every URL new (store path)" ;;
	h2c-1k) echo "h2c hit 1 KiB (h2load -c16 -m32)" ;; h2tls-1k) echo "h2 over TLS hit 1 KiB (h2load -c16 -m32)" ;;
	hs12-full) echo "TLS 1.2 full handshakes" ;; hs12-resumed) echo "TLS 1.2 resumed handshakes" ;;
	hs13-full) echo "TLS 1.3 full handshakes" ;; hs13-resumed) echo "TLS 1.3 resumed handshakes" ;;
	esac
}
has() { [[ " ${systems[*]} " = *" $1 "* ]]; }

header() {
	printf '| %s |' "$1"
	for s in "${systems[@]}"; do printf ' %s |' "$s"; done
	has accel && has haproxy && [ "${2:-}" = ratio ] && printf ' accel / haproxy |'
	printf '\n|---|'
	for _ in "${systems[@]}"; do printf -- '---:|'; done
	has accel && has haproxy && [ "${2:-}" = ratio ] && printf -- '---:|'
	printf '\n'
}

{
	echo "### Requests per second (median of $ROUNDS; in parentheses: ratio to accel)"
	echo
	header scenario ratio
	for sc in "${scenarios[@]}"; do
		printf '| %s |' "$(label "$sc")"
		a=
		if has accel; then a=$(med "$sc" accel 4); fi
		for s in "${systems[@]}"; do
			v=$(med "$sc" "$s" 4)
			if [ -z "$v" ]; then
				printf ' n/a |'
			elif [ "$s" = accel ] || [ -z "$a" ]; then
				printf ' %s |' "$(num "$v")"
			else
				printf ' %s (%s) |' "$(num "$v")" "$(ratio "$v" "$a")"
			fi
		done
		if has accel && has haproxy; then printf ' %s |' "$(ratio "$a" "$(med "$sc" haproxy 4)")"; fi
		printf '\n'
	done
	echo
	echo "### Server CPU-seconds per 100k requests (median; all processes of the server)"
	echo
	header scenario
	for sc in "${scenarios[@]}"; do
		printf '| %s |' "$(label "$sc")"
		for s in "${systems[@]}"; do
			v=$(med "$sc" "$s" 6)
			printf ' %s |' "${v:-n/a}"
		done
		printf '\n'
	done
	echo
	echo "### Memory and coalescing"
	echo
	header measure
	printf '| RSS at start, MB |'
	for s in "${systems[@]}"; do printf ' %s |' "${rss_start[$s]}"; done
	printf '\n| RSS after the h1 hit 1 KiB run, MB |'
	for s in "${systems[@]}"; do printf ' %s |' "${rss_hit[$s]:-–}"; done
	printf '\n| RSS before the idle connections (after every other scenario, the miss rows stored), MB |'
	for s in "${systems[@]}"; do printf ' %s |' "${rss_pre_idle[$s]:-–}"; done
	printf '\n| RSS with %s idle keep-alive connections, MB |' "$(num "$IDLE_CONNS")"
	for s in "${systems[@]}"; do printf ' %s |' "${rss_idle[$s]:-–}"; done
	printf '\n| origin fetches for 200 concurrent cold requests (each round) |'
	for s in "${systems[@]}"; do printf '%s |' "${coalesce[$s]:-–}"; done
	printf '\n'
	echo
	echo "### Checks: origin fetches per 100 client requests (median), client errors (sum over rounds)"
	echo
	echo "Hits must cause no origin fetch (0.00), misses one per request (100.00)."
	echo
	header scenario
	for sc in "${scenarios[@]}"; do
		printf '| %s |' "$(label "$sc")"
		for s in "${systems[@]}"; do
			v=$(med "$sc" "$s" 8)
			e=$(awk -F'\t' -v sc="$sc" -v s="$s" '$1 == sc && $2 == s {e += $7} END {print e + 0}' "$results")
			if [ -z "$v" ]; then printf ' n/a |'; else printf ' %s, %s errors |' "$v" "$e"; fi
		done
		printf '\n'
	done
	printf '| idle connections (opened, errors, still open after the hold) |'
	for s in "${systems[@]}"; do printf ' %s |' "${idle_note[$s]:-–}"; done
	printf '\n'
	echo
	echo "Hit response headers (after warming):"
	echo
	sed 's/^/    /' "$RUN/hit-headers.txt"
	echo
	scen=
	[ "$SCENARIOS" = "$all_scenarios" ] || scen="SCENARIOS=\"$SCENARIOS\" "
	echo "Command: \`PIN=${PIN:-1} QUICK=${QUICK:-0} ROUNDS=$ROUNDS DURATION=$DURATION IDLE_CONNS=$IDLE_CONNS SYSTEMS=\"$SYSTEMS\" ${scen}bench/run.sh\`,"
	cores="every core shared by the servers and the load"
	[ ${#server_on[@]} = 0 ] || cores="servers on cores ${server_on[2]}, load and origin on ${load_on[2]}"
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); measured in ${elapsed}s; $(nproc) cores ($cores), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Versions: accel $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?') ($(go version | awk '{print $3}')), $(nginx -v 2>&1 | sed 's|nginx version: ||'),"
	echo "HAProxy $(haproxy -v | awk 'NR == 1 {print $3}'), $(varnishd -V 2>&1 | awk 'NR == 1 {gsub(/[()]/, ""); print $2}'), $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'), $(h2load --version | head -1), $(openssl version | awk '{print $1, $2}')."
}
