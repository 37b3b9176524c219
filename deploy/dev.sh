#!/usr/bin/env bash
# Runs regstat locally: makes sure PostgreSQL and RabbitMQ run, creates the database and the
# vhost, builds the binaries, applies the migrations, prints the registry's `notifications:`
# block and runs the receiver and a worker in the foreground until Ctrl-C.
#
# Run it from anywhere as deploy/dev.sh; see --help. For local development only.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: deploy/dev.sh [--with-registry | --registry URL [--registry-user U --registry-password-file F]]
       deploy/dev.sh --services-only | --help

Runs regstat on this machine:
  1. PostgreSQL and RabbitMQ: reuses running ones, else starts them (an installed local
     server, `docker compose` when a Docker engine runs, or apt-get install as root on
     Debian/Ubuntu), else says what to install.
  2. Creates the database `regstat` and the RabbitMQ vhost `regstat` (when rabbitmqctl works).
  3. Reads or creates a bearer token in .regstat-dev/token (unless REGSTAT__RECEIVER__TOKENS is
     set) and the console's password in .regstat-dev/console-password.
  4. Writes every setting it runs regstat with to .regstat-dev/regstat.toml (mode 600): the
     services read it, and so does the `regstat` CLI (REGSTAT_CONFIG, or run from here).
  5. cargo build --release, `regstat migrate`, prints the registry's notifications config.
  6. Runs regstat-receiver, regstat-worker and regstat-console (and with --with-registry a
     local registry) until Ctrl-C or until one of them exits.

Options:
  --with-registry            also run a local registry (Debian's docker-registry) on
                             127.0.0.1:5000 (REGSTAT_DEV_REGISTRY_PORT), storing in
                             .regstat-dev/registry, its notifications wired to the receiver and
                             registered for callbacks (so platforms show)
  --registry URL             register your registry at URL for callbacks ([[registries]])
  --registry-user U          with --registry: the user regstat calls it back as
  --registry-password-file F with --registry: a file holding that user's password
  --services-only            do steps 1 and 2 only (PostgreSQL, RabbitMQ, database, vhost), then exit
  -h, --help                 show this help

Environment:
  PGHOST, PGPORT          PostgreSQL address (default 127.0.0.1:5432, user postgres, trust auth)
  AMQP_HOST, AMQP_PORT    RabbitMQ address (default 127.0.0.1:5672, user guest)
  REGSTAT__DATABASE__URL, REGSTAT__AMQP__URL, REGSTAT__RECEIVER__TOKENS,
  REGSTAT__RECEIVER__LISTEN, REGSTAT__CONSOLE__LISTEN
                          used as given when set (no database or vhost is created for them)
  REGSTAT_DEV_WAIT_SECS   how long to wait for a service to become ready (default 60)
EOF
}

services_only=false with_registry=false
registry_url="" registry_user="" registry_password_file=""
bad_usage() {
	echo "deploy/dev.sh: $*" >&2
	usage >&2
	exit 2
}
while (($#)); do
	case $1 in
	--services-only) services_only=true ;;
	--with-registry) with_registry=true ;;
	--registry | --registry-user | --registry-password-file)
		(($# >= 2)) || bad_usage "$1 needs a value"
		case $1 in
		--registry) registry_url=$2 ;;
		--registry-user) registry_user=$2 ;;
		--registry-password-file) registry_password_file=$2 ;;
		esac
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) bad_usage "unexpected argument: $1" ;;
	esac
	shift
done
if $with_registry && [[ -n $registry_url ]]; then
	bad_usage "--with-registry and --registry exclude each other"
fi
if [[ -z $registry_url && -n $registry_user$registry_password_file ]]; then
	bad_usage "--registry-user and --registry-password-file go with --registry"
fi
if [[ -n $registry_user$registry_password_file && (-z $registry_user || -z $registry_password_file) ]]; then
	bad_usage "--registry-user and --registry-password-file go together"
fi
if [[ -n $registry_password_file && ! -r $registry_password_file ]]; then
	bad_usage "cannot read --registry-password-file $registry_password_file"
