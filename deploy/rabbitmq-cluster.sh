#!/usr/bin/env bash
# Runs a local 3-node RabbitMQ cluster on this machine from the installed Debian packages
# (rabbitmq-server 3.10, its scripts in /usr/lib/rabbitmq/bin), for tests and experiments with a
# clustered broker: node failures, restarts, failover between AMQP URLs.
#
#   node                         AMQP (127.0.0.1)  distribution (localhost)
#   regstat-cluster-1@localhost  5673              25673
#   regstat-cluster-2@localhost  5674              25674
#   regstat-cluster-3@localhost  5675              25675
#
# Everything lives under one folder, ${TMPDIR:-/tmp}/regstat-cluster: a HOME of the nodes' own
# (home/.erlang.cookie, a cookie of their own, mode 400), the nodes' config, data, logs and
# pid files (node1/ .. node3/: rabbitmq.conf, mnesia/, log/, server.out, rabbit.pid) and a lock
# file. No plugins (no management UI); the default user guest/guest, from localhost only. The
# nodes run as the calling user, not under systemd, and leave the machine's own node (port
# 5672, rabbit@localhost) alone; they share its epmd. See --help. For local testing only.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: deploy/rabbitmq-cluster.sh COMMAND

Commands:
  up        starts every node that is not running, joins nodes 2 and 3 to node 1 when they
            are not members yet, waits until all three run in the cluster and prints
            REGSTAT__AMQP__URL=amqp://guest:guest@127.0.0.1:5673/%2f,...  on stdout (the
            progress goes to stderr): export "$(deploy/rabbitmq-cluster.sh up)". A quick no-op
            when the cluster runs; restarts a killed or stopped node, which rejoins by itself.
  down      stops the nodes (killing what does not stop) and removes the cluster's folder
  status    each node, running or down, with its AMQP URL, and the cluster's running members;
            exits 0 when all three nodes run in the cluster, else 1
  url       prints the URL list only (amqp://guest:guest@127.0.0.1:5673/%2f,...)
  kill N    kill -9 node N's Erlang VM (a crash), waits until it is gone
  stop N    stops node N gracefully (rabbitmqctl stop), waits until it is gone
  start N   starts node N if it is not running and waits until it runs in the cluster again
            (a node that was a member waits for the others at boot: start them too, or `up`)
  ctl N ARGS...
            runs rabbitmqctl ARGS against node N with the cluster's cookie, e.g.
            ctl 1 list_queues name leader

Environment:
  REGSTAT_CLUSTER_NAME       node name prefix (default regstat-cluster: regstat-cluster-1@localhost)
  REGSTAT_CLUSTER_PORT       node 1's AMQP port (default 5673); node N listens on PORT+N-1
                             and its distribution on PORT+N-1+20000
  REGSTAT_CLUSTER_DIR        the cluster's folder (default ${TMPDIR:-/tmp}/$REGSTAT_CLUSTER_NAME)
  REGSTAT_CLUSTER_WAIT_SECS  how long to wait for a node to boot, join or stop (default 120)
EOF
}

NAME=${REGSTAT_CLUSTER_NAME:-regstat-cluster}
BASE_PORT=${REGSTAT_CLUSTER_PORT:-5673}
DIR=${REGSTAT_CLUSTER_DIR:-${TMPDIR:-/tmp}/$NAME}
WAIT_SECS=${REGSTAT_CLUSTER_WAIT_SECS:-120}
RABBITMQ_BIN=/usr/lib/rabbitmq/bin
NODES=(1 2 3)

say() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() {
	printf 'deploy/rabbitmq-cluster.sh: %s\n' "$1" >&2
	shift
	local line
	for line in "$@"; do printf '%s\n' "$line" | sed 's/^/    /' >&2; done
	exit 1
}
bad_usage() {
	echo "deploy/rabbitmq-cluster.sh: $*" >&2
	usage >&2
	exit 2
}
have() { command -v "$1" >/dev/null 2>&1; }

[[ $NAME =~ ^[A-Za-z0-9_-]+$ ]] || die "REGSTAT_CLUSTER_NAME must be letters, digits, - and _: $NAME"
if ! [[ $BASE_PORT =~ ^[0-9]+$ ]] || ((BASE_PORT < 1024 || BASE_PORT + 2 + 20000 > 65535)); then
	die "REGSTAT_CLUSTER_PORT must be a port from 1024 to 45533: $BASE_PORT"
