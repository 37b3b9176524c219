"""Cross-checks of the deployment files that no schema expresses; run by deploy/validate.sh
(with its venv's Python, which has PyYAML).

    validate.py kubernetes MANIFEST...   KEDA references and queues, secrets, probes, resources,
                                         selectors, the RabbitMQ StatefulSet
    validate.py promql DASHBOARD...      prints the dashboards' PromQL as rules for promtool
    validate.py grafana COMPOSE          dashboards vs data sources vs compose's mounts
    validate.py registry COMPOSE         compose's registry endpoint vs deploy/registry/config.yml

COMPOSE is `docker compose config` output (paths absolute, variables substituted).
"""

import json
import pathlib
import re
import sys
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECRET = "regstat"
SECRET_KEYS = {"database-url", "amqp-url", "keda-amqp-url", "receiver-tokens", "console-basic"}
# What regstat's own pods may read (keda-amqp-url is KEDA's single URL; regstat takes the list).
POD_SECRET_KEYS = SECRET_KEYS - {"keda-amqp-url"}
BROKER_SECRET = "rabbitmq"
BROKER_SECRET_KEYS = {"username", "password", "erlang-cookie"}
COMMANDS = {"regstat-receiver", "regstat-worker", "regstat-console", "regstat"}

errors = []


def fail(message):
    errors.append(message)


def done(what):
    if errors:
        for message in errors:
            print(f"deploy/validate.py: {message}", file=sys.stderr)
        sys.exit(1)
    print(f"    {what}")


def load_yaml_documents(paths):
    documents = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            documents += [d for d in yaml.safe_load_all(f) if d]
    return documents


def queue_names():
    definitions = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    return {q["name"] for q in definitions["queues"]}


def work_queues(prefix, shards):
    """The work queues of `shards` (shared/src/topology.rs): `<prefix>.ingest` and
    `<prefix>.manifests` unsharded, `<prefix>.ingest.<n>` and `<prefix>.manifests.<n>` else."""
    if shards <= 1:
        return {f"{prefix}.ingest", f"{prefix}.manifests"}
    return {f"{prefix}.{path}.{n}" for path in ("ingest", "manifests") for n in range(shards)}


def kubernetes_work_queues():
    """The work queues the settings of deploy/kubernetes/regstat.toml declare (those of
    amqp.previous_shards too, which the workers drain while the shard count changes)."""
    amqp = tomllib.loads((ROOT / "deploy/kubernetes/regstat.toml").read_text()).get("amqp", {})
    prefix, shards = amqp.get("prefix", "regstat"), amqp.get("shards", 1)
    queues = work_queues(prefix, shards)
    if amqp.get("previous_shards", 0) not in (0, shards):
        queues |= work_queues(prefix, amqp["previous_shards"])
    # definitions.json holds the default (unsharded) topology: the names agree with it.
    if prefix == "regstat" and not work_queues(prefix, 1) <= queue_names():
        fail(f"deploy/rabbitmq/definitions.json lacks the work queues {sorted(work_queues(prefix, 1))}")
    return prefix, shards, queues


def quantity_bytes(quantity):
    """A Kubernetes memory quantity (2Gi, 512Mi, 2G, 1000) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    match = re.fullmatch(r"([0-9]+)([KMGT]i|[kMGT])?", str(quantity))
    if not match:
        return None
    return int(match.group(1)) * units.get(match.group(2) or "", 1)


def rabbitmq_conf(text):
    """rabbitmq.conf's `key = value` lines."""
    settings = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            settings[key] = value
    return settings


# --- kubernetes ---------------------------------------------------------------------------


