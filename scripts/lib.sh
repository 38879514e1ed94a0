# lib.sh - shell helpers shared by the scripts (sourced).
# shellcheck shell=bash

# docker compose, as the plugin or the older docker-compose (Debian's); the
# files come from COMPOSE_FILE (default: the stack's), the optional
# services from COMPOSE_PROFILES.
compose() {
    COMPOSE_FILE=${COMPOSE_FILE:-docker/docker-compose.yml}
    export COMPOSE_FILE
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    else
        docker-compose "$@"
    fi
}

# A loopback port nothing listens on now.
free_port() {
    local p
    for ((p = 18000 + RANDOM % 2000; ; p++)); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# User + system CPU seconds a process has used.
cpu_seconds() {
    awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / tck }' \
        "/proc/$1/stat"
}

# Resident memory of a process, in KB (empty once it is gone).
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# Open file descriptors of a process.
fd_count() {
    local fds=("/proc/$1/fd/"*)
    echo "${#fds[@]}"
}

# Pulls one numeric field out of a flat JSON line: field LINE NAME.
field() {
    sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" <<<"$1"
}

# The process and its children (a supervisor and its workers), one pid a line.
tree_pids() {
    echo "$1"
    ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '
}

# Resident memory of a process and its children, in KB.
tree_rss() {
    local total=0 pid kb
    for pid in $(tree_pids "$1"); do
        kb=$(rss_kb "$pid")
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# Open file descriptors of a process and its children.
tree_fds() {
    local total=0 pid
    for pid in $(tree_pids "$1"); do
        [[ -d /proc/$pid ]] && total=$((total + $(fd_count "$pid")))
    done
    echo "$total"
}

# CPU seconds of a process and its children.
tree_cpu() {
    local total=0 pid
    for pid in $(tree_pids "$1"); do
        [[ -r /proc/$pid/stat ]] || continue
        total=$(awk -v a="$total" -v b="$(cpu_seconds "$pid")" 'BEGIN { print a + b }')
    done
    echo "$total"
}
