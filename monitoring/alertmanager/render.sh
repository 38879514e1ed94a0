#!/bin/sh
# render.sh - write alertmanager.yml from alertmanager.yml.tmpl and the
# environment (POSIX sh and sed only: it runs inside the Alertmanager image).
#
# Usage: render.sh TEMPLATE OUTPUT
# Receivers and their variables:
#   email      SMTP_SMARTHOST ALERT_EMAIL_FROM ALERT_EMAIL_TO SMTP_USERNAME SMTP_PASSWORD
#   slack      SLACK_WEBHOOK_URL SLACK_CHANNEL
#   pagerduty  PAGERDUTY_ROUTING_KEY
#   webhook    ALERT_WEBHOOK_URL
# A receiver is on when any of its variables has a value, off when none
# has (unset and empty are the same: compose passes unset ones as empty).
# A receiver with some but not all of its variables is an error naming
# the missing ones, and so is having no receiver at all: alerts must not
# silently go nowhere. Values are substituted for ${NAME}.
set -eu

template=${1:?usage: render.sh TEMPLATE OUTPUT}
output=${2:?usage: render.sh TEMPLATE OUTPUT}

receivers="email slack pagerduty webhook"
vars_of() {
    case $1 in
        email) echo "SMTP_SMARTHOST ALERT_EMAIL_FROM ALERT_EMAIL_TO SMTP_USERNAME SMTP_PASSWORD" ;;
        slack) echo "SLACK_WEBHOOK_URL SLACK_CHANNEL" ;;
        pagerduty) echo "PAGERDUTY_ROUTING_KEY" ;;
        webhook) echo "ALERT_WEBHOOK_URL" ;;
    esac
}

value_of() {
    eval "printf '%s' \"\${$1-}\""
}

script=""
on=""
failed=0
for r in $receivers; do
    set_count=0
    missing=""
    for name in $(vars_of "$r"); do
        if [ -n "$(value_of "$name")" ]; then
            set_count=$((set_count + 1))
        else
            missing="$missing $name"
        fi
    done
    if [ "$set_count" -eq 0 ]; then
        # off: its blocks go
        script="${script}/^#@ $r\$/,/^#@ end\$/d;"
        continue
    fi
    if [ -n "$missing" ]; then
        echo "render.sh: receiver $r is half-configured: set$missing (or unset all of $(vars_of "$r"))" >&2
        failed=1
        continue
    fi
    on="$on $r"
    for name in $(vars_of "$r"); do
        # Escape what sed's replacement and the YAML double quotes treat specially.
        escaped=$(value_of "$name" | sed -e 's/[\\/&|]/\\&/g' -e 's/"/\\\\"/g')
        script="${script}s|\${$name}|$escaped|g;"
    done
done
[ "$failed" -eq 0 ] || exit 1
if [ -z "$on" ]; then
    echo "render.sh: no receiver configured: set the variables of at least one of: $receivers" >&2
    exit 1
fi
sed -e "$script" -e '/^#@ /d' "$template" >"$output"
echo "render.sh: receivers:$on" >&2
