#!/usr/bin/env bash
# Runs regstat locally: makes sure PostgreSQL and RabbitMQ run, creates the database and the
# vhost, builds the binaries, applies the migrations, prints the registry's `notifications:`
# block and runs the receiver and a worker in the foreground until Ctrl-C.
#
# Run it from anywhere as deploy/dev.sh; see --help. For local development only.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: deploy/dev.sh [--services-only | --help]

Runs regstat on this machine:
  1. PostgreSQL and RabbitMQ: reuses running ones, else starts them (an installed local
     server, `docker compose` when a Docker engine runs, or apt-get install as root on
     Debian/Ubuntu), else says what to install.
  2. Creates the database `regstat` and the RabbitMQ vhost `regstat` (when rabbitmqctl works).
  3. Reads or creates a bearer token in .regstat-dev/token (unless REGSTAT__RECEIVER__TOKENS is set).
  4. cargo build --release, `regstat migrate`, prints the registry's notifications config.
  5. Runs regstat-receiver, regstat-worker and regstat-console until Ctrl-C or until one of
     them exits, and prints the console's URL and credentials.

Options:
  --services-only  do steps 1 and 2 only (PostgreSQL, RabbitMQ, database, vhost), then exit
  -h, --help       show this help

Environment:
  PGHOST, PGPORT          PostgreSQL address (default 127.0.0.1:5432, user postgres, trust auth)
  AMQP_HOST, AMQP_PORT    RabbitMQ address (default 127.0.0.1:5672, user guest)
  REGSTAT__DATABASE__URL, REGSTAT__AMQP__URL, REGSTAT__RECEIVER__TOKENS,
  REGSTAT__RECEIVER__LISTEN
                          used as given when set (no database or vhost is created for them)
  REGSTAT_DEV_WAIT_SECS   how long to wait for a service to become ready (default 60)
EOF
}

services_only=false
case "$#:${1:-}" in
0:) ;;
1:--services-only) services_only=true ;;
1:-h | 1:--help)
	usage
	exit 0
	;;
*)
	echo "deploy/dev.sh: unexpected arguments: $*" >&2
	usage >&2
	exit 2
	;;
esac

if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
	echo "deploy/dev.sh needs bash 4.4 or newer (this is $BASH_VERSION)" >&2
	exit 1
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PG_HOST=${PGHOST:-127.0.0.1}
PG_PORT=${PGPORT:-5432}
AMQP_HOST=${AMQP_HOST:-127.0.0.1}
AMQP_PORT=${AMQP_PORT:-5672}
WAIT_SECS=${REGSTAT_DEV_WAIT_SECS:-60}
# Set by .ci/run when it has just run `apt-get update`.
APT_UPDATED=${REGSTAT_DEV_APT_UPDATED:-}

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
	printf 'deploy/dev.sh: %s\n' "$1" >&2
	shift
	local line
	for line in "$@"; do printf '%s\n' "$line" | sed 's/^/    /' >&2; done
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

is_local() {
	case $1 in 127.0.0.1 | localhost | ::1 | '[::1]') return 0 ;; *) return 1 ;; esac
}

# tcp_open HOST PORT: whether something accepts TCP connections there.
tcp_open() {
	local host=${1#[}
	host=${host%]}
	# shellcheck disable=SC2016 # $0 and $1 are expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$2" 2>/dev/null
}

pg_up() {
	if have pg_isready; then
		pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3
	else
		tcp_open "$PG_HOST" "$PG_PORT"
	fi
}

rabbit_up() { tcp_open "$AMQP_HOST" "$AMQP_PORT"; }

# A broker started here is ready when its node answers and its AMQP port accepts.
rabbit_started() { rabbitmq-diagnostics -q ping >/dev/null 2>&1 && rabbit_up; }

# wait_until WHAT COMMAND...: polls COMMAND once a second for at most WAIT_SECS.
wait_until() {
	local what=$1 deadline=$((SECONDS + WAIT_SECS))
	shift
	printf '    waiting for %s ' "$what"
	until "$@"; do
		if ((SECONDS >= deadline)); then
			echo
			die "$what is not ready after ${WAIT_SECS}s"
		fi
		printf .
		sleep 1
	done
	echo ' ready'
}

docker_state=""
docker_works() {
	if [[ -z $docker_state ]]; then
		docker_state=no
		if have docker && docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
			docker_state=yes
		fi
	fi
	[[ $docker_state == yes ]]
}

# compose_running SERVICE: whether compose.yaml's SERVICE runs (then it made db/vhost itself).
compose_running() {
	docker_works && [[ -n $(docker compose ps -q --status running "$1" 2>/dev/null) ]]
}

compose_up() {
	ensure_env_file
	note "docker compose up -d --wait $*"
	docker compose up -d --wait "$@"
}

