#!/bin/sh
# render.sh - write alertmanager.yml from alertmanager.yml.tmpl and the
# environment (POSIX sh and sed only: it runs inside the Alertmanager image).
#
# Usage: render.sh TEMPLATE OUTPUT
# Every ${NAME} of the variables below is replaced by its value; an unset
# variable is an error naming it, so a half-configured receiver never ships.
set -eu

template=${1:?usage: render.sh TEMPLATE OUTPUT}
output=${2:?usage: render.sh TEMPLATE OUTPUT}
vars="SMTP_SMARTHOST ALERT_EMAIL_FROM ALERT_EMAIL_TO SMTP_USERNAME SMTP_PASSWORD
SLACK_WEBHOOK_URL SLACK_CHANNEL PAGERDUTY_ROUTING_KEY ALERT_WEBHOOK_URL"

script=""
for name in $vars; do
    value=""
    eval "value=\${$name-}"
    eval "set=\${$name+x}"
    if [ -z "$set" ]; then
        echo "render.sh: $name is not set" >&2
        exit 1
    fi
    # Escape what sed's replacement and the YAML double quotes treat specially.
    escaped=$(printf '%s' "$value" | sed -e 's/[\\/&|]/\\&/g' -e 's/"/\\\\"/g')
    script="${script}s|\${$name}|$escaped|g;"
done
sed -e "$script" "$template" >"$output"
