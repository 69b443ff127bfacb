#!/bin/sh
# Serves /health ("ok"), /version ($APP_VERSION) and /argv (the arguments it got, one per line)
# from /www on $PORT. APP_HEALTHY=0 leaves /health out, so it answers 404: a broken release.
set -eu
mkdir -p /www
rm -f /www/health
printf '%s\n' "$APP_VERSION" > /www/version
: > /www/argv
for arg in "$@"; do
  printf '%s\n' "$arg" >> /www/argv
done
if [ "${APP_HEALTHY:-1}" != 0 ]; then
  echo ok > /www/health
fi
echo "demo-app $APP_VERSION argc=$# argv:"
sed 's/^/  /' /www/argv
echo "demo-app listening on :${PORT:-8080} healthy=${APP_HEALTHY:-1}"

# As PID 1 the shell gets no default signal handling: trap TERM so `docker stop` is quick.
httpd -f -p "${PORT:-8080}" -h /www &
server=$!
trap 'kill "$server"; wait "$server"; exit 0' TERM INT
wait "$server"
