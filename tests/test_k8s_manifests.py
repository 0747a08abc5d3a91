"""deploy/kubernetes/ checked offline: no cluster runs here, so every document of every manifest
is validated against the Kubernetes API's own schemas (the OpenAPI schemas that the PyPI
package kubernetes-validate ships, strict: an unknown or misspelt field fails), for every
Kubernetes minor version from MIN_KUBERNETES to the newest the package knows; and then what
the schemas cannot know: no secret is written in them, every DCSLOG_* variable is one dcslog
reads, the commands are ones dcslog's CLI accepts, the probes hit dcslog's probe routes, the
agent only reads the nodes' logs, images are pinned, pods run without privileges, and the
walkthrough in docs/deployment.md creates every Secret key the manifests need.

What this cannot show: that a cluster admits and runs them (no API server, no kubelet, no
container runtime here). Kustomize is not run either: the two features used (a resource list
with an image override, and the agent-tls overlay's JSON 6902 "add" patch) are applied here.
"""

from __future__ import annotations

import ast
import copy
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # the test extra's kubernetes-validate: the schemas of every Kubernetes version
import pytest
import yaml

from dcslog.api.operations import registered
from dcslog.cli import build_parser
from dcslog.config import Settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
DEPLOYMENT_MD = ROOT / "docs" / "deployment.md"
#: The oldest Kubernetes the manifests are for: the preStop `sleep` action is on by default from 1.30.
MIN_KUBERNETES = (1, 30)
#: Manifests applied on their own rather than through kustomization.yaml.
STANDALONE = {"db-upgrade-job.yaml"}
AGENT_TLS = K8S / "agent-tls"


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _versions() -> list[str]:
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    found = {_minor(m[1]) for d in schemas.iterdir() if (m := re.fullmatch(r"v([0-9.]+)-local-strict", d.name))}
    return [f"{major}.{minor}" for major, minor in sorted(found) if (major, minor) >= MIN_KUBERNETES]


VERSIONS = _versions()


# --------------------------------------------------------------------------- loading

def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _kustomization(directory: Path) -> dict[str, Any]:
    (doc,) = _load(directory / "kustomization.yaml")
    assert doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and doc["kind"] == "Kustomization"
    return doc


def _base_files() -> list[Path]:
    return [K8S / name for name in _kustomization(K8S)["resources"]]