fi
if [[ -n $registry_url && ! $registry_url =~ ^https?://[^/]+/?$ ]]; then
	bad_usage "--registry takes the registry's base URL, e.g. https://registry.example.com:5000"
fi

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
			"  Docker:        docker compose up -d --wait postgres rabbitmq-1 rabbitmq-2 rabbitmq-3" \
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
		compose_up rabbitmq-1 rabbitmq-2 rabbitmq-3
	elif debian_root; then
		rabbit_start_local # after installing it
	else
		die "RabbitMQ does not run at $AMQP_HOST:$AMQP_PORT and this script cannot start it here." \
			"Install and start it, then run deploy/dev.sh again. One of:" \
			"  Debian/Ubuntu: sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached" \
			"  Docker:        docker compose up -d --wait postgres rabbitmq-1 rabbitmq-2 rabbitmq-3" \
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
	if compose_running rabbitmq-1; then
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

say "console credentials"
CONSOLE_BASIC=""
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
	CONSOLE_BASIC=$(tr -d '[:space:]' <"$password_file")
	CONSOLE_LOGIN="user admin, password in $password_file"
fi

LISTEN=${REGSTAT__RECEIVER__LISTEN:-0.0.0.0:8080}
CONSOLE=${REGSTAT__CONSOLE__LISTEN:-0.0.0.0:8081}
WORKER=${REGSTAT__WORKER__LISTEN:-0.0.0.0:9090}
# local_address HOST:PORT: the address to reach a listener bound to HOST:PORT from here.
local_address() {
	local host=${1%:*}
	case $host in
	'' | 0.0.0.0) host=127.0.0.1 ;;
	'[::]') host='[::1]' ;;
	esac
	printf '%s:%s' "$host" "${1##*:}"
}
RECEIVER_URL=http://$(local_address "$LISTEN")
CONSOLE_URL=http://$(local_address "$CONSOLE")
WORKER_URL=http://$(local_address "$WORKER")

REGISTRY_PORT=${REGSTAT_DEV_REGISTRY_PORT:-5000}
if $with_registry; then
	[[ -x /usr/bin/docker-registry ]] || die "--with-registry needs Debian's docker-registry:" \
		"sudo apt-get install -y docker-registry"
	registry_url=http://127.0.0.1:$REGISTRY_PORT
fi

