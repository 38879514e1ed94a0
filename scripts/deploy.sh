#!/usr/bin/env bash
# deploy.sh - blue/green deploys: start the idle colour, wait until it is
# ready, switch nginx to it, then drain the old colour.
#
# Usage: scripts/deploy.sh [--local] [--status | --rollback | --stop]
#   (none)      deploy to the idle colour (docker compose: rebuilds it)
#   --status    show both colours and the active one
#   --rollback  switch back to the other colour without rebuilding
#   --stop      (--local) stop both colours and nginx
#   --local     drive local processes and Debian's nginx instead of docker
#               compose. Settings: MOONTIDE_DEPLOY_DIR (.deploy),
#               MOONTIDE_DEPLOY_PORT (8080, nginx), MOONTIDE_BLUE_PORT (8001),
#               MOONTIDE_GREEN_PORT (8002), MOONTIDE_BINARY (build/moontide),
#               MOONTIDE_CONFIG (conf/moontide.lua), DEPLOY_READY_TIMEOUT (30 s).
# Before anything is switched, `moontide check` loads the new colour's
# settings and scripts; if it fails, nothing changes. The old colour drains
# with SIGTERM: its clients get 1001 and a reconnect hint, reconnect
# through nginx and land on the new colour.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# The optional services deploys run (Grafana and cadvisor: "dashboards");
# docker compose reads it, and COMPOSE_FILE (a test adds an override).
export COMPOSE_PROFILES=${COMPOSE_PROFILES-dashboards}

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
}

err() {
    printf 'deploy: %s\n' "$*" >&2
}

say() {
    printf '[%s] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*"
}

other() {
    [[ $1 == blue ]] && echo green || echo blue
}

# Polls a command until it succeeds or the deadline passes.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { err "timed out after ${seconds}s waiting for $what"; return 1; }
        sleep 0.2
    done
}

# -- docker compose ----------------------------------------------------

compose_active() {
    cat conf/nginx/active/colour 2>/dev/null || echo blue
}

# Prometheus's scrape targets (file_sd): both colours at host:port, the
# active one labelled deployment="active", the other "idle".
write_targets() {
    local file=$1 active_addr=$2 idle_addr=$3
    mkdir -p "$(dirname "$file")"
    printf '[{"targets":["%s"],"labels":{"deployment":"active"}},{"targets":["%s"],"labels":{"deployment":"idle"}}]\n' \
        "$active_addr" "$idle_addr" >"$file.tmp"
    mv "$file.tmp" "$file" # whole, never half-written
}

compose_switch() {
    mkdir -p conf/nginx/active
    cp "conf/nginx/upstream-$1.conf" conf/nginx/active/upstream.conf
    echo "$1" >conf/nginx/active/colour
    write_targets monitoring/prometheus/deploy/targets.json "app_$1:8000" "app_$(other "$1"):8000"
}

compose_status() {
    local c running
    running=$(compose ps --services --filter status=running 2>/dev/null || true)
    for c in blue green; do
        if grep -qx "app_$c" <<<"$running"; then
            echo "app_$c: running"
        else
            echo "app_$c: stopped"
        fi
    done
    echo "Active color: $(compose_active)"
}

compose_deploy() {
    local rebuild=$1 old target
    if [[ ! -f conf/nginx/active/upstream.conf ]]; then
        compose_switch blue
        say "first start: the stack comes up with blue active"
        compose up -d
        return
    fi
    old=$(compose_active)
    target=$(other "$old")
    ((rebuild)) && compose build "app_$target"
    say "checking the settings and scripts app_$target will run"
    compose run --rm --no-deps -T "app_$target" check --config conf/moontide.lua ||
        { err "moontide check failed: nothing switched, $old still serves"; exit 1; }
    say "starting app_$target"
    compose up -d --no-deps "app_$target"
    wait_for "app_$target to be ready" "${DEPLOY_READY_TIMEOUT:-30}" \
        compose exec -T "app_$target" curl -fsS http://127.0.0.1:8000/readyz ||
        { compose stop "app_$target"; err "app_$target never became ready; $old still serves"; exit 1; }
    compose_switch "$target"
    compose exec -T nginx /bin/sh /etc/nginx/moontide/start.sh reload
    say "nginx now sends new connections to $target; draining $old"
    compose stop -t 15 "app_$old"
    compose_status
}

# -- local processes ---------------------------------------------------

DIR=${MOONTIDE_DEPLOY_DIR:-.deploy}
NGINX_PORT=${MOONTIDE_DEPLOY_PORT:-8080}

port_of() {
    if [[ $1 == blue ]]; then
        echo "${MOONTIDE_BLUE_PORT:-8001}"
    else
        echo "${MOONTIDE_GREEN_PORT:-8002}"
    fi
}

alive() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

local_active() {
    cat "$DIR/active" 2>/dev/null || echo none
}

# The active colour, with the other as backup: an nginx worker still on the
# previous config (it lingers while it proxies old WebSockets) then retries
# on the live colour instead of failing against a drained one.
write_upstream() {
    printf 'upstream moontide_active {\n    server 127.0.0.1:%s;\n    server 127.0.0.1:%s backup;\n}\n' \
        "$(port_of "$1")" "$(port_of "$(other "$1")")" >"$DIR/upstream.conf"
}

