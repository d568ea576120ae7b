#!/usr/bin/env bash
# Stops what scripts/run.sh started, by the PIDs it recorded under
# .run/pids: the queue workers, brokerd, and the private redis-server and
# PostgreSQL when run.sh started them. A Redis or PostgreSQL that run.sh
# found already running is left alone. The data under .run/ is kept.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

if [[ ! -d "$RUN_DIR" ]]; then
	log "nothing to stop: .run/ does not exist"
	exit 0
fi

stop_app

if [[ -f "$PID_DIR/redis.pid" ]]; then
	# SIGTERM makes redis-server flush its append-only file and exit.
	stop_pid "$PID_DIR/redis.pid" redis-server 30
fi

if [[ -s "$RUN_DIR/pg.dir" ]]; then
	data="$(<"$RUN_DIR/pg.dir")/data"
	if [[ -f "$data/postmaster.pid" ]]; then
		bin=$(pg_bin_dir)
		[[ -n "$bin" ]] || die "PostgreSQL runs from $data but pg_ctl is not installed any more"
		log "stopping the private PostgreSQL (pid $(head -n1 "$data/postmaster.pid"))"
		as_postgres "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
	fi
fi

log "stopped; data, certificates and tokens stay under .run/ (delete the folder for a fresh start)"
