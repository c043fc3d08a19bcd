"""deploy/k8s/ and deploy/compose.yaml: their configurations load, and the manifests agree
with the launcher's flags and with the [[hosts]] they name."""

from __future__ import annotations

import glob
import os
import re
import tomllib

import pytest
import yaml
import zmq.auth

from cluster import cli, config

DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy")


def k8s(kind: str, name: str) -> dict:
    """The one object of this kind and name in deploy/k8s/*.yaml."""
    docs = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))):
        with open(path) as f:
            docs += [doc for doc in yaml.safe_load_all(f) if doc]
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def compose() -> dict:
    with open(os.path.join(DEPLOY, "compose.yaml")) as f:
        return yaml.safe_load(f)["services"]


def cluster(argv: list[str]):
    """``argv`` (cluster ...) as the ``cluster`` command parses it."""
    assert argv[0] == "cluster"
    return cli.parser().parse_args(argv[1:])


def statefulSet() -> dict:
    return k8s("StatefulSet", "cluster")


def container() -> dict:
    [c] = statefulSet()["spec"]["template"]["spec"]["containers"]
    return c


def mountedAt(path: str) -> tuple[dict, dict]:
    """The StatefulSet's volume mount at ``path`` and its volume."""
    [mount] = [m for m in container()["volumeMounts"] if m["mountPath"] == path]
    [volume] = [v for v in statefulSet()["spec"]["template"]["spec"]["volumes"]
                if v["name"] == mount["name"]]
    return mount, volume


def k8sToml() -> str:
    """The cluster.toml the StatefulSet's `cluster run --config` reads: a ConfigMap's."""
    mount, volume = mountedAt(cluster(container()["command"]).config)
    return k8s("ConfigMap", volume["configMap"]["name"])["data"][mount["subPath"]]


def composeToml() -> str:
    with open(os.path.join(DEPLOY, "cluster-hosts.toml")) as f:
        return f.read()


def seconds(duration: str) -> int:
    assert re.fullmatch(r"\d+s", duration), duration
    return int(duration[:-1])


@pytest.mark.parametrize("text", [k8sToml, composeToml], ids=["k8s", "compose"])
def test_configs_load_as_each_host(tmp_path, text):
    path = tmp_path / "cluster.toml"
    path.write_text(text())
    names = [h["name"] for h in tomllib.loads(text())["hosts"]]
    keys = tmp_path / "keys"  # stands in for the real curve-keys directory
    keys.mkdir()
    for name in names:
        zmq.auth.create_certificates(str(keys), name)
    for name in names:
        cfg = config.load(str(path), {"host": name, "curve_keys": str(keys)})
        assert cfg.host == name and [h.name for h in cfg.hostList] == names


def test_k8s_stop_outlasts_graceful_timeout():
    toml = tomllib.loads(k8sToml())
    preStop = container().get("lifecycle", {}).get("preStop", {}).get("exec", {})
    sleep = int(preStop["command"][1]) if preStop.get("command", [""])[0] == "sleep" else 0
    grace = statefulSet()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > toml.get("graceful-timeout", 30) + sleep


def test_k8s_commands_are_cluster_commands():
    toml = tomllib.loads(k8sToml())
    assert cluster(container()["command"]).command == "run"
    ready = container()["readinessProbe"]["exec"]["command"]
    assert ready[:3] == ["cluster", "status", "--ready"]
    assert cluster(ready).ready and cluster(ready).name == toml.get("name", "default")
    alive = cluster(container()["livenessProbe"]["exec"]["command"])
    assert alive.command == "status" and alive.name == toml.get("name", "default")


def test_k8s_keys_secret_mounted_at_curve_keys():
    toml = tomllib.loads(k8sToml())
    mount, volume = mountedAt(toml["curve-keys"])
    assert volume["secret"]["secretName"] == "cluster-curve-keys" and mount["readOnly"]
    # the example Secret: that name, and each host's two files (what --curve-keys reads)
    with open(os.path.join(DEPLOY, "k8s", "curve-keys-secret.yaml.example")) as f:
        secret = yaml.safe_load(f)
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == volume["secret"]["secretName"]
    assert set(secret["stringData"]) == {f"{h['name']}{ext}" for h in toml["hosts"]
                                         for ext in (".key", ".key_secret")}
    pod = statefulSet()["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] and pod["runAsUser"] == 10001 == pod["fsGroup"]


def test_k8s_hosts_are_the_statefulsets_pods():
    toml = tomllib.loads(k8sToml())
    spec = statefulSet()["spec"]
    headless = k8s("Service", spec["serviceName"])["spec"]
    assert headless["clusterIP"] == "None" and headless.get("publishNotReadyAddresses")
    ports = {p["name"]: p["port"] for p in headless["ports"]}
    assert [h["name"] for h in toml["hosts"]] == [
        f"{statefulSet()['metadata']['name']}-{i}" for i in range(spec["replicas"])]
    for h in toml["hosts"]:
        address, _, port = h["rpc"].rpartition(":")
        pattern = rf"{h['name']}\.{spec['serviceName']}\.[a-z0-9-]+\.svc\.[a-z0-9.-]+"
        assert re.fullmatch(pattern, address) and int(port) == ports["rpc"]
    containerPorts = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert containerPorts["rpc"] == ports["rpc"]
    assert containerPorts["redis"] == int(toml["bind"].rpartition(":")[2])


def test_compose_services_are_the_hosts():
    toml = tomllib.loads(composeToml())
    services = compose()
    assert [s["hostname"] for s in services.values()] == [h["name"] for h in toml["hosts"]]
    assert list(services) == [h["rpc"].rpartition(":")[0] for h in toml["hosts"]]
    bindPort = toml["bind"].rpartition(":")[2]
    for service in services.values():
        assert service["ports"] and all(
            p.startswith("127.0.0.1:") and p.endswith(f":{bindPort}") for p in service["ports"])
        args = cluster(service["command"])
        volumes = {v.split(":")[1]: v.split(":") for v in service["volumes"]}
        assert volumes[args.config][0] == "./cluster-hosts.toml"
        assert volumes[toml["curve-keys"]][2:] == ["ro"]
        assert seconds(service["stop_grace_period"]) > toml.get("graceful-timeout", 30)
        assert service["healthcheck"]["test"] == ["CMD", "cluster", "status", "--ready"]