def _json_patch_add(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 as kustomize applies it, for the one operation the overlay uses: add."""
    doc = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add", f"only 'add' is emulated here, not {op['op']!r}"
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]]
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), copy.deepcopy(op["value"]))
        else:
            target[last] = copy.deepcopy(op["value"])
    return doc


def _with_image_override(doc: dict[str, Any], kustomization: dict[str, Any]) -> dict[str, Any]:
    """kustomize's `images:` transformer, on the pod templates of ``doc``."""
    doc = copy.deepcopy(doc)
    for pod in _pod_specs(doc):
        for container in _containers(pod):
            name = container["image"].split("@")[0].rsplit(":", 1)[0]
            for image in kustomization.get("images", []):
                if image["name"] == name:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return doc


def _base() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/kubernetes` sends."""
    kustomization = _kustomization(K8S)
    return [_with_image_override(doc, kustomization) for path in _base_files() for doc in _load(path)]


def _agent_tls() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/kubernetes/agent-tls` sends: the base, its DaemonSet patched."""
    kustomization = _kustomization(AGENT_TLS)
    assert kustomization["resources"] == [".."]
    docs = _base()
    for patch in kustomization["patches"]:
        ops = yaml.safe_load((AGENT_TLS / patch["path"]).read_text())
        target = patch["target"]
        matches = [i for i, doc in enumerate(docs) if doc["kind"] == target["kind"]
                   and doc["metadata"]["name"] == target["name"]
                   and doc["metadata"].get("namespace") == target.get("namespace")]
        assert len(matches) == 1, f"the patch's target {target} matches {len(matches)} documents"
        docs[matches[0]] = _json_patch_add(docs[matches[0]], ops)
    return docs


def _standalone() -> list[dict[str, Any]]:
    return [doc for name in sorted(STANDALONE) for doc in _load(K8S / name)]


def _everything() -> list[dict[str, Any]]:
    """Every Kubernetes object that any way of applying deploy/kubernetes creates."""
    return _base() + _standalone() + [doc for doc in _agent_tls() if doc["kind"] == "DaemonSet"]


def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet"):
        return [doc["spec"]["template"]["spec"]]
    if doc["kind"] == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    if doc["kind"] == "Pod":
        return [doc["spec"]]
    return []


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod.get("initContainers", []) + pod["containers"]


def _workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        for pod in _pod_specs(doc):
            yield doc, pod


def _name(doc: dict[str, Any]) -> str:
    meta = doc["metadata"]
    return f"{doc['kind']}/{meta.get('name') or meta['generateName']}"


def _by_name(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"].get("name") == name]
    return doc


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


# --------------------------------------------------------------------------- the schemas

def test_the_manifests_are_all_listed():
    """Every YAML file under deploy/kubernetes is applied one way or another (a file left out
    of kustomization.yaml would be validated here and never deployed)."""
    files = {p.relative_to(K8S).as_posix() for p in K8S.rglob("*.yaml")}
    used = ({p.name for p in _base_files()} | STANDALONE | {"kustomization.yaml"}
            | {f"agent-tls/{name}" for name in ("kustomization.yaml", "agent-tls.patch.yaml")})
    assert files == used


@pytest.mark.parametrize("version", VERSIONS)
def test_every_document_validates_strictly(version):
    documents = _everything()
    assert len(documents) >= 10
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{_name(doc)} is not valid Kubernetes {version}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:  # never a silent pass for an unknown kind
            pytest.fail(f"{_name(doc)}: {exc.message}")


def test_the_validation_can_fail():
    """The schemas do catch what they must: a misspelt field, a wrong type, a missing required
    field, a field that a version does not have (the pin of MIN_KUBERNETES rests on it)."""
    api = _by_name(_base(), "Deployment", "dcslog-api")

    def invalid(doc: dict[str, Any], version: str = VERSIONS[-1]) -> bool:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError:
            return True
        return False

    assert not invalid(api)
    misspelt = copy.deepcopy(api)
    misspelt["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] = True
    assert invalid(misspelt)
    wrong_type = copy.deepcopy(api)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    assert invalid(wrong_type)
    no_selector = copy.deepcopy(api)
    del no_selector["spec"]["selector"]
    assert invalid(no_selector)
    assert invalid(api, "1.28"), "preStop sleep is not in 1.28: MIN_KUBERNETES says why it is 1.30"


# --------------------------------------------------------------------------- secrets

#: Variables whose values are secrets: anything named like a key, secret, token or password,
#: the database URL (it holds the password), and every setting that dcslog types SecretStr.
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL")


def _is_secret_variable(name: str) -> bool:
    if SECRET_NAME.search(name) or name == "DCSLOG_DATABASE_URL":
        return True
    field = Settings.model_fields.get(name.removeprefix("DCSLOG_").lower()) if name.startswith("DCSLOG_") else None
    return field is not None and "SecretStr" in str(field.annotation)


#: What a secret looks like when it is written out: a URL with a password, a PEM block, a
#: Fernet key (DCSLOG_SERVER_KEY's form), an AWS-style access key id, a bearer token.
LITERAL_SECRETS = [
    re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@"),
    re.compile(r"-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----"),
    re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"(?i)bearer\s+[a-z0-9._~+/-]{16,}"),
]


def _literal_secrets(docs: list[dict[str, Any]]) -> list[str]:
    """Every place a secret is written into ``docs`` instead of referenced."""
    found = []
    for doc in docs:
        if doc["kind"] == "Secret":
            found.append(f"{_name(doc)}: a Secret in the manifests (create it by hand: docs/deployment.md)")
        for text in _strings(doc):
            if any(pattern.search(text) for pattern in LITERAL_SECRETS):
                found.append(f"{_name(doc)}: {text[:40]!r}… looks like a secret")
        if doc["kind"] == "ConfigMap":
            found += [f"{_name(doc)}: {key} is a secret, in a ConfigMap"
                      for key in doc.get("data", {}) if _is_secret_variable(key)]
        for _, pod in _workloads([doc]):
            for container in _containers(pod):
                for env in container.get("env", []):
                    if _is_secret_variable(env["name"]) and "secretKeyRef" not in env.get("valueFrom", {}):
                        found.append(f"{_name(doc)}: {env['name']} is not taken from a Secret (secretKeyRef)")
    return found


def test_no_secret_is_written_in_the_manifests():
    assert _literal_secrets(_everything()) == []
    # … and what is written instead, in every file (comments aside), references Secrets:
    for path in K8S.rglob("*.yaml"):
        assert not LITERAL_SECRETS[0].search(path.read_text()), f"{path}: a URL with a password"


def test_the_secret_check_can_fail():
    deployment = _by_name(_base(), "Deployment", "dcslog-worker")
    assert _literal_secrets([deployment]) == []

    def with_env(env: dict[str, Any]) -> list[dict[str, Any]]:
        doc = copy.deepcopy(deployment)
        doc["spec"]["template"]["spec"]["containers"][0]["env"].append(env)
        return [doc]

    assert _literal_secrets(with_env({"name": "DCSLOG_DATABASE_URL", "value": "postgresql+psycopg://dcslog@db/x"}))
    assert _literal_secrets(with_env({"name": "DCSLOG_METRICS_TOKEN", "value": "not-a-reference"}))
    assert _literal_secrets(with_env({"name": "DCSLOG_LOG_LEVEL", "value": "postgresql://u:hunter2@db/x"}))
    assert _literal_secrets(with_env({"name": "DCSLOG_LOG_LEVEL", "value": "x" * 43 + "="}))
    configmap = copy.deepcopy(_by_name(_base(), "ConfigMap", "dcslog-config"))
    configmap["data"]["DCSLOG_S3_SECRET_ACCESS_KEY"] = "…"
    assert _literal_secrets([configmap])
    assert _literal_secrets([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {}}])


# --------------------------------------------------------------------------- dcslog's settings

def _known_variables() -> set[str]:
    """DCSLOG_* variables dcslog reads: its settings (Settings), and those its code reads by
    name (the agent's key, the Redis password of an import, the config file…)."""
    known = {f"DCSLOG_{name.upper()}" for name in Settings.model_fields}
    for path in (ROOT / "src" / "dcslog").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"DCSLOG_[A-Z0-9_]+", node.value):
                known.add(node.value)
    return known


def _variables(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """{workload: every environment variable name its containers get, ConfigMaps included}."""
    configmaps = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d.get("data", {})
                  for d in docs if d["kind"] == "ConfigMap"}
    variables: dict[str, set[str]] = {}
    for doc, pod in _workloads(docs):
        names = variables.setdefault(_name(doc), set())
        for container in _containers(pod):
            names |= {env["name"] for env in container.get("env", [])}
            for source in container.get("envFrom", []):
                ref = source["configMapRef"]["name"]
                key = (doc["metadata"].get("namespace"), ref)
                assert key in configmaps, f"{_name(doc)}: no ConfigMap {ref} in its namespace"
                names |= {source.get("prefix", "") + name for name in configmaps[key]}
    return variables


def test_every_dcslog_variable_is_one_dcslog_reads():
    known = _known_variables()
    assert {"DCSLOG_DATABASE_URL", "DCSLOG_AGENT_KEY"} <= known
    for workload, names in _variables(_everything()).items():
        unknown = {n for n in names if n.startswith("DCSLOG_")} - known
        assert not unknown, f"{workload}: {sorted(unknown)} are not dcslog settings (src/dcslog/config.py)"
    # and the check does catch a misspelt one:
    assert "DCSLOG_DATABASE_URI" not in known


def test_the_processes_get_what_they_need():
    variables = _variables(_everything())
    shared = {"DCSLOG_DATABASE_URL", "DCSLOG_SERVER_KEY", "DCSLOG_OBJECT_STORE", "DCSLOG_DATA_DIR"}
    assert shared <= variables["Deployment/dcslog-api"]
    assert shared <= variables["Deployment/dcslog-worker"]
    assert {"DCSLOG_DATABASE_URL", "DCSLOG_DATA_DIR"} <= variables["Job/dcslog-db-upgrade-"]
    assert "DCSLOG_AGENT_KEY" in variables["DaemonSet/dcslog-agent"]
    # The agent opens no database and holds nothing of the service's.
    assert not variables["DaemonSet/dcslog-agent"] & (shared | {"DCSLOG_S3_SECRET_ACCESS_KEY"})
    # A PostgreSQL URL and an s3:// store: the several-machines setup, never SQLite or a local directory.
    configmap = _by_name(_base(), "ConfigMap", "dcslog-config")["data"]
    assert configmap["DCSLOG_OBJECT_STORE"].startswith("s3://")
    assert "DCSLOG_DATABASE_URL" not in configmap


# --------------------------------------------------------------------------- commands and probes

def _args(container: dict[str, Any]) -> list[str]:
    assert "command" not in container, "the image's entrypoint is `dcslog`: give args only"
    return container["args"]


def test_every_command_is_one_dcslog_accepts():
    parser = build_parser()
    for doc, pod in _workloads(_everything()):
        for container in _containers(pod):
            try:
                parser.parse_args(_args(container))
            except SystemExit:
                pytest.fail(f"{_name(doc)}: `dcslog {' '.join(container['args'])}` is refused by dcslog's CLI")


def _port(container: dict[str, Any], name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name_or_number]
    return port


def test_the_api_probes_are_dcslog_probe_routes():
    public = {op.path for op in registered() if op.role is None and op.method == "GET"}
    assert {"/livez", "/health"} <= public
    docs = _base()
    api = _by_name(docs, "Deployment", "dcslog-api")["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(_args(api))
    assert args.command == "serve" and args.no_worker and args.host == "0.0.0.0"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = api[probe]["httpGet"]
        assert get["path"] in public, f"{probe} asks {get['path']}, which is no public GET route of dcslog"
        assert _port(api, get["port"]) == args.port
    assert api["readinessProbe"]["httpGet"]["path"] == "/health"  # the database answers
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"  # never restarted for a database outage
    service = _by_name(docs, "Service", "dcslog")
    assert _port(api, service["spec"]["ports"][0]["targetPort"]) == args.port
    selector = _by_name(docs, "Deployment", "dcslog-api")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= selector.items()


def test_grace_periods_cover_dcslog_s_own_stops():
    """SIGTERM: the API finishes requests for up to 60 s; a worker gives its jobs 30 s, then 10 s
    to hand them back (docs/deployment.md). Killed sooner, work is redone, not lost, but still."""
    docs = _base()
    api = _by_name(docs, "Deployment", "dcslog-api")["spec"]["template"]["spec"]
    pause = api["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert api["terminationGracePeriodSeconds"] >= 60 + pause
    worker = _by_name(docs, "Deployment", "dcslog-worker")["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] >= 30 + 10


# --------------------------------------------------------------------------- the agent

def _agents() -> list[dict[str, Any]]:
    return [d for d in _everything() if d["kind"] == "DaemonSet"]


def test_the_agent_reads_the_nodes_logs_read_only():
    for daemonset in _agents():
        pod = daemonset["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        args = build_parser().parse_args(_args(container))
        assert args.command == "agent"
        host_mounts = {}
        for mount in container["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:  # its /tmp: rotated .gz files are decompressed there
                continue
            assert mount.get("readOnly") is True, f"{_name(daemonset)}: {mount['mountPath']} is not read-only"
            if "hostPath" in volume:
                # At the node's own path: the links under /var/log/pods resolve, import paths are the node's.
                assert mount["mountPath"] == volume["hostPath"]["path"]
                host_mounts[mount["mountPath"]] = volume
        assert set(host_mounts) == {"/var/log/pods", "/var/lib/docker/containers"}
        # It serves exactly what it mounts, and nothing else of the node.
        assert sorted(args.allow_dir) == sorted(host_mounts)
        # It listens on the pod's address, on the port the workers are told (the node's, via hostPort).
        assert args.host == "0.0.0.0"
        (port,) = container["ports"]
        assert port["containerPort"] == port["hostPort"] == args.port
        key = {e["name"]: e for e in container["env"]}["DCSLOG_AGENT_KEY"]["valueFrom"]["secretKeyRef"]
        assert not key.get("optional"), "an agent without its key refuses to start: say so at once"


def test_only_the_agent_touches_the_nodes():
    for doc, pod in _workloads(_everything()):
        for shared in ("hostNetwork", "hostPID", "hostIPC"):  # none shares the node's namespaces
            assert not pod.get(shared), f"{_name(doc)}: {shared}"
        host_paths = [v["name"] for v in pod.get("volumes", []) if "hostPath" in v]
        uses_host = host_paths or any(p.get("hostPort") for c in _containers(pod) for p in c.get("ports", []))
        if doc["kind"] != "DaemonSet":
            assert not uses_host, f"{_name(doc)} uses the node's paths or ports"
        # Wherever a hostPath is mounted, it is mounted read-only.
        for container in _containers(pod):
            for mount in container.get("volumeMounts", []):
                if mount["name"] in host_paths:
                    assert mount.get("readOnly") is True, f"{_name(doc)}: {mount['mountPath']} is writable"


def test_the_agent_tls_overlay_serves_https():
    (daemonset,) = [d for d in _agent_tls() if d["kind"] == "DaemonSet"]
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(_args(container))
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in (args.tls_cert, args.tls_key):
        assert path and str(Path(path).parent) in mounts and mounts[str(Path(path).parent)]["readOnly"] is True
    volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts[str(Path(args.tls_cert).parent)]["name"]]["secret"]["secretName"] == "dcslog-agent-tls"
    # The base is untouched: plain HTTP there.
    base = _by_name(_base(), "DaemonSet", "dcslog-agent")["spec"]["template"]["spec"]["containers"][0]
    assert build_parser().parse_args(_args(base)).tls_cert is None


# --------------------------------------------------------------------------- images, privileges, resources

def _pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_images_are_pinned_to_dcslog_s_version():
    # As written (`kubectl apply -f` of a file) and as kustomize sends them: the same, pinned image.
    raw = [doc for path in sorted(K8S.rglob("*.yaml")) for doc in _load(path) if isinstance(doc, dict)]
    images = {c["image"] for _, pod in _workloads(raw + _everything()) for c in _containers(pod)}
    assert len(images) == 1, f"one image for every process (db-upgrade-job.yaml too): {sorted(images)}"
    (image,) = images
    name, _, tag = image.split("@")[0].rpartition(":")
    assert name and "/" not in tag, f"{image}: no tag"
    assert tag != "latest"
    assert tag == _pyproject_version(), f"{image}: not pyproject.toml's version {_pyproject_version()}"
    (override,) = _kustomization(K8S)["images"]
    assert f"{override['newName']}:{override['newTag']}" == image
    for _, pod in _workloads(_everything()):
        for container in _containers(pod):
            assert container.get("imagePullPolicy") in ("IfNotPresent", None)


def _effective(pod: dict[str, Any], container: dict[str, Any], field: str) -> Any:
    return container.get("securityContext", {}).get(field, pod.get("securityContext", {}).get(field))


def test_pods_run_without_privileges():
    """Non-root, read-only root filesystem, no capability, no escalation, the runtime's seccomp
    profile, no Kubernetes API token. The agent alone runs as uid 0 (it reads root-owned 0640
    logs), and still holds no capability."""
    for doc, pod in _workloads(_everything()):
        assert pod.get("automountServiceAccountToken") is False, _name(doc)
        for container in _containers(pod):
            where = f"{_name(doc)} {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert not security.get("privileged"), where
            assert _effective(pod, container, "seccompProfile") == {"type": "RuntimeDefault"}, where
            if doc["kind"] == "DaemonSet":
                assert _effective(pod, container, "runAsUser") == 0, where
            else:
                assert _effective(pod, container, "runAsNonRoot") is True, where
                assert _effective(pod, container, "runAsUser") not in (None, 0), where
            # A read-only root: everything dcslog writes goes to an emptyDir (its data dir, /tmp).
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, where


def test_the_restricted_namespace_holds_only_restricted_pods():
    """Pod Security "restricted" is enforced on namespace dcslog: no pod there may need more."""
    namespaces = {d["metadata"]["name"]: d for d in _base() if d["kind"] == "Namespace"}
    labels = namespaces["dcslog"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}
    for doc, pod in _workloads(_everything()):
        namespace = doc["metadata"]["namespace"]
        assert namespace in namespaces, f"{_name(doc)}: namespace {namespace} is not created"
        if namespace != "dcslog":
            continue
        for volume in pod.get("volumes", []):
            assert set(volume) - {"name"} <= allowed_volumes, f"{_name(doc)}: volume {volume['name']}"
        for container in _containers(pod):
            assert not any(p.get("hostPort") for p in container.get("ports", []))


def _quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi)?", str(value))
    assert match, value
    return float(match[1]) * units.get(match[2] or "", 1)


#: Resident memory measured on this kind of machine (docs/deployment.md, "Kubernetes", gives the
#: figures and how they were taken): a container's memory request is at least this.
MEASURED_RSS_MIB = {"api": 125, "worker": 140, "agent": 56}


def test_every_container_has_requests_and_limits():
    for doc, pod in _workloads(_everything()):
        for container in _containers(pod):
            where = f"{_name(doc)} {container['name']}"
            resources = container["resources"]
            for kind in ("cpu", "memory"):
                request, limit = resources["requests"][kind], resources["limits"][kind]
                assert _quantity(request) <= _quantity(limit), f"{where}: {kind} request above its limit"
            if container["name"] in MEASURED_RSS_MIB:
                request = _quantity(resources["requests"]["memory"]) / 2**20
                limit = _quantity(resources["limits"]["memory"]) / 2**20
                measured = MEASURED_RSS_MIB[container["name"]]
                assert request >= measured, f"{where}: requests less memory than it was measured to hold"
                assert limit >= 2 * measured, f"{where}: no room above the measured resident size"


# --------------------------------------------------------------------------- the walkthrough

def _created_secrets(text: str) -> set[tuple[str, str, str]]:
    """(namespace, secret, key) of every `kubectl -n NS create secret …` in a document."""
    created = set()
    for command in re.findall(r"kubectl (?:[^\n]*?\\\n)*[^\n]*", text):
        command = command.replace("\\\n", " ")
        match = re.search(r"-n (\S+) create secret (generic|tls) (\S+)", command)
        if not match:
            continue
        namespace, kind, name = match.groups()
        keys = re.findall(r"--from-(?:literal|file)=([A-Za-z0-9._-]+)=", command)
        if kind == "tls":
            keys = ["tls.crt", "tls.key"]
        created |= {(namespace, name, key) for key in keys}
    return created


def _referenced_secrets(docs: list[dict[str, Any]]) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """(required, optional) (namespace, secret, key) references of ``docs``."""
    required, optional = set(), set()
    for doc, pod in _workloads(docs):
        namespace = doc["metadata"]["namespace"]
        for container in _containers(pod):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    (optional if ref.get("optional") else required).add((namespace, ref["name"], ref["key"]))
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                secret = volume["secret"]
                target = optional if secret.get("optional") else required
                target |= {(namespace, secret["secretName"], key) for key in ("tls.crt", "tls.key")}
    return required, optional


def test_the_walkthrough_creates_every_secret_the_manifests_need():
    text = DEPLOYMENT_MD.read_text()
    assert "## Kubernetes" in text
    section = text[text.index("## Kubernetes"):]
    created = _created_secrets(section)
    required, optional = _referenced_secrets(_everything())
    assert required - created == set(), "docs/deployment.md does not create these Secret keys"
    assert created - required - optional == set(), "docs/deployment.md creates Secret keys no manifest uses"
    # Every manifest file the walkthrough applies is there.
    for path in re.findall(r"deploy/kubernetes/[A-Za-z0-9_./-]+", section):
        assert (ROOT / path.rstrip(".")).exists(), f"docs/deployment.md names {path}, which does not exist"


def test_the_walkthrough_check_can_fail():
    text = ("kubectl -n dcslog create secret generic dcslog \\\n"
            "    --from-literal=database-url='postgresql+psycopg://…' \\\n"
            "    --from-file=server-key=server.key\n"
            "kubectl -n dcslog-agent create secret tls dcslog-agent-tls --cert=a --key=b\n")
    assert _created_secrets(text) == {("dcslog", "dcslog", "database-url"), ("dcslog", "dcslog", "server-key"),
                                      ("dcslog-agent", "dcslog-agent-tls", "tls.crt"),
                                      ("dcslog-agent", "dcslog-agent-tls", "tls.key")}
    required, _ = _referenced_secrets(_everything())
    assert required - _created_secrets(text)  # the agent key, for one, is missing from this text


def test_the_test_extra_installs_the_validator():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert any(re.match(r"kubernetes-validate\b", requirement) for requirement in extras)