def check_pod(owner, spec, probes):
    containers = spec.get("containers", [])
    if not containers:
        fail(f"{owner}: no containers")
    mounts_ok = {v["name"] for v in spec.get("volumes", []) if "configMap" in v}
    for c in containers:
        where = f"{owner} container {c.get('name')}"
        if not str(c.get("image", "")).startswith("regstat"):
            fail(f"{where}: image {c.get('image')!r} is not the regstat image")
        command = c.get("command") or []
        if not command or command[0] not in COMMANDS:
            fail(f"{where}: command {command!r} does not run a regstat binary")
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and (ref.get("name") != SECRET or ref.get("key") not in POD_SECRET_KEYS):
                fail(f"{where}: {env['name']} reads secret {ref}, expected {SECRET} with one of {sorted(POD_SECRET_KEYS)}")
            if env["name"] == "REGSTAT_CONFIG":
                mounted = [m for m in c.get("volumeMounts", []) if env["value"].startswith(m["mountPath"] + "/")]
                if not mounted or mounted[0]["name"] not in mounts_ok:
                    fail(f"{where}: REGSTAT_CONFIG {env['value']} is not in a mounted ConfigMap")
        resources = c.get("resources", {})
        for kind, names in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
            for name in names:
                if name not in resources.get(kind, {}):
                    fail(f"{where}: no resources.{kind}.{name}")
        security = c.get("securityContext", {})
        if security.get("allowPrivilegeEscalation") is not False or not security.get("readOnlyRootFilesystem"):
            fail(f"{where}: securityContext must forbid privilege escalation and writes to the root filesystem")
        if probes:
            ports = {p.get("name") for p in c.get("ports", [])}
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                get = c.get(probe, {}).get("httpGet", {})
                if get.get("path") != path or get.get("port") not in ports:
                    fail(f"{where}: {probe} must GET {path} on a named container port, has {get}")
    if not spec.get("securityContext", {}).get("runAsNonRoot"):
        fail(f"{owner}: pod securityContext.runAsNonRoot is not set")