# The compose stack takes its secrets from .env: create it from .env.example with random
# values if it is missing, and read it (the URLs below use its credentials).
ensure_env_file() {
	if [[ ! -f .env ]]; then
		note "creating .env with random secrets from .env.example"
		local line
		while IFS= read -r line; do
			case $line in *=change-me*) line="${line%%=*}=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')" ;; esac
			printf '%s\n' "$line"
		done <.env.example >.env
		chmod 600 .env
	fi
	set -a
	# shellcheck source=/dev/null
	. ./.env
	set +a
}

debian_root() { [[ -f /etc/debian_version && $(id -u) -eq 0 ]]; }

apt_install() {
	if [[ -z $APT_UPDATED ]]; then
		note "apt-get update"
		apt-get update -qq
		APT_UPDATED=1
	fi
	note "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# The installed PostgreSQL cluster on PG_PORT, as "VERSION NAME STATUS", if any.
pg_cluster() {
	have pg_lsclusters || return 0
	pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2, $4; exit }'
}

pg_server_installed() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

# Starts the local cluster on PG_PORT (Debian's PostgreSQL), installing PostgreSQL if missing.
pg_start_local() {
	local fresh=false version name status
	if ! pg_server_installed || ! have pg_ctlcluster; then
		apt_install postgresql
		fresh=true
	fi
	read -r version name status <<<"$(pg_cluster)" || true
	if [[ -z ${version:-} ]]; then
		if [[ -n $(pg_lsclusters -h 2>/dev/null) ]]; then
			die "no local PostgreSQL cluster uses port $PG_PORT; these exist:" \
				"$(pg_lsclusters)" "Start one of them and set PGPORT to its port."
		fi
		version=$(find /usr/lib/postgresql -path '*/bin/postgres' | awk -F/ '{ print $5 }' | sort -V | tail -n 1)
		note "creating cluster $version/main on port $PG_PORT"
		pg_createcluster --port "$PG_PORT" "$version" main >/dev/null
		name=main status=down fresh=true
	fi
	if $fresh; then
		# A server installed by this script is for local development: let local TCP in without
		# a password, as the default URLs (postgres://postgres@127.0.0.1:5432/...) expect.
		note "allowing passwordless (trust) connections from localhost to cluster $version/$name"
		sed -Ei 's#^(host\s+all\s+all\s+(127\.0\.0\.1/32|::1/128)\s+)\S+#\1trust#' \
			"/etc/postgresql/$version/$name/pg_hba.conf"
	fi
	if [[ $status == online* ]]; then
		if $fresh; then pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload; fi
	else
		note "pg_ctlcluster --skip-systemctl-redirect $version $name start"
		pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
	fi
	wait_until "PostgreSQL on $PG_HOST:$PG_PORT" pg_up
}

# Starts the local RabbitMQ node (Debian's rabbitmq-server), installing it if missing.
rabbit_start_local() {
	local fresh=false
	if ! have rabbitmq-server; then
		apt_install rabbitmq-server
		fresh=true
	fi
	if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
		note "rabbitmq-server -detached"
		rabbitmq-server -detached
	elif ! $fresh; then
		die "the local RabbitMQ node runs but nothing accepts AMQP at $AMQP_HOST:$AMQP_PORT." \
			"Set AMQP_PORT to the port it listens on (rabbitmq-diagnostics listeners)."
	fi
	wait_until "RabbitMQ on $AMQP_HOST:$AMQP_PORT" rabbit_started
}

ensure_postgres() {
	say "PostgreSQL at $PG_HOST:$PG_PORT"
	if pg_up; then
		note "running: reusing it"
		return
	fi
	is_local "$PG_HOST" || die "PostgreSQL does not answer at $PG_HOST:$PG_PORT." \
		"Start it, or point PGHOST/PGPORT at one that runs."
	if debian_root && pg_server_installed && [[ -n $(pg_cluster) ]]; then
		pg_start_local # the installed server
	elif docker_works; then
		compose_up postgres
	elif debian_root; then
		pg_start_local # after installing it
	else
		die "PostgreSQL does not run at $PG_HOST:$PG_PORT and this script cannot start it here." \
			"Install and start it, then run deploy/dev.sh again. One of:" \
			"  Debian/Ubuntu: sudo apt-get install postgresql" \
			"                 sudo pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" \
			"                 (and 'trust' for 127.0.0.1/32 in pg_hba.conf, or set REGSTAT__DATABASE__URL)" \
			"  Docker:        docker compose up -d --wait postgres rabbitmq" \
			"  elsewhere:     set PGHOST/PGPORT to a PostgreSQL server"
	fi
	pg_up || die "PostgreSQL still does not answer at $PG_HOST:$PG_PORT"
}

