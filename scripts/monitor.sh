#!/usr/bin/env bash
# monitor.sh - watch a moontide deployment: health, readiness, connections,
# the top-5 metrics every interval, and ERROR lines from the logs.
#
# Usage: scripts/monitor.sh [--metrics-only | --logs-only] [--interval N]
#                           [--duration N] [--url URL] [--log-file FILE] [--help]
#   --metrics-only  print the status block every interval; no log tailing
#   --logs-only     only tail the logs for ERROR and CRITICAL lines
#   --interval N    seconds between status blocks (default 10)
#   --duration N    stop after N seconds (default: until interrupted)
#   --url URL       where moontide (or nginx in front of it) answers
#                   (default http://localhost, as docker compose publishes it)
#   --log-file FILE tail this file instead of `docker compose logs`
# The deployment status comes from scripts/deploy.sh (compose, or --local
# when MOONTIDE_DEPLOY_DIR holds a local deployment). nginx keeps /metrics
# from everyone outside the monitoring network: with a compose stack
# running, the metrics are read inside the active colour's container.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

URL=http://localhost
INTERVAL=10
DURATION=0
MODE=all
LOG_FILE=""
TAIL_PID=""

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

err() {
    printf 'monitor: %s\n' "$*" >&2
}

stamp() {
    printf '[%s] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*"
}

number() {
    [[ $2 =~ ^[0-9]+$ ]] || { err "$1 needs a whole number of seconds, got '$2'"; exit 2; }
}

# The value of a "key":"string" or "key":number field of a flat JSON body.
json_field() {
    sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p" <<<"$2" | head -n 1
}

deployment_status() {
    local deploy=scripts/deploy.sh
    if [[ -n ${MOONTIDE_DEPLOY_DIR:-} && -d ${MOONTIDE_DEPLOY_DIR} ]]; then
        "$deploy" --local --status | grep -v '^nginx:' || true
    elif [[ -z $LOG_FILE ]] && compose_running; then
        "$deploy" --status || true
    else
        local body color
        body=$(curl -fsS --max-time 3 "$URL/status" 2>/dev/null) || body=""
        color=$(json_field color "$body")
        if [[ -n $color ]]; then
            echo "app_$color: running"
            echo "Active color: $color"
        else
            echo "Active color: unknown ($URL did not answer)"
        fi
    fi
}

# A compose stack of moontide is up here.
compose_running() {
    command -v docker >/dev/null 2>&1 || return 1
    [[ -n $(compose ps -q app_blue app_green 2>/dev/null) ]]
}

# /metrics: through the URL, or (nginx refusing it) from inside the
# active colour's container.
fetch_metrics() {
    curl -fsS --max-time 5 "$URL/metrics" 2>/dev/null && return 0
    compose_running || return 1
    local active
    active=$(cat conf/nginx/active/colour 2>/dev/null || echo blue)
    compose exec -T "app_$active" curl -fsS --max-time 5 http://127.0.0.1:8000/metrics 2>/dev/null
}

# The five series the seed's dashboards lead with; the busiest HTTP route.
top_metrics() {
    local text=$1 name
    for name in 'websocket_connections_active{' 'websocket_connections_total{' \
        'websocket_messages_total{.*type="received"' 'websocket_messages_total{.*type="heartbeat"'; do
        grep -m 1 "^$name" <<<"$text" || true
    done
    grep '^http_requests_total{' <<<"$text" | sort -t' ' -k2 -g -r | head -n 1 || true
}

status_block() {
    echo "=== $(date) ==="
    local health ready metrics
    if ! health=$(curl -sS --max-time 3 "$URL/healthz" 2>&1); then
        echo "Health: unreachable ($URL/healthz: ${health##*: })"
        echo "Ready: unknown"
        echo "Active connections: unknown"
        echo "=================="
        return
    fi
    ready=$(curl -sS --max-time 3 "$URL/readyz" 2>/dev/null || true)
    echo "Health: $(json_field status "$health")"
    echo "Ready: $(json_field status "$ready")"
    echo "Active connections: $(json_field active_connections "$ready")"
    if metrics=$(fetch_metrics); then
        echo "=== Top 5 Metrics ==="
        top_metrics "$metrics"
    else
        echo "=== Top 5 Metrics === (unavailable)"
    fi
    echo "=================="
}

start_tail() {
    stamp "Tailing logs for ERROR messages..."
    local pattern='"level":"(ERROR|CRITICAL)"|ERROR'
    if [[ -n $LOG_FILE ]]; then
        [[ -r $LOG_FILE ]] || { err "cannot read $LOG_FILE"; exit 1; }
        # --pid: tail ends by itself once this script has exited.
        tail -n 0 -F --pid=$$ "$LOG_FILE" 2>/dev/null | grep --line-buffered -E "$pattern" &
    else
        command -v docker >/dev/null 2>&1 ||
            { err "no docker here: give --log-file FILE to tail a local log"; exit 1; }
        compose logs -f --tail 0 app_blue app_green 2>&1 |
            grep --line-buffered -E "$pattern" &
    fi
    TAIL_PID=$!
}

# Ends the log filter we started (its reader then ends on SIGPIPE, or by
# itself for tail --pid).
cleanup() {
    [[ -z $TAIL_PID ]] || kill "$TAIL_PID" 2>/dev/null || true
}

main() {
    while (($#)); do
        case $1 in
            --metrics-only) MODE=metrics ;;
            --logs-only) MODE=logs ;;
            --interval) number "$1" "${2:-}"; INTERVAL=$2; shift ;;
            --duration) number "$1" "${2:-}"; DURATION=$2; shift ;;
            --url) URL=${2:?--url needs a URL}; URL=${URL%/}; shift ;;
            --log-file) LOG_FILE=${2:?--log-file needs a file}; shift ;;
            -h|--help) usage; exit 0 ;;
            *) err "unknown argument: $1 (see --help)"; exit 2 ;;
        esac
        shift
    done
    ((INTERVAL > 0)) || { err "--interval must be at least 1"; exit 2; }
    cd "$(dirname "$0")/.."
    trap cleanup EXIT
    trap 'exit 0' INT TERM
    stamp "Starting monitoring for moontide at $URL..."
    if [[ $MODE != logs ]]; then
        stamp "Current deployment status:"
        deployment_status
        echo
        if ! curl -fsS --max-time 3 "$URL/healthz" >/dev/null 2>&1; then
            err "$URL is unreachable: is moontide (or nginx) running there? Still trying."
        fi
    fi
    [[ $MODE != metrics ]] && start_tail
    local end=$((SECONDS + DURATION))
    while :; do
        [[ $MODE != logs ]] && status_block
        if ((DURATION > 0)); then
            local left=$((end - SECONDS))
            ((left > 0)) || break
            sleep "$((left < INTERVAL ? left : INTERVAL))"
        else
            sleep "$INTERVAL"
        fi
    done
}

main "$@"
