#!/bin/sh
# start.sh - nginx in the compose stack: install the active colour's
# upstream, then serve (the container's command) or reload.
#
# Usage: start.sh           serve in the foreground
#        start.sh reload    after scripts/deploy.sh switched colours
# The active upstream is conf/nginx/active/upstream.conf, which deploy.sh
# writes; before the first deploy there is none and blue serves.
set -eu

dir=/etc/nginx/moontide
active=$dir/active/upstream.conf
[ -f "$active" ] || active=$dir/upstream-blue.conf
cp "$active" /etc/nginx/moontide-upstream.conf
if [ "${1:-}" = reload ]; then
    exec nginx -s reload
fi
exec nginx -g 'daemon off;'