ensure_rabbitmq() {
	say "RabbitMQ at $AMQP_HOST:$AMQP_PORT"
	if rabbit_up; then
		note "running: reusing it"
		return
	fi
	is_local "$AMQP_HOST" || die "RabbitMQ does not answer at $AMQP_HOST:$AMQP_PORT." \
		"Start it, or point AMQP_HOST/AMQP_PORT at one that runs."
	if debian_root && have rabbitmq-server; then
		rabbit_start_local # the installed broker
	elif docker_works; then
		compose_up rabbitmq
	elif debian_root; then
		rabbit_start_local # after installing it
	else
		die "RabbitMQ does not run at $AMQP_HOST:$AMQP_PORT and this script cannot start it here." \
			"Install and start it, then run deploy/dev.sh again. One of:" \
			"  Debian/Ubuntu: sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached" \
			"  Docker:        docker compose up -d --wait postgres rabbitmq" \
			"  elsewhere:     set AMQP_HOST/AMQP_PORT to a RabbitMQ broker"
	fi
	rabbit_up || die "RabbitMQ still does not answer at $AMQP_HOST:$AMQP_PORT"
}

ensure_database() {
	say "database regstat"
	if [[ -n ${REGSTAT__DATABASE__URL:-} ]]; then
		DATABASE_URL=$REGSTAT__DATABASE__URL
		note "REGSTAT__DATABASE__URL is set: using it as it is"
		return
	fi
	DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/regstat"
	if compose_running postgres; then
		ensure_env_file
		DATABASE_URL="postgres://regstat:$POSTGRES_PASSWORD@$PG_HOST:$PG_PORT/regstat"
		note "exists (the compose service creates it)"
		return
	fi
	if ! have psql; then
		note "psql is not installed: cannot check it; create database regstat if it is missing"
		return
	fi
	local psql=(psql -X -w -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres) exists
	if ! exists=$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname='regstat'" 2>&1); then
		note "cannot check it as user postgres without a password: $exists"
		note "create it yourself, or set REGSTAT__DATABASE__URL"
		return
	fi
	if [[ $exists == 1 ]]; then
		note "exists"
	else
		createdb -w -h "$PG_HOST" -p "$PG_PORT" -U postgres regstat
		note "created"
	fi
}

