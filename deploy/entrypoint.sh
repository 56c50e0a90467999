#!/bin/sh
# The container's entry point: `serve` (the default) listens on all of the container's addresses on
# CREDITDESK_PORT (8787); `migrate` brings the database's schema up to date and exits (run it once per
# release, before the replicas: on PostgreSQL `serve` refuses a database that is not migrated); anything
# else is an admin command (`check`, `user EMAIL`, `reconcile` ...).
set -eu
command="${1:-serve}"
case "$command" in
  serve)
    if [ "$#" -gt 0 ]; then shift; fi
    port="${CREDITDESK_PORT:-8787}"
    case "$port" in
      ''|*[!0-9]*) echo "creditdesk-entrypoint: CREDITDESK_PORT must be a port number, not '$port'" >&2; exit 2 ;;
    esac
    exec creditdesk-backend serve --host "${CREDITDESK_HOST:-0.0.0.0}" --port "$port" "$@"
    ;;
  *)
    exec creditdesk-backend "$@"
    ;;
esac
