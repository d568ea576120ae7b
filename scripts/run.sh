#!/usr/bin/env bash
# Starts a local MoonMind Broker for trying the operator's upgrade flow:
# brokerd on https://localhost:8443 and two queue workers, in the background.
#
# It uses Redis and PostgreSQL at BROKER_REDIS_URL and BROKER_DATABASE_URL
# when they respond, and otherwise starts private servers with their data
# under .run/. Running it again restarts brokerd and the workers and keeps
# the data, the certificates and the tokens. scripts/stop.sh stops
# everything it started.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

HTTPS_PORT=8443
PUBLIC_URL="https://localhost:$HTTPS_PORT"
NAMESPACE=${BROKER_NAMESPACE:-mm}
DEFAULT_REDIS_URL="redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
# The private servers listen on the first free port from these upwards,
# away from the standard ports a system service may own.
PRIVATE_REDIS_PORT_BASE=16379
PRIVATE_PG_PORT_BASE=15432
WORKER_COUNT=2
# Demo jobs: long enough that a pause right after make run meets running
# jobs and queued ones, short enough that the drain ends within a minute.
DEMO_JOBS=8
DEMO_SECONDS=45

mkdir -p "$RUN_DIR" "$PID_DIR" "$LOG_DIR"
# The postgres system user must be able to enter .run/ to reach the private
# cluster, so only the files that hold secrets are private (tokens, env, tls/).

# port_listening PORT: true when something accepts TCP on 127.0.0.1:PORT.
port_listening() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port BASE: prints the first port from BASE upwards that nothing
# listens on.
free_port() {
	local p=$1
	while port_listening "$p"; do
		p=$((p + 1))
		((p < $1 + 100)) || die "no free port in $1..$p on 127.0.0.1"
	done
	echo "$p"
}