def kubernetes(paths):
    docs = load_yaml_documents(paths)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    deployments = by_kind.get("Deployment", {})
    for name in ("regstat-receiver", "regstat-worker", "regstat-console"):
        if name not in deployments:
            fail(f"no Deployment {name}")
    for name, d in deployments.items():
        check_pod(f"Deployment {name}", d["spec"]["template"]["spec"], probes=True)
        if "replicas" in d["spec"]:
            fail(f"Deployment {name}: `replicas` would fight its autoscaler")
        selector = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in selector.items()):
            fail(f"Deployment {name}: selector {selector} does not match its pod labels")
    for name, job in by_kind.get("Job", {}).items():
        check_pod(f"Job {name}", job["spec"]["template"]["spec"], probes=False)
    if "regstat-migrate" not in by_kind.get("Job", {}):
        fail("no Job regstat-migrate")

    statefulsets = by_kind.get("StatefulSet", {})
    workloads = {f"Deployment {n}": d for n, d in deployments.items()}
    workloads |= {f"StatefulSet {n}": d for n, d in statefulsets.items()}

    def selects(obj, workload):
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        labels = workload["spec"]["template"]["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in selector.items())

    for kind in ("Service", "PodDisruptionBudget"):
        for name, obj in by_kind.get(kind, {}).items():
            if not any(selects(obj, w) for w in workloads.values()):
                fail(f"{kind} {name}: selector {obj['spec']['selector']} matches no Deployment's or StatefulSet's pods")
    for name, sts in statefulsets.items():
        check_broker(name, sts, by_kind, selects)
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = hpa["spec"]["scaleTargetRef"]
        if target["kind"] != "Deployment" or target["name"] not in deployments:
            fail(f"HorizontalPodAutoscaler {name}: scales {target}, not a Deployment of the base")

    auths = by_kind.get("TriggerAuthentication", {})
    for name, auth in auths.items():
        for ref in auth["spec"].get("secretTargetRef", []):
            if ref["name"] != SECRET or ref["key"] not in SECRET_KEYS:
                fail(f"TriggerAuthentication {name}: reads {ref}")
            elif ref.get("parameter") == "host" and ref["key"] != "keda-amqp-url":
                fail(f"TriggerAuthentication {name}: KEDA takes one URL (keda-amqp-url), amqp-url lists the nodes: {ref}")
    queues = queue_names()
    prefix, shards, expected = kubernetes_work_queues()
    # Sharded, the unsharded work queues of definitions.json no longer exist: the shards' do.
    queues = (queues - work_queues(prefix, 1)) | expected
    scaled = by_kind.get("ScaledObject", {})
    if not scaled:
        fail("no KEDA ScaledObject")
    for name, obj in scaled.items():
        target = obj["spec"]["scaleTargetRef"]["name"]
        if target not in deployments:
            fail(f"ScaledObject {name}: scales {target}, not a Deployment of the base")
        elif target == "regstat-receiver":
            fail(f"ScaledObject {name}: the receiver is scaled by its HPA")
        low, high = obj["spec"].get("minReplicaCount", 0), obj["spec"].get("maxReplicaCount", 100)
        if not 1 <= low <= high:
            fail(f"ScaledObject {name}: replicas {low}..{high}")
        triggered = []
        for trigger in obj["spec"]["triggers"]:
            meta = trigger.get("metadata", {})
            if trigger["type"] != "rabbitmq":
                fail(f"ScaledObject {name}: unexpected trigger type {trigger['type']}")
                continue
            triggered.append(meta.get("queueName"))
            if meta.get("queueName") not in queues:
                fail(f"ScaledObject {name}: queue {meta.get('queueName')!r} is not one of the topology "
                     f"(deploy/rabbitmq/definitions.json with amqp.shards = {shards} of deploy/kubernetes/regstat.toml)")
            if meta.get("mode") not in ("QueueLength", "MessageRate") or not str(meta.get("value", "")).isdigit():
                fail(f"ScaledObject {name}: trigger needs mode QueueLength|MessageRate and a numeric value: {meta}")
            if trigger.get("authenticationRef", {}).get("name") not in auths:
                fail(f"ScaledObject {name}: authenticationRef {trigger.get('authenticationRef')} is not in the base")
        if target == "regstat-worker":
            # Every shard's queues scale the workers, each once.
            missing = sorted(expected - set(triggered))
            repeated = sorted({q for q in triggered if triggered.count(q) > 1})
            if missing or repeated:
                fail(f"ScaledObject {name}: amqp.shards = {shards} (deploy/kubernetes/regstat.toml): "
                     f"no trigger for {missing}, several for {repeated}")
    done(f"kubernetes cross-checks: {sum(len(v) for v in by_kind.values())} objects consistent, "
         f"KEDA on the {len(expected)} work queues of {shards} shard(s)")


def check_broker(name, sts, by_kind, selects):
    """The RabbitMQ StatefulSet: its headless Service, peer discovery, Secret, configuration,
    volumes, probes, resources and disruption budget agree with each other."""
    owner = f"StatefulSet {name}"
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    services = by_kind.get("Service", {})
    headless = services.get(spec.get("serviceName", ""))
    if not headless or headless["spec"].get("clusterIP") != "None" or not selects(headless, sts):
        fail(f"{owner}: serviceName {spec.get('serviceName')!r} is not a headless Service selecting its pods")
    elif not headless["spec"].get("publishNotReadyAddresses"):
        fail(f"{owner}: its headless Service must publish not-ready pods (a booting node must reach its peers)")
    if spec.get("podManagementPolicy") != "Parallel":
        fail(f"{owner}: podManagementPolicy must be Parallel (nodes restarting together wait for each other)")
    if not any(selects(pdb, sts) for pdb in by_kind.get("PodDisruptionBudget", {}).values()):
        fail(f"{owner}: no PodDisruptionBudget")
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    config_maps = by_kind.get("ConfigMap", {})
    (container,) = pod["containers"]
    where = f"{owner} container {container['name']}"
    env = {e["name"]: e for e in container.get("env", [])}
    for e in env.values():
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and (ref.get("name") != BROKER_SECRET or ref.get("key") not in BROKER_SECRET_KEYS):
            fail(f"{where}: {e['name']} reads secret {ref}, expected {BROKER_SECRET} with one of {sorted(BROKER_SECRET_KEYS)}")
    for variable in ("RABBITMQ_ERLANG_COOKIE", "RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"):
        if "secretKeyRef" not in env.get(variable, {}).get("valueFrom", {}):
            fail(f"{where}: {variable} must come from the Secret {BROKER_SECRET}")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    if mounts.get("/var/lib/rabbitmq") not in claims:
        fail(f"{where}: /var/lib/rabbitmq is not a volumeClaimTemplate ({sorted(claims)})")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    config_name = volumes.get(mounts.get("/etc/rabbitmq"), {}).get("configMap", {}).get("name")
    config = config_maps.get(config_name)
    if config_maps and not config:
        fail(f"{where}: /etc/rabbitmq is not a ConfigMap of the base ({config_name})")
    if config:
        conf = rabbitmq_conf(config["data"].get("rabbitmq.conf", ""))
        plugins = config["data"].get("enabled_plugins", "")
        if conf.get("cluster_formation.peer_discovery_backend") == "rabbit_peer_discovery_k8s":
            if "rabbitmq_peer_discovery_k8s" not in plugins:
                fail(f"ConfigMap {config_name}: enabled_plugins lacks rabbitmq_peer_discovery_k8s")
            if env.get("K8S_SERVICE_NAME", {}).get("value") != spec.get("serviceName"):
                fail(f"{where}: K8S_SERVICE_NAME is not the headless Service {spec.get('serviceName')}")
            for variable in ("RABBITMQ_NODENAME", "K8S_HOSTNAME_SUFFIX"):
                if "$(K8S_SERVICE_NAME)" not in env.get(variable, {}).get("value", ""):
                    fail(f"{where}: {variable} must name the pod by its headless Service's DNS name")
            account = pod.get("serviceAccountName")
            bound = {b["roleRef"]["name"] for b in by_kind.get("RoleBinding", {}).values()
                     if any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in b.get("subjects", []))}
            if account not in by_kind.get("ServiceAccount", {}) or not pod.get("automountServiceAccountToken", True) or not any(
                    "endpoints" in r.get("resources", []) and "get" in r.get("verbs", [])
                    for role in bound for r in by_kind.get("Role", {}).get(role, {}).get("rules", [])):
                fail(f"{owner}: peer discovery needs its ServiceAccount ({account}) mounted and bound to a Role that may get endpoints")
        limit = quantity_bytes(container.get("resources", {}).get("limits", {}).get("memory"))
        override = conf.get("total_memory_available_override_value")
        if override and (not override.isdigit() or int(override) != limit):
            fail(f"ConfigMap {config_name}: total_memory_available_override_value {override} is not the memory limit ({limit} bytes)")
    for probe in ("readinessProbe", "livenessProbe"):
        command = container.get(probe, {}).get("exec", {}).get("command", [])
        if command[:1] != ["rabbitmq-diagnostics"]:
            fail(f"{where}: {probe} must run rabbitmq-diagnostics, has {command}")
    resources = container.get("resources", {})
    for kind, names in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
        for resource in names:
            if resource not in resources.get(kind, {}):
                fail(f"{where}: no resources.{kind}.{resource}")
    security = container.get("securityContext", {})
    if security.get("allowPrivilegeEscalation") is not False or "ALL" not in security.get("capabilities", {}).get("drop", []):
        fail(f"{where}: securityContext must forbid privilege escalation and drop every capability")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        fail(f"{owner}: pod securityContext.runAsNonRoot is not set")


