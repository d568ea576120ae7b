# Shared helpers for scripts/run.sh and scripts/stop.sh. Source it; it
# defines functions and variables only.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_DIR="$ROOT/.run"
PID_DIR="$RUN_DIR/pids"
LOG_DIR="$RUN_DIR/logs"

log() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() {
	local pid
	[[ -s "$1" ]] || return 1
	pid=$(<"$1")
	[[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# pid_runs PIDFILE NAME: true when the recorded process is alive and its
# command name (/proc/PID/comm, the first 15 bytes of the executed file's
# name) is NAME, so a PID reused by another program is never signalled.
# The executable's path would not do: Debian's redis-server is a link to
# redis-check-rdb.
pid_runs() {
	local pid comm
	pid_alive "$1" || return 1
	pid=$(<"$1")
	[[ -r "/proc/$pid/comm" ]] || return 0
	comm=$(<"/proc/$pid/comm")
	[[ "$comm" == "${2:0:15}" ]]
}

# stop_pid PIDFILE NAME [SECONDS]: sends SIGTERM to the recorded process,
# waits up to SECONDS (default 40) for it to exit, then sends SIGKILL, and
# removes the PID file.
stop_pid() {
	local file=$1 name=$2 wait=${3:-40} pid i
	if ! pid_runs "$file" "$name"; then
		rm -f "$file"
		return 0
	fi
	pid=$(<"$file")
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < wait * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		warn "$name (pid $pid) did not exit within ${wait}s of SIGTERM; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$file"
}

# WORKER_SHUTDOWN_FILE records the workers' WORKER_SHUTDOWN_TIMEOUT in whole
# seconds, written by run.sh when it starts them and read by stop_app.
WORKER_SHUTDOWN_FILE="$PID_DIR/worker-shutdown-seconds"
# DEFAULT_WORKER_SHUTDOWN_SECONDS is queue-worker's own default (30s).
DEFAULT_WORKER_SHUTDOWN_SECONDS=30

# duration_seconds DURATION: prints a queue-worker duration (Go syntax
# such as 45s, 1m30s or 1.5s, or whole seconds) in whole seconds, rounded
# up. An empty value or 0 means the worker's default. Fails on any other
# text.
duration_seconds() {
	local d=$1
	if [[ -z "$d" ]]; then
		echo "$DEFAULT_WORKER_SHUTDOWN_SECONDS"
		return 0
	fi
	if [[ "$d" =~ ^[0-9]+$ ]]; then
		((10#$d > 0)) && echo $((10#$d)) || echo "$DEFAULT_WORKER_SHUTDOWN_SECONDS"
		return 0
	fi
	[[ "$d" =~ ^([0-9]+(\.[0-9]*)?(h|m|s|ms|us|µs|ns))+$ ]] || return 1
	# awk's match() takes the longest unit, so "ms" is never read as "m".
	LC_ALL=C awk -v d="$d" -v fallback="$DEFAULT_WORKER_SHUTDOWN_SECONDS" 'BEGIN {
		scale["h"] = 3600; scale["m"] = 60; scale["s"] = 1
		scale["ms"] = 1e-3; scale["us"] = 1e-6; scale["µs"] = 1e-6; scale["ns"] = 1e-9
		total = 0
		while (match(d, /^[0-9]+(\.[0-9]*)?(h|ms|m|s|us|µs|ns)/)) {
			part = substr(d, 1, RLENGTH)
			d = substr(d, RLENGTH + 1)
			number = part; sub(/[^0-9.]+$/, "", number)
			unit = substr(part, length(number) + 1)
			total += number * scale[unit]
		}
		if (total == 0) { print fallback; exit }
		whole = int(total)
		if (whole < total) whole++
		print whole
	}'
}

# stop_app: stops the queue workers first, so they can release their jobs
# while brokerd still serves requests, then brokerd. A worker lets its
# running jobs go on for up to its WORKER_SHUTDOWN_TIMEOUT and then releases
# them, so stop_app prints how long that may take and gives each worker
# ten seconds more before it sends SIGKILL.
stop_app() {
	local f timeout=$DEFAULT_WORKER_SHUTDOWN_SECONDS running=()
	if [[ -s "$WORKER_SHUTDOWN_FILE" ]]; then
		timeout=$(<"$WORKER_SHUTDOWN_FILE")
		[[ "$timeout" =~ ^[0-9]+$ ]] || timeout=$DEFAULT_WORKER_SHUTDOWN_SECONDS
	fi
	shopt -s nullglob
	for f in "$PID_DIR"/worker-*.pid; do
		pid_runs "$f" queue-worker && running+=("$f")
	done
	shopt -u nullglob
	if ((${#running[@]} > 0)); then
		log "waiting up to $timeout s (WORKER_SHUTDOWN_TIMEOUT) for running jobs to finish; the workers then release the rest back to the queue"
	fi
	for f in "${running[@]}"; do
		stop_pid "$f" queue-worker $((timeout + 10)) &
	done
	wait
	rm -f "$PID_DIR"/worker-*.pid
	stop_pid "$PID_DIR/brokerd.pid" brokerd 40
}

# as_postgres CMD...: runs a PostgreSQL server tool as the postgres system
# user when this script runs as root, because initdb and postgres refuse
# to run as root.
as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# pg_bin_dir: prints the folder holding initdb and pg_ctl, newest version
# first, or nothing.
pg_bin_dir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
			echo "$d"
			return 0
		fi
	done
	if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
		dirname "$(command -v initdb)"
	fi
}