ensure_nginx() {
    alive "$DIR/nginx.pid" && return 0
    mkdir -p "$DIR/tmp"
    chmod 0777 "$DIR/tmp" # nginx workers drop to nobody when started as root
    local abs
    abs=$(cd "$DIR" && pwd)
    cat >"$DIR/nginx.conf" <<NGINX
worker_processes 1;
pid $abs/nginx.pid;
error_log $abs/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log $abs/nginx-access.log;
    client_body_temp_path $abs/tmp/body;
    proxy_temp_path $abs/tmp/proxy;
    fastcgi_temp_path $abs/tmp/fastcgi;
    uwsgi_temp_path $abs/tmp/uwsgi;
    scgi_temp_path $abs/tmp/scgi;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    include $abs/upstream.conf;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://moontide_active;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_read_timeout 3600s;
            proxy_next_upstream error timeout http_502 http_503;
        }
    }
}
NGINX
    nginx -c "$abs/nginx.conf" -p "$abs" || { err "nginx did not start (see $DIR/nginx-error.log)"; exit 1; }
    wait_for "nginx" 10 test -s "$DIR/nginx.pid"
}

start_colour() {
    local colour=$1 port
    port=$(port_of "$colour")
    stop_colour "$colour" 0
    "${MOONTIDE_BINARY:-build/moontide}" --config "${MOONTIDE_CONFIG:-conf/moontide.lua}" \
        --host 127.0.0.1 --port "$port" --color "$colour" >>"$DIR/$colour.log" 2>&1 &
    echo $! >"$DIR/$colour.pid"
    wait_for "app_$colour to be ready" "${DEPLOY_READY_TIMEOUT:-30}" \
        curl -fsS "http://127.0.0.1:$port/readyz" ||
        { stop_colour "$colour" 5; err "app_$colour never became ready"; return 1; }
}

# SIGTERM (a graceful drain), then waits; SIGKILL after the grace period.
stop_colour() {
    local colour=$1 grace=$2 pid
    alive "$DIR/$colour.pid" || { rm -f "$DIR/$colour.pid"; return 0; }
    pid=$(cat "$DIR/$colour.pid")
    kill -TERM "$pid"
    if ! wait_for "app_$colour to drain" "$((grace + 1))" bash -c "! kill -0 $pid"; then
        err "app_$colour still running after ${grace}s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/$colour.pid"
}

local_status() {
    local c
    for c in blue green; do
        if alive "$DIR/$c.pid"; then
            echo "app_$c: running (pid $(cat "$DIR/$c.pid"), port $(port_of "$c"))"
        else
            echo "app_$c: stopped"
        fi
    done
    if alive "$DIR/nginx.pid"; then
        echo "nginx: running (port $NGINX_PORT)"
    else
        echo "nginx: stopped"
    fi
    echo "Active color: $(local_active)"
}

local_deploy() {
    mkdir -p "$DIR"
    local old target
    old=$(local_active)
    if [[ $old == none ]]; then
        target=blue
    else
        target=$(other "$old")
    fi
    say "checking the settings and scripts app_$target will run"
    "${MOONTIDE_BINARY:-build/moontide}" check --config "${MOONTIDE_CONFIG:-conf/moontide.lua}" ||
        { err "moontide check failed: nothing switched${old:+, $old still serves}"; exit 1; }
    say "starting app_$target on port $(port_of "$target")"
    start_colour "$target" || { err "$old still serves"; exit 1; }
    write_upstream "$target"
    write_targets "$DIR/targets.json" "127.0.0.1:$(port_of "$target")" \
        "127.0.0.1:$(port_of "$(other "$target")")"
    ensure_nginx
    nginx -c "$(cd "$DIR" && pwd)/nginx.conf" -p "$(cd "$DIR" && pwd)" -s reload
    wait_for "nginx to route to $target" 10 \
        bash -c "curl -fsS http://127.0.0.1:$NGINX_PORT/status | grep -q '\"color\":\"$target\"'"
    echo "$target" >"$DIR/active"
    if [[ $old != none ]]; then
        say "nginx now sends new connections to $target; draining $old"
        stop_colour "$old" 15
    fi
    local_status
}

local_stop() {
    stop_colour blue 15
    stop_colour green 15
    if alive "$DIR/nginx.pid"; then
        kill -QUIT "$(cat "$DIR/nginx.pid")"
        wait_for "nginx to stop" 10 bash -c "! test -s '$DIR/nginx.pid'" || true
    fi
    rm -f "$DIR/active"
}

main() {
    local local_mode=0 action=deploy
    while (($#)); do
        case $1 in
            --local) local_mode=1 ;;
            --status) action=status ;;
            --rollback) action=rollback ;;
            --stop) action=stop ;;
            -h|--help) usage; exit 0 ;;
            *) usage; err "unknown argument: $1"; exit 2 ;;
        esac
        shift
    done
    cd "$(dirname "$0")/.."
    if ((local_mode)); then
        command -v nginx >/dev/null || { err "nginx is not installed (apt-get install nginx)"; exit 1; }
        case $action in
            deploy|rollback) local_deploy ;;
            status) local_status ;;
            stop) local_stop ;;
        esac
        return
    fi
    command -v docker >/dev/null || { err "docker is not installed; try --local"; exit 1; }
    case $action in
        deploy) compose_deploy 1 ;;
        rollback) compose_deploy 0 ;;
        status) compose_status ;;
        stop) err "--stop is for --local; use docker compose down"; exit 2 ;;
    esac
}

main "$@"