# --- dashboards ---------------------------------------------------------------------------


def panels(dashboard):
    pending = list(dashboard.get("panels", []))
    while pending:
        panel = pending.pop(0)
        pending += panel.get("panels", [])
        yield panel


def promql(paths):
    rules = []
    for path in paths:
        for panel in panels(json.loads(pathlib.Path(path).read_text())):
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if expr:
                    for macro in ("$__rate_interval", "$__interval", "$__range"):
                        expr = expr.replace(macro, "5m")
                    rules.append({"record": f"dashboard_query_{len(rules) + 1}", "expr": expr})
    if not rules:
        sys.exit("deploy/validate.py: no PromQL found in the dashboards")
    yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sys.stdout)


def mounts(service):
    return {v["source"]: v["target"] for v in service.get("volumes", []) if v.get("type") == "bind"}


def grafana(compose_path):
    compose = yaml.safe_load(pathlib.Path(compose_path).read_text())
    service = compose["services"]["grafana"]
    bound = mounts(service)
    provisioning = bound.get(str(ROOT / "deploy/grafana/provisioning"))
    dashboards_dir = bound.get(str(ROOT / "deploy/grafana/dashboards"))
    if provisioning != "/etc/grafana/provisioning" or not dashboards_dir:
        fail(f"compose grafana must mount deploy/grafana/provisioning at /etc/grafana/provisioning and the dashboards: {bound}")
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/regstat.yaml").read_text())
    paths = [p["options"]["path"] for p in providers["providers"]]
    if paths != [dashboards_dir]:
        fail(f"dashboard provider reads {paths}, compose mounts the dashboards at {dashboards_dir}")
    home = service.get("environment", {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
    if home and not (ROOT / "deploy/grafana/dashboards" / pathlib.Path(home).name).is_file():
        fail(f"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} is not a dashboard")
    sources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/regstat.yaml").read_text())
    provisioned = {d["uid"]: d["type"] for d in sources["datasources"]}
    for d in sources["datasources"]:
        host = d["url"].split("//")[-1].split(":")[0]
        if host not in compose["services"]:
            fail(f"data source {d['name']} points at {d['url']}: no compose service {host}")
    for secret in [v for d in sources["datasources"] for v in d.get("secureJsonData", {}).values()]:
        if not secret.startswith("$"):
            fail("a data source password is written in the provisioning file; read it from the environment")
        elif secret.strip("${}") not in service.get("environment", {}):
            fail(f"data source password {secret} is not in compose grafana's environment")

    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    for job in prometheus["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                ports = {str(p.get("target")) for p in compose["services"].get(host, {}).get("ports", [])}
                ports |= {str(p) for p in compose["services"].get(host, {}).get("expose", [])}
                if str(sd["port"]) not in ports:
                    fail(f"prometheus job {job['job_name']} scrapes {host}:{sd['port']}: no such compose service port")

    uids = set()
    files = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
    if not files:
        fail("no dashboards")
    for path in files:
        dashboard = json.loads(path.read_text())
        name = path.name
        if dashboard.get("uid") in uids or not dashboard.get("uid") or not dashboard.get("title"):
            fail(f"{name}: missing or duplicate uid/title")
        uids.add(dashboard.get("uid"))
        variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
        ids = set()
        for panel in panels(dashboard):
            if panel["id"] in ids:
                fail(f"{name}: duplicate panel id {panel['id']}")
            ids.add(panel["id"])
            if panel["type"] == "row":
                continue
            for source in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]:
                uid = (source or {}).get("uid", "")
                variable = variables.get(uid.strip("${}"))
                if not uid.startswith("${") or not variable or variable["type"] != "datasource":
                    fail(f"{name}: panel {panel['title']!r} uses data source {uid!r}, not a data source variable")
                elif variable["query"] != source.get("type"):
                    fail(f"{name}: panel {panel['title']!r}: data source type {source.get('type')} vs variable {variable['query']}")
            if not panel.get("targets"):
                fail(f"{name}: panel {panel['title']!r} has no query")
        for variable in variables.values():
            if variable["type"] == "datasource":
                default = variable.get("current", {}).get("value")
                if provisioned.get(default) != variable["query"]:
                    fail(f"{name}: variable {variable['name']} defaults to {default!r}, not a provisioned {variable['query']} source")
    done(f"grafana: {len(files)} dashboards consistent with provisioning and compose")


# --- registry -----------------------------------------------------------------------------


def registry(compose_path):
    compose = yaml.safe_load(pathlib.Path(compose_path).read_text())
    service = compose["services"]["registry"]
    config = yaml.safe_load((ROOT / "deploy/registry/config.yml").read_text())
    target = mounts(service).get(str(ROOT / "deploy/registry/config.yml"))
    if not target or service.get("command") != [target]:
        fail(f"compose registry must mount deploy/registry/config.yml and serve it: {service.get('command')} {target}")
    (file_endpoint,) = config["notifications"]["endpoints"]
    endpoints = yaml.safe_load(service["environment"]["REGISTRY_NOTIFICATIONS_ENDPOINTS"])
    if not isinstance(endpoints, list) or len(endpoints) != 1:
        fail("compose REGISTRY_NOTIFICATIONS_ENDPOINTS must be a YAML list of one endpoint")
        done("")
    (endpoint,) = endpoints
    if set(endpoint) != set(file_endpoint):
        fail(f"compose endpoint keys {sorted(endpoint)} differ from deploy/registry/config.yml's {sorted(file_endpoint)}")
    for key in ("name", "timeout", "threshold", "backoff"):
        if endpoint.get(key) != file_endpoint.get(key):
            fail(f"compose endpoint {key} {endpoint.get(key)!r} differs from deploy/registry/config.yml's {file_endpoint.get(key)!r}")
    receiver = compose["services"]["receiver"]
    ports = {str(p["target"]) for p in receiver.get("ports", [])}
    url = endpoint.get("url", "")
    if not any(url == f"http://receiver:{port}/events" for port in ports):
        fail(f"compose endpoint url {url} is not the receiver service's /events ({ports})")
    token = receiver["environment"]["REGSTAT__RECEIVER__TOKENS"].split(",")[0]
    if endpoint.get("headers", {}).get("Authorization") != [f"Bearer {token}"]:
        fail("compose endpoint's Authorization is not `Bearer <the receiver's token>`")
    if not config["notifications"].get("events", {}).get("includereferences"):
        fail("deploy/registry/config.yml: notifications.events.includereferences should be true")
    done("registry: compose's endpoint matches deploy/registry/config.yml and the receiver")


if __name__ == "__main__":
    command, *arguments = sys.argv[1:] or ["help"]
    commands = {"kubernetes": kubernetes, "promql": promql, "grafana": grafana, "registry": registry}
    if command not in commands or not arguments:
        sys.exit(__doc__)
    if command in ("kubernetes", "promql"):
        commands[command](arguments)
    else:
        commands[command](arguments[0])