ensure_vhost() {
	say "RabbitMQ vhost regstat"
	if [[ -n ${REGSTAT__AMQP__URL:-} ]]; then
		AMQP_URL=$REGSTAT__AMQP__URL
		note "REGSTAT__AMQP__URL is set: using it as it is"
		return
	fi
	local ctl=() out
	if compose_running rabbitmq; then
		ensure_env_file
		AMQP_URL="amqp://$RABBITMQ_USER:$RABBITMQ_PASSWORD@$AMQP_HOST:$AMQP_PORT/%2f"
		note "compose's RabbitMQ: default vhost /, user $RABBITMQ_USER from .env"
		return
	fi
	if is_local "$AMQP_HOST" && have rabbitmqctl; then
		ctl=(rabbitmqctl)
	fi
	if ((${#ctl[@]})) && "${ctl[@]}" -q list_vhosts >/dev/null 2>&1; then
		if ! out=$("${ctl[@]}" -q add_vhost regstat 2>&1) && [[ $out != *already* ]]; then
			die "rabbitmqctl add_vhost regstat failed: $out"
		fi
		"${ctl[@]}" -q set_permissions -p regstat guest '.*' '.*' '.*'
		AMQP_URL="amqp://guest:guest@$AMQP_HOST:$AMQP_PORT/regstat"
		note "ready (user guest has all permissions on it)"
	else
		AMQP_URL="amqp://guest:guest@$AMQP_HOST:$AMQP_PORT/%2f"
		note "rabbitmqctl is not usable here: using the default vhost / instead"
	fi
}

# The end-to-end tests drive a real registry (Debian's docker-registry) with real clients
# (skopeo, and containerd's ctr against a private containerd daemon).
ensure_test_tools() {
	say "test tools (docker-registry, skopeo, containerd, chromium, chromedriver)"
	local missing=()
	[[ -x /usr/bin/docker-registry ]] || missing+=(docker-registry)
	have skopeo || missing+=(skopeo)
	{ have containerd && have ctr; } || missing+=(containerd)
	[[ -x /usr/bin/chromium ]] || missing+=(chromium)
	[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
	if ((${#missing[@]} == 0)); then
		note "installed"
	elif debian_root; then
		apt_install "${missing[@]}"
	else
		note "missing: ${missing[*]} (only the end-to-end test needs them):"
		note "  Debian/Ubuntu: sudo apt-get install -y ${missing[*]}"
	fi
}

ensure_postgres
ensure_rabbitmq
ensure_database
ensure_vhost
ensure_test_tools
export REGSTAT__DATABASE__URL=$DATABASE_URL REGSTAT__AMQP__URL=$AMQP_URL

if $services_only; then
	say "services ready"
	note "REGSTAT__DATABASE__URL=$DATABASE_URL"
	note "REGSTAT__AMQP__URL=$AMQP_URL"
	exit 0
fi

say "bearer token for the registry"
if [[ -n ${REGSTAT__RECEIVER__TOKENS:-} ]]; then
	TOKEN=${REGSTAT__RECEIVER__TOKENS%%,*}
	note "REGSTAT__RECEIVER__TOKENS is set: the registry gets its first token"
else
	token_file=.regstat-dev/token
	if [[ -s $token_file ]]; then
		TOKEN=$(tr -d '[:space:]' <"$token_file")
		note "read from $token_file"
	else
		(
			umask 077
			mkdir -p .regstat-dev
			od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$token_file"
		)
		TOKEN=$(<"$token_file")
		note "created $token_file"
	fi
	export REGSTAT__RECEIVER__TOKENS=$TOKEN
fi

say "building (cargo build --release)"
locked=(--locked)
[[ -f Cargo.lock ]] || locked=()
cargo build --release "${locked[@]}" --bins
BIN=${CARGO_TARGET_DIR:-target}/release

say "applying migrations (regstat migrate)"
"$BIN/regstat" migrate

LISTEN=${REGSTAT__RECEIVER__LISTEN:-0.0.0.0:8080}
listen_host=${LISTEN%:*}
listen_port=${LISTEN##*:}
case $listen_host in
'' | 0.0.0.0) listen_host=127.0.0.1 ;;
'[::]') listen_host='[::1]' ;;
esac
say "registry configuration: put this in the registry's config.yml (full example: deploy/registry/config.yml)"
cat <<EOF

notifications:
  events:
    includereferences: true
  endpoints:
    - name: regstat
      # A registry in a container needs an address of this machine that it can reach instead.
      url: http://$listen_host:$listen_port/events
      headers:
        Authorization: [Bearer $TOKEN]
      timeout: 2s
      threshold: 5
      backoff: 1s
      # ignore:
      #   mediatypes: []   # e.g. [application/octet-stream]: no events for these media types
      #   actions: []      # e.g. [pull]: no events for these actions

EOF

say "console credentials"
if [[ -n ${REGSTAT__CONSOLE__BASIC:-}${REGSTAT__CONSOLE__TOKENS:-} ]]; then
	note "REGSTAT__CONSOLE__BASIC or REGSTAT__CONSOLE__TOKENS is set: using it"
	CONSOLE_LOGIN="(your configured credentials)"
else
	password_file=.regstat-dev/console-password
	if [[ ! -s $password_file ]]; then
		(
			umask 077
			mkdir -p .regstat-dev
			od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$password_file"
		)
		note "created $password_file"
	fi
	REGSTAT__CONSOLE__BASIC="admin:$(tr -d '[:space:]' <"$password_file")"
	export REGSTAT__CONSOLE__BASIC
	CONSOLE_LOGIN="user admin, password in $password_file"
fi
CONSOLE=${REGSTAT__CONSOLE__LISTEN:-0.0.0.0:8081}
console_host=${CONSOLE%:*}
case $console_host in
'' | 0.0.0.0) console_host=127.0.0.1 ;;
'[::]') console_host='[::1]' ;;
esac

names=() pids=() sed_pids=()
# start NAME BINARY: runs it in the background, its output prefixed by [NAME].
start() {
	local fd
	# The prefixing sed ignores Ctrl-C so it prints the process's last lines during shutdown.
	exec {fd}> >(
		trap '' INT TERM
		exec sed -u "s/^/[$1] /"
	)
	sed_pids+=("$!")
	"$2" >&"$fd" 2>&1 &
	pids+=("$!")
	names+=("$1")
	exec {fd}>&-
}

stop_all() {
	trap - INT TERM
	say "stopping receiver, worker and console"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	wait "${sed_pids[@]}" 2>/dev/null || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

say "starting regstat-receiver on $LISTEN, regstat-worker and regstat-console (Ctrl-C stops them)"
note "console: http://$console_host:${CONSOLE##*:}/ ($CONSOLE_LOGIN)"
start receiver "$BIN/regstat-receiver"
start worker "$BIN/regstat-worker"
start console "$BIN/regstat-console"

# Until one of them exits; then stop the other and exit with the first one's status.
while :; do
	wait -n || true
	for i in "${!pids[@]}"; do
		if ! kill -0 "${pids[$i]}" 2>/dev/null; then
			status=0
			wait "${pids[$i]}" || status=$?
			say "regstat-${names[$i]} exited with status $status"
			stop_all
			exit "$((status == 0 ? 1 : status))"
		fi
	done
done