# redis_responds URL: true when a Redis server at URL replies to PING (an
# authentication error counts as a reply). It needs no redis-cli.
redis_responds() {
	local url=$1 rest hostport host port reply
	[[ "$url" =~ ^rediss?:// ]] || return 1
	rest=${url#*://}
	rest=${rest##*@}
	hostport=${rest%%/*}
	hostport=${hostport%%\?*}
	host=${hostport%:*}
	port=${hostport##*:}
	[[ "$hostport" == *:* ]] || port=6379
	host=${host#[}
	host=${host%]}
	[[ -n "$host" ]] || host=127.0.0.1
	reply=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && read -r -t 2 line <&3 && echo "$line"' "$host" "$port" 2>/dev/null || true)
	[[ "$reply" == +PONG* || "$reply" == -NOAUTH* || "$reply" == -WRONGPASS* ]]
}

# postgres_responds URL: true when a PostgreSQL server at URL accepts
# connections.
postgres_responds() {
	if command -v pg_isready >/dev/null; then
		pg_isready -q -t 3 -d "$1" >/dev/null 2>&1
		return
	fi
	command -v psql >/dev/null && timeout 5 psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
}

start_private_redis() {
	local dir="$RUN_DIR/redis" port
	if pid_runs "$PID_DIR/redis.pid" redis-server && [[ -s "$RUN_DIR/redis.port" ]]; then
		port=$(<"$RUN_DIR/redis.port")
		log "reusing the private redis-server on 127.0.0.1:$port"
		REDIS_URL="redis://127.0.0.1:$port/0"
		return
	fi
	command -v redis-server >/dev/null ||
		die "no Redis responds at $REDIS_URL and redis-server is not installed: install it (Debian/Ubuntu: sudo apt-get install redis-server) or set BROKER_REDIS_URL to a running server"
	mkdir -p "$dir"
	port=$(free_port "$PRIVATE_REDIS_PORT_BASE")
	log "no Redis responds at $REDIS_URL; starting a private redis-server on 127.0.0.1:$port (data in .run/redis)"
	redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
		--appendonly yes --appendfsync everysec --save "" \
		--daemonize yes --pidfile "$PID_DIR/redis.pid" --logfile "$LOG_DIR/redis.log"
	echo "$port" >"$RUN_DIR/redis.port"
	REDIS_URL="redis://127.0.0.1:$port/0"
	for _ in $(seq 100); do
		redis_responds "$REDIS_URL" && return
		sleep 0.1
	done
	die "the private redis-server did not respond on port $port; see .run/logs/redis.log"
}

start_private_postgres() {
	local bin data port
	bin=$(pg_bin_dir)
	[[ -n "$bin" ]] ||
		die "no PostgreSQL responds at $DATABASE_URL and initdb/pg_ctl are not installed: install them (Debian/Ubuntu: sudo apt-get install postgresql) or set BROKER_DATABASE_URL to a running server"
	if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
		die "running as root needs a postgres system user for initdb (installed with the postgresql package)"
	fi

	# The server runs as the postgres user, which must be able to reach the
	# data folder. When the checkout lies under a folder it cannot enter
	# (such as /root), the data goes to a folder under /tmp recorded in
	# .run/pg.dir.
	if [[ -s "$RUN_DIR/pg.dir" ]]; then
		PG_DIR=$(<"$RUN_DIR/pg.dir")
	else
		PG_DIR="$RUN_DIR/pg"
		mkdir -p "$PG_DIR"
		if [[ $(id -u) -eq 0 ]]; then
			chown postgres "$PG_DIR"
			if ! runuser -u postgres -- test -w "$PG_DIR"; then
				rmdir "$PG_DIR"
				PG_DIR=$(mktemp -d /tmp/mmbroker-pg.XXXXXX)
				chown postgres "$PG_DIR"
			fi
		fi
		echo "$PG_DIR" >"$RUN_DIR/pg.dir"
	fi
	data="$PG_DIR/data"

	if [[ -s "$RUN_DIR/pg.port" ]] && as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		port=$(<"$RUN_DIR/pg.port")
		log "reusing the private PostgreSQL on 127.0.0.1:$port"
	else
		if [[ ! -s "$data/PG_VERSION" ]]; then
			log "initialising a private PostgreSQL cluster in $data"
			as_postgres "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 >"$LOG_DIR/initdb.log" 2>&1 ||
				die "initdb failed; see .run/logs/initdb.log"
		fi
		port=$(free_port "$PRIVATE_PG_PORT_BASE")
		log "no PostgreSQL responds at $DATABASE_URL; starting a private one on 127.0.0.1:$port"
		as_postgres "$bin/pg_ctl" -D "$data" -l "$PG_DIR/server.log" -w -t 60 \
			-o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null ||
			die "pg_ctl start failed; see $PG_DIR/server.log"
		echo "$port" >"$RUN_DIR/pg.port"
		ln -sf "$PG_DIR/server.log" "$LOG_DIR/postgres.log"
	fi
	if [[ -z $("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'broker'") ]]; then
		"$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres broker
	fi
	DATABASE_URL="postgres://postgres@127.0.0.1:$port/broker?sslmode=disable"
}

# random_token PREFIX: prints PREFIX followed by 64 random hex digits.
random_token() {
	printf '%s%s' "$1" "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
}

# --- build ---------------------------------------------------------------
command -v go >/dev/null || die "go is not on PATH: install Go 1.26 or later (https://go.dev/dl/)"
log "building bin/brokerd, bin/queue-worker, bin/brokerctl and bin/devcert"
mkdir -p bin
go build -o bin/ ./cmd/...
for b in brokerd queue-worker brokerctl devcert; do
	[[ -x "bin/$b" ]] || die "bin/$b was not built: ./cmd/$b is missing or has no main package"
done

# A second make run replaces the processes of the first.
stop_app

# --- Redis and PostgreSQL --------------------------------------------------
REDIS_URL=${BROKER_REDIS_URL:-$DEFAULT_REDIS_URL}
DATABASE_URL=${BROKER_DATABASE_URL:-$DEFAULT_DATABASE_URL}
if pid_runs "$PID_DIR/redis.pid" redis-server; then
	start_private_redis
elif redis_responds "$REDIS_URL"; then
	log "using Redis at $REDIS_URL (namespace $NAMESPACE)"
else
	start_private_redis
fi
if [[ -s "$RUN_DIR/pg.port" ]] && [[ -s "$RUN_DIR/pg.dir" ]] && [[ -f "$(<"$RUN_DIR/pg.dir")/data/postmaster.pid" ]]; then
	start_private_postgres
elif postgres_responds "$DATABASE_URL"; then
	log "using PostgreSQL at $DATABASE_URL"
else
	start_private_postgres
fi

export BROKER_REDIS_URL="$REDIS_URL" BROKER_DATABASE_URL="$DATABASE_URL" BROKER_NAMESPACE="$NAMESPACE"

log "applying database migrations"
bin/brokerd migrate >"$LOG_DIR/migrate.log" 2>&1 || {
	cat "$LOG_DIR/migrate.log" >&2
	die "brokerd migrate failed (output above, also in .run/logs/migrate.log)"
}

# --- TLS and tokens ----------------------------------------------------------
bin/devcert -dir "$RUN_DIR/tls" >/dev/null
CA="$RUN_DIR/tls/ca.pem"

if [[ ! -s "$RUN_DIR/tokens" ]]; then
	umask 077
	{
		echo "OPERATOR_TOKEN=$(random_token mmop_)"
		echo "WORKER_TOKEN=$(random_token mmwk_)"
	} >"$RUN_DIR/tokens"
	umask 022
fi
# shellcheck source=/dev/null
source "$RUN_DIR/tokens"

# --- brokerd -----------------------------------------------------------------
# curl tries ::1 before 127.0.0.1 for localhost, so a server on either
# address would take the quickstart's requests.
if port_listening "$HTTPS_PORT" || (exec 3<>"/dev/tcp/::1/$HTTPS_PORT") 2>/dev/null; then
	die "port $HTTPS_PORT is in use by a program this script did not start; stop it (ss -ltnp 'sport = :$HTTPS_PORT' shows which) and run make run again"
fi
log "starting brokerd on $PUBLIC_URL (log .run/logs/brokerd.log)"
BROKER_ADDR="127.0.0.1:$HTTPS_PORT" \
	BROKER_TLS_CERT="$RUN_DIR/tls/cert.pem" BROKER_TLS_KEY="$RUN_DIR/tls/key.pem" \
	BROKER_OPERATOR_TOKEN="$OPERATOR_TOKEN" BROKER_WORKER_TOKEN="$WORKER_TOKEN" \
	BROKER_AUTH=enabled BROKER_AUTO_MIGRATE=false \
	setsid nohup bin/brokerd serve >>"$LOG_DIR/brokerd.log" 2>&1 </dev/null &
echo $! >"$PID_DIR/brokerd.pid"

ready=
for _ in $(seq 300); do
	if ! pid_alive "$PID_DIR/brokerd.pid"; then
		tail -n 40 "$LOG_DIR/brokerd.log" >&2 || true
		die "brokerd exited during start-up (last lines of .run/logs/brokerd.log above)"
	fi
	if curl -fsS --cacert "$CA" -o /dev/null "$PUBLIC_URL/readyz" 2>/dev/null; then
		ready=1
		break
	fi
	sleep 0.1
done
[[ -n "$ready" ]] || {
	curl -sS --cacert "$CA" "$PUBLIC_URL/readyz" >&2 || true
	die "brokerd did not become ready within 30 s; see .run/logs/brokerd.log"
}

# --- queue workers -----------------------------------------------------------
# The workers read WORKER_SHUTDOWN_TIMEOUT themselves. make stop reads the
# value in seconds from a file, to print how long it waits and to know
# when to give up.
shutdown_seconds=$(duration_seconds "${WORKER_SHUTDOWN_TIMEOUT:-}") ||
	die "invalid WORKER_SHUTDOWN_TIMEOUT \"${WORKER_SHUTDOWN_TIMEOUT:-}\": use Go duration syntax such as 90s or whole seconds"
echo "$shutdown_seconds" >"$WORKER_SHUTDOWN_FILE"
for i in $(seq "$WORKER_COUNT"); do
	log "starting queue-worker worker-$i (log .run/logs/worker-$i.log)"
	BROKER_URL="$PUBLIC_URL" BROKER_TOKEN="$WORKER_TOKEN" BROKER_CACERT="$CA" \
		WORKER_ID="worker-$i" WORKER_CONCURRENCY=2 \
		setsid nohup bin/queue-worker >>"$LOG_DIR/worker-$i.log" 2>&1 </dev/null &
	echo $! >"$PID_DIR/worker-$i.pid"
done

# A worker that cannot reach the broker or rejects its settings exits
# within a second or two; report that here instead of leaving a dead
# worker behind.
for _ in $(seq 20); do
	for i in $(seq "$WORKER_COUNT"); do
		if ! pid_alive "$PID_DIR/worker-$i.pid"; then
			tail -n 40 "$LOG_DIR/worker-$i.log" >&2 || true
			die "queue-worker worker-$i exited during start-up (last lines of .run/logs/worker-$i.log above)"
		fi
	done
	sleep 0.1
done

# --- demo jobs -----------------------------------------------------------------
log "enqueueing $DEMO_JOBS demo:sleep jobs of $DEMO_SECONDS s each"
for i in $(seq "$DEMO_JOBS"); do
	curl -fsS --cacert "$CA" -o /dev/null -X POST \
		-H "Authorization: Bearer $OPERATOR_TOKEN" -H "Content-Type: application/json" \
		-d "{\"type\": \"demo:sleep\", \"payload\": {\"seconds\": $DEMO_SECONDS}}" \
		"$PUBLIC_URL/api/queue/jobs" || die "enqueueing demo job $i failed; see .run/logs/brokerd.log"
done

# --- environment for the quickstart --------------------------------------------
umask 077
cat >"$RUN_DIR/env" <<EOF
# Written by make run. Load it with: source .run/env
export BROKER_URL=$PUBLIC_URL
export TOKEN=$OPERATOR_TOKEN
export BROKER_TOKEN=$OPERATOR_TOKEN
export WORKER_TOKEN=$WORKER_TOKEN
export BROKER_CACERT=$CA
export CURL_CA_BUNDLE=$CA
export BROKER_REDIS_URL='$REDIS_URL'
export BROKER_NAMESPACE=$NAMESPACE
export BROKER_DATABASE_URL='$DATABASE_URL'
export PATH="$ROOT/bin:\$PATH"
EOF
umask 022

command -v jq >/dev/null || warn "jq is not installed; the quickstart pipes responses through it (Debian/Ubuntu: sudo apt-get install jq)"
command -v psql >/dev/null || warn "psql is not installed; the quickstart reads the audit trail with it (Debian/Ubuntu: sudo apt-get install postgresql-client)"

cat <<EOF

MoonMind Broker is running.

  dashboard       $PUBLIC_URL/
  operator token  $OPERATOR_TOKEN
  worker token    $WORKER_TOKEN
  CA certificate  $CA
  logs            .run/logs/   (brokerd.log, worker-1.log, worker-2.log)

Load the environment for the quickstart (docs/quickstart.md):

  source .run/env

then check the pause state:

  curl --cacert $CA -sS -H "Authorization: Bearer \$TOKEN" $PUBLIC_URL/api/system/worker-pause | jq

Stop everything with: make stop
EOF