fi
[[ $WAIT_SECS =~ ^[0-9]+$ ]] || die "REGSTAT_CLUSTER_WAIT_SECS must be a number of seconds: $WAIT_SECS"
DIR=${DIR%/}
[[ -n $DIR ]] || die "REGSTAT_CLUSTER_DIR must not be /"
[[ $DIR == /* ]] || DIR=$PWD/$DIR

# --- nodes --------------------------------------------------------------------------------

node_name() { printf '%s-%s@localhost' "$NAME" "$1"; }
amqp_port() { echo $((BASE_PORT + $1 - 1)); }
dist_port() { echo $((BASE_PORT + $1 - 1 + 20000)); }
node_dir() { printf '%s/node%s' "$DIR" "$1"; }
node_url() { printf 'amqp://guest:guest@127.0.0.1:%s/%%2f' "$(amqp_port "$1")"; }
url_list() {
	local i urls=()
	for i in "${NODES[@]}"; do urls+=("$(node_url "$i")"); done
	local IFS=,
	printf '%s\n' "${urls[*]}"
}

# The node's Erlang VM gets this flag (ignored by Erlang) so that it can be found by name.
MARKER=-regstat_cluster_node

# node_pid N: the OS pid of node N's Erlang VM; fails when it does not run.
node_pid() {
	pgrep -u "$(id -u)" -f -- "$MARKER $(node_name "$1")( |\$)" | head -n 1 | grep .
}
node_alive() { node_pid "$1" >/dev/null; }

# node_exports N: exports the environment the server and the CLI tools need for node N.
node_exports() {
	local dir loopback='-kernel inet_dist_use_interface {127,0,0,1}'
	dir=$(node_dir "$1")
	export HOME="$DIR/home" # the Erlang cookie: $HOME/.erlang.cookie
	export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf" # not /etc/rabbitmq's
	export RABBITMQ_NODENAME
	RABBITMQ_NODENAME=$(node_name "$1")
	export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
	export RABBITMQ_NODE_PORT
	RABBITMQ_NODE_PORT=$(amqp_port "$1")
	export RABBITMQ_DIST_PORT
	RABBITMQ_DIST_PORT=$(dist_port "$1")
	export RABBITMQ_MNESIA_BASE="$dir/mnesia"
	export RABBITMQ_LOG_BASE="$dir/log"
	export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
	export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
	export RABBITMQ_PID_FILE="$dir/rabbit.pid"
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$MARKER $RABBITMQ_NODENAME $loopback"
	export RABBITMQ_CTL_ERL_ARGS=$loopback
}

# rmq N TOOL ARGS...: runs a RabbitMQ CLI tool (rabbitmqctl, rabbitmq-diagnostics) against
# node N, with its cookie; one that hangs is killed after WAIT_SECS + 30 s.
rmq() {
	local node=$1 tool=$2
	shift 2
	(
		exec 9>&- # an epmd started by the tool must not hold the lock
		node_exports "$node"
		exec timeout -k 5 "$((WAIT_SECS + 30))" "$RABBITMQ_BIN/$tool" -n "$(node_name "$node")" "$@"
	)
}

# tcp_open PORT: whether something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() {
	# shellcheck disable=SC2016 # $0 is expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# registered N: whether node N's distribution is up (its name is in epmd); true without epmd.
registered() {
	have epmd || return 0
	epmd -names 2>/dev/null | grep -q "^name ${NAME}-$1 at port "
}

# The last lines of node N's output and log, for an error message.
node_log_tail() {
	local dir file
	dir=$(node_dir "$1")
	for file in "$dir/server.out" "$dir/log/$(node_name "$1").log"; do
		[[ -f $file ]] || continue
		printf '%s (last lines):\n' "$file"
		tail -n 25 "$file"
	done
}

# --- the cluster's folder -----------------------------------------------------------------

# Takes the lock (fd 9) that serialises this script's runs on one cluster. `down` removes the
# folder with the lock file in it: a run that waited for it then holds a deleted file, and
# takes the lock again on the new one.
lock() {
	# The folder is removed by `down`: make sure it is one of ours (or new, or empty).
	if [[ -d $DIR && ! -e $DIR/.lock && -n $(ls -A "$DIR") ]]; then
		die "$DIR is not empty and not a cluster folder of deploy/rabbitmq-cluster.sh (no .lock):" \
			"choose another REGSTAT_CLUSTER_DIR"
	fi
	while :; do
		mkdir -p "$DIR"
		exec 9>>"$DIR/.lock"
		flock -w "$WAIT_SECS" 9 ||
			die "another deploy/rabbitmq-cluster.sh still holds $DIR/.lock after ${WAIT_SECS}s"
		[[ /proc/self/fd/9 -ef $DIR/.lock ]] && return
		exec 9>&-
	done
}

# Writes the cookie (once: running nodes use it) and the configuration files.
prepare() {
	[[ -x $RABBITMQ_BIN/rabbitmq-server ]] ||
		die "RabbitMQ's scripts are not in $RABBITMQ_BIN: install the rabbitmq-server package" \
			"(Debian/Ubuntu: apt-get install rabbitmq-server; deploy/dev.sh --services-only does)"
	mkdir -p "$DIR/home"
	chmod 700 "$DIR/home"
	local cookie="$DIR/home/.erlang.cookie"
	if [[ ! -s $cookie ]]; then
		(
			umask 077
			od -An -tx1 -N20 /dev/urandom | tr -d ' \n' | tr a-f A-F >"$cookie.new"
		)
		chmod 400 "$cookie.new"
		mv -f "$cookie.new" "$cookie"
	fi
	chmod 400 "$cookie" # Erlang refuses a cookie file others can read
	printf '[].\n' >"$DIR/enabled_plugins"
	# Replaces /etc/rabbitmq/rabbitmq-env.conf (the machine node's NODENAME and so on). Should
	# a node start epmd (none runs yet), it listens on loopback only.
	printf '# Written by deploy/rabbitmq-cluster.sh.\nERL_EPMD_ADDRESS=127.0.0.1\n' \
		>"$DIR/rabbitmq-env.conf"
	local i dir
	for i in "${NODES[@]}"; do
		dir=$(node_dir "$i")
		mkdir -p "$dir/mnesia" "$dir/log"
		cat >"$dir/rabbitmq.conf" <<-EOF
			# Written by deploy/rabbitmq-cluster.sh: $(node_name "$i").
			listeners.tcp.default = 127.0.0.1:$(amqp_port "$i")
			loopback_users.guest = true
			cluster_name = $NAME
			# Quorum queue leaders spread over the nodes (not all on the declaring client's).
			queue_leader_locator = balanced
			# A node cut off from the other two stops serving (as in compose and Kubernetes).
			cluster_partition_handling = pause_minority
			# The log is in log/; server.out keeps what comes before it (and crashes).
			log.console = false
		EOF
	done
}

# --- starting, joining, stopping ----------------------------------------------------------

# The pids of the rabbitmq-server scripts this run started, by node: the script runs until
# the node's VM exits, and before the VM has started.
declare -A LAUNCHER=()

# start_node N: starts node N in the background, in a session of its own, its output in
# server.out; does not wait.
start_node() {
	local i=$1 dir port
	dir=$(node_dir "$i")
	for port in "$(amqp_port "$i")" "$(dist_port "$i")"; do
		if tcp_open "$port"; then
			die "port $port, which $(node_name "$i") needs, is taken by another process:" \
				"$(ss -ltnp "sport = :$port" 2>/dev/null || true)" \
				"Stop it, or choose other ports with REGSTAT_CLUSTER_PORT."
		fi
	done
	note "starting $(node_name "$i") (AMQP 127.0.0.1:$(amqp_port "$i"), distribution $(dist_port "$i"))"
	printf '\n=== %s: started by deploy/rabbitmq-cluster.sh\n' "$(date '+%F %T')" >>"$dir/server.out"
	(
		node_exports "$i"
		cd "$dir"
		exec setsid "$RABBITMQ_BIN/rabbitmq-server" >>"$dir/server.out" 2>&1 </dev/null 9>&-
	) &
	LAUNCHER[$i]=$!
}

# node_up N: whether node N's VM runs, or its rabbitmq-server script (started by this run)
# still does, the VM not started yet.
node_up() {
	node_alive "$1" || { [[ -n ${LAUNCHER[$1]:-} ]] && kill -0 "${LAUNCHER[$1]}" 2>/dev/null; }
}

# wait_booted N WAS_RUNNING: waits until node N has booted (RabbitMQ's application runs), or
# dies with its log when it exits or takes too long. A node that ran before this run (true)
# and has its application stopped (rabbitmqctl stop_app, an interrupted join) is started.
wait_booted() {
	local i=$1 was_running=$2 name deadline=$((SECONDS + WAIT_SECS)) left
	name=$(node_name "$i")
	until registered "$i"; do
		node_up "$i" || die "$name exited while booting" "$(node_log_tail "$i")"
		((SECONDS < deadline)) || die "$name did not start within ${WAIT_SECS}s" "$(node_log_tail "$i")"
		sleep 0.2
	done
	if $was_running && [[ $(rmq "$i" rabbitmqctl -q eval 'rabbit_boot_state:get().' 2>/dev/null) == stopped ]]; then
		note "$name runs with RabbitMQ stopped: rabbitmqctl start_app"
		rmq "$i" rabbitmqctl -q start_app >/dev/null 2>&1 || true
	fi
	while :; do
		left=$((deadline - SECONDS))
		((left > 0)) || die "$name did not boot within ${WAIT_SECS}s" "$(node_log_tail "$i")"
		# Waits while the node boots; fails at once while it cannot be reached yet.
		if rmq "$i" rabbitmqctl -q await_startup --timeout "$left" >/dev/null 2>&1; then
			return
		fi
		node_up "$i" || die "$name exited while booting" "$(node_log_tail "$i")"
		sleep 1
	done
}

# cluster_json N: node N's `rabbitmqctl cluster_status` as JSON; fails when N does not answer.
cluster_json() { rmq "$1" rabbitmqctl -q cluster_status --formatter json 2>/dev/null; }

# json_nodes KEY: the node names in the list KEY of the cluster_status JSON on stdin.
json_nodes() {
	grep -o "\"$1\":\[[^]]*\]" | grep -o '"[^"]*@[^"]*"' | tr -d '"' || true
}

# has_all LIST NODE...: whether LIST (names, a line each) holds every NODE's name.
has_all() {
	local list=$1 i
	shift
	for i in "$@"; do
		grep -qxF "$(node_name "$i")" <<<"$list" || return 1
	done
}

# join N: makes node N (running) a member of node 1's cluster unless it is one.
join() {
	local i=$1 name seed
	name=$(node_name "$i") seed=$(node_name 1)
	if has_all "$(cluster_json "$i" | json_nodes disk_nodes)" 1; then
		return
	fi
	note "joining $name to $seed"
	rmq "$i" rabbitmqctl -q stop_app >/dev/null || die "rabbitmqctl -n $name stop_app failed"
	if ! rmq "$i" rabbitmqctl -q join_cluster "$seed" >/dev/null 2>&1; then
		# The seed may still list an earlier incarnation of this node (its folder was lost):
		# forget that one and join again.
		note "$seed refuses $name: forgetting its earlier membership and joining again"
		rmq 1 rabbitmqctl -q forget_cluster_node "$name" >/dev/null 2>&1 || true
		rmq "$i" rabbitmqctl -q join_cluster "$seed" >/dev/null ||
			die "$name cannot join $seed" "$(node_log_tail "$i")"
	fi
	rmq "$i" rabbitmqctl -q start_app >/dev/null ||
		die "$name joined $seed but does not start" "$(node_log_tail "$i")"
}

# wait_running ASKED NODE...: waits until node ASKED lists every NODE as running.
wait_running() {
	local asked=$1 deadline=$((SECONDS + WAIT_SECS)) running=""
	shift
	while :; do
		running=$(cluster_json "$asked" | json_nodes running_nodes)
		has_all "$running" "$@" && return
		((SECONDS < deadline)) ||
			die "the cluster does not run nodes $* after ${WAIT_SECS}s; $(node_name "$asked") sees:" \
				"${running:-nothing (it does not answer)}"
		sleep 1
	done
}

# up NODE...: starts these nodes unless they run, joins them and waits until they run in the
# cluster with every other node that runs.
up() {
	local i started=() alive=()
	prepare
	# Quick when they run: node $1 sees them, and every other node that runs, running.
	mapfile -t alive < <(alive_nodes)
	if all_alive "$@" && has_all "$(cluster_json "$1" | json_nodes running_nodes)" "${alive[@]}"; then
		note "running already"
		return
	fi
	for i in "$@"; do
		if ! node_alive "$i"; then
			start_node "$i"
			started+=("$i")
		fi
	done
	if ((${#started[@]})); then
		note "waiting for $(printf '%s ' "${started[@]/#/$NAME-}" | sed 's/ $//') to boot"
	fi
	for i in "$@"; do
		if [[ " ${started[*]} " == *" $i "* ]]; then
			wait_booted "$i" false
		else
			wait_booted "$i" true
		fi
	done
	for i in "$@"; do
		((i == 1)) || join "$i"
	done
	mapfile -t alive < <(alive_nodes)
	wait_running "$1" "${alive[@]}"
}

# The numbers of the nodes whose VM runs, a line each.
alive_nodes() {
	local i
	for i in "${NODES[@]}"; do
		if node_alive "$i"; then echo "$i"; fi
	done
}

# all_alive NODE...: whether every NODE's VM runs.
all_alive() {
	local i
	for i in "$@"; do node_alive "$i" || return 1; done
}

# stop_nodes NODE...: stops them gracefully (rabbitmqctl stop, in parallel), kills those that
# do not stop in time and waits until their VMs are gone.
stop_nodes() {
	local i pids=() deadline=$((SECONDS + WAIT_SECS)) left
	for i in "$@"; do
		node_alive "$i" || continue
		note "stopping $(node_name "$i")"
		if [[ -f $DIR/home/.erlang.cookie ]]; then
			rmq "$i" rabbitmqctl -q stop >/dev/null 2>&1 &
			pids+=("$!")
		else
			kill -TERM "$(node_pid "$i")" 2>/dev/null || true
		fi
	done
	((${#pids[@]} == 0)) || wait "${pids[@]}" || true
	while :; do
		left=()
		for i in "$@"; do node_alive "$i" && left+=("$i"); done
		((${#left[@]})) || return 0
		if ((SECONDS >= deadline)); then
			for i in "${left[@]}"; do
				note "$(node_name "$i") did not stop within ${WAIT_SECS}s: kill -9"
				kill -KILL "$(node_pid "$i")" 2>/dev/null || true
			done
			deadline=$((SECONDS + 10))
		fi
		sleep 0.2
	done
}

# kill_node N: kill -9 node N's VM and waits until it is gone.
kill_node() {
	local pid deadline=$((SECONDS + 10))
	if ! pid=$(node_pid "$1"); then
		note "$(node_name "$1") does not run"
		return
	fi
	note "kill -9 $pid ($(node_name "$1"))"
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || die "$(node_name "$1") (pid $pid) is still there after kill -9"
		sleep 0.1
	done
}

# Stops what is left of the cluster's nodes: the pids in the pid files too, when they are
# VMs of this cluster (their command line holds its HOME).
down() {
	stop_nodes "${NODES[@]}"
	local i file pid
	for i in "${NODES[@]}"; do
		file=$(node_dir "$i")/rabbit.pid
		[[ -f $file ]] || continue
		pid=$(tr -dc 0-9 <"$file")
		[[ -n $pid ]] || continue
		tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "-home $DIR/home" || continue
		note "kill -9 $pid (left over by $(node_name "$i"))"
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$DIR"
	note "removed $DIR"
}

status() {
	local i view="" asked="" state code=0 running remark
	for i in "${NODES[@]}"; do
		if node_alive "$i" && view=$(cluster_json "$i"); then
			asked=$i
			break
		fi
	done
	running=$(json_nodes running_nodes <<<"$view" | sort)
	for i in "${NODES[@]}"; do
		remark=""
		if has_all "$running" "$i"; then
			state=running
		elif node_alive "$i"; then
			state=started remark="  (booting, RabbitMQ stopped, or not in the cluster)"
			code=1
		else
			state=down
			code=1
		fi
		printf '%-*s  %-7s  %s%s\n' "$((${#NAME} + 12))" "$(node_name "$i")" "$state" "$(node_url "$i")" "$remark"
	done
	if [[ -n $asked ]]; then
		printf 'running members (as %s sees them): %s\n' "$(node_name "$asked")" \
			"$(tr '\n' ' ' <<<"$running" | sed 's/ *$//')"
	else
		printf 'running members: none\n'
	fi
	return "$code"
}

# node_arg N: checks a node number argument.
node_arg() {
	[[ ${1:-} =~ ^[1-3]$ ]] || bad_usage "a node number (1, 2 or 3) is needed, not '${1:-}'"
}

(($# >= 1)) || bad_usage "a command is needed"
command=$1
shift
case $command in
up | down | status | url) (($# == 0)) || bad_usage "$command takes no argument" ;;
kill | stop | start)
	(($# == 1)) || bad_usage "$command takes a node number"
	node_arg "$1"
	;;
ctl)
	(($# >= 2)) || bad_usage "ctl takes a node number and rabbitmqctl's arguments"
	node_arg "$1"
	;;
-h | --help)
	usage
	exit 0
	;;
*) bad_usage "unknown command: $command" ;;
esac

case $command in
up)
	t0=$SECONDS
	lock
	say "RabbitMQ cluster $NAME-{1..3}@localhost in $DIR"
	up "${NODES[@]}"
	note "all three nodes run in the cluster ($((SECONDS - t0))s)"
	printf 'REGSTAT__AMQP__URL=%s\n' "$(url_list)"
	;;
down)
	lock
	say "stopping the RabbitMQ cluster $NAME-{1..3}@localhost"
	down
	;;
status)
	status
	;;
url)
	url_list
	;;
kill)
	lock
	kill_node "$1"
	;;
stop)
	lock
	stop_nodes "$1"
	;;
start)
	lock
	say "starting $(node_name "$1")"
	up "$1"
	note "$(node_name "$1") runs in the cluster"
	;;
ctl)
	rmq "$1" rabbitmqctl "${@:2}"
	;;
esac