# toml_string VALUE: VALUE as a TOML basic string.
toml_string() {
	local value=${1//\\/\\\\}
	value=${value//\"/\\\"}
	printf '"%s"' "$value"
}

# The one configuration every command uses: the services below (REGSTAT_CONFIG) and the
# `regstat` CLI in any terminal. Secrets are in it, hence mode 600; nothing prints them.
CONFIG=$ROOT/.regstat-dev/regstat.toml
say "configuration: $CONFIG"
(
	umask 077
	mkdir -p .regstat-dev
	{
		echo "# Written by deploy/dev.sh on every start; edit its options, not this file."
		echo "# Every key: shared/src/defaults.toml. Holds secrets (mode 600)."
		if [[ -n $registry_url ]]; then
			registry_host=${registry_url#*://}
			registry_host=${registry_host%/}
			echo
			echo "[[registries]]"
			if $with_registry; then
				echo 'name = "local"'
				echo "aliases = [\"localhost:$REGISTRY_PORT\"]"
			else
				echo "name = $(toml_string "$registry_host")"
			fi
			echo "url = $(toml_string "${registry_url%/}")"
			if [[ -n $registry_user ]]; then
				echo "username = $(toml_string "$registry_user")"
				echo "password = $(toml_string "$(tr -d '\r\n' <"$registry_password_file")")"
			fi
		fi
		echo
		echo "[database]"
		echo "url = $(toml_string "$DATABASE_URL")"
		echo
		echo "[amqp]"
		echo "url = $(toml_string "$AMQP_URL")"
		echo
		echo "[receiver]"
		echo "listen = $(toml_string "$LISTEN")"
		echo "tokens = [$(toml_string "$TOKEN")]"
		echo
		echo "[worker]"
		echo "listen = $(toml_string "$WORKER")"
		echo
		echo "[console]"
		echo "listen = $(toml_string "$CONSOLE")"
		if [[ -n $CONSOLE_BASIC ]]; then
			echo "basic = [{ username = \"admin\", password = $(toml_string "$CONSOLE_BASIC") }]"
		fi
		echo
		echo "[doctor]"
		echo "endpoints = [\"$RECEIVER_URL\", \"$WORKER_URL\", \"$CONSOLE_URL\"]"
	} >"$CONFIG.new"
	mv "$CONFIG.new" "$CONFIG"
)
export REGSTAT_CONFIG=$CONFIG
note "the services read it; so does the CLI, in any terminal, after:"
note "  export REGSTAT_CONFIG=$CONFIG"
if [[ -n $registry_url ]]; then
	note "registry ${registry_url} is registered for callbacks"
fi

say "building (cargo build --release)"
locked=(--locked)
[[ -f Cargo.lock ]] || locked=()
cargo build --release "${locked[@]}" --bins
BIN=${CARGO_TARGET_DIR:-target}/release

say "applying migrations (regstat migrate)"
"$BIN/regstat" migrate

NOTIFICATIONS="[{name: regstat, url: \"$RECEIVER_URL/events\", headers: {Authorization: [\"Bearer $TOKEN\"]}, timeout: 2s, threshold: 5, backoff: 1s}]"
if $with_registry; then
	say "local registry: $registry_url (data in .regstat-dev/registry; its notifications go to the receiver)"
	mkdir -p .regstat-dev/registry
else
	say "registry configuration: put this in the registry's config.yml (full example: deploy/registry/config.yml)"
	cat <<EOF

notifications:
  events:
    includereferences: true
  endpoints:
    - name: regstat
      # A registry in a container needs an address of this machine that it can reach instead.
      url: $RECEIVER_URL/events
      headers:
        Authorization: [Bearer $TOKEN]
      timeout: 2s
      threshold: 5
      backoff: 1s
      # ignore:
      #   mediatypes: []   # e.g. [application/octet-stream]: no events for these media types
      #   actions: []      # e.g. [pull]: no events for these actions

EOF
	if [[ -z $registry_url ]]; then
		note "and run deploy/dev.sh --registry URL to let regstat call it back (platforms, sizes)"
	fi
fi

names=() pids=() sed_pids=()
# start NAME COMMAND...: runs it in the background, its output prefixed by [NAME].
start() {
	local fd name=$1
	shift
	# The prefixing sed ignores Ctrl-C so it prints the process's last lines during shutdown.
	exec {fd}> >(
		trap '' INT TERM
		exec sed -u "s/^/[$name] /"
	)
	sed_pids+=("$!")
	"$@" >&"$fd" 2>&1 &
	pids+=("$!")
	names+=("$name")
	exec {fd}>&-
}

stop_all() {
	trap - INT TERM
	say "stopping ${names[*]}"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	wait "${sed_pids[@]}" 2>/dev/null || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

say "starting regstat-receiver on $LISTEN, regstat-worker and regstat-console (Ctrl-C stops them)"
note "console: $CONSOLE_URL/ ($CONSOLE_LOGIN)"
start receiver "$BIN/regstat-receiver"
start worker "$BIN/regstat-worker"
start console "$BIN/regstat-console"
if $with_registry; then
	REGISTRY_HTTP_ADDR=127.0.0.1:$REGISTRY_PORT \
		REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$ROOT/.regstat-dev/registry \
		REGISTRY_LOG_LEVEL=warn REGISTRY_LOG_ACCESSLOG_DISABLED=true \
		REGISTRY_NOTIFICATIONS_ENDPOINTS=$NOTIFICATIONS \
		start registry /usr/bin/docker-registry serve deploy/registry/config.yml
	note "try it: skopeo copy --all --dest-tls-verify=false docker://docker.io/library/alpine:3.20 docker://127.0.0.1:$REGISTRY_PORT/demo/alpine:3.20"
fi
note "then, in another terminal: export REGSTAT_CONFIG=$CONFIG; $BIN/regstat doctor; $BIN/regstat report images"

# Until one of them exits; then stop the others and exit with the first one's status.
while :; do
	wait -n || true
	for i in "${!pids[@]}"; do
		if ! kill -0 "${pids[$i]}" 2>/dev/null; then
			status=0
			wait "${pids[$i]}" || status=$?
			say "${names[$i]} exited with status $status"
			stop_all
			exit "$((status == 0 ? 1 : status))"
		fi
	done
done
