"""The Kubernetes manifests in deploy/kubernetes: every file parses, the kustomization lists what
exists, and the invariants an operator relies on hold (probes, one image, credentials from the
Secret, settings that Settings knows, autoscalers and budgets aimed at real Deployments, the
shared imports volume where the settings say). The two scripts the pods run are run here against
the test PostgreSQL and Redis."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from alembic.script import ScriptDirectory
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.core import migrations
from services.core.config import Settings
from services.scorer.jobs.webhooks import DELIVERY_JOB_SECONDS

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"
IMAGE = "retention-service"
SECRET = "retention-secrets"
CONFIG = "retention-config"
SCRIPTS = "retention-scripts"
FROM_SECRET = {"DATABASE_URL", "REDIS_URL", "RETENTION_SECRET_KEY"}
UVICORN_DRAIN_SECONDS = 10
"""`retention serve` runs uvicorn with timeout_graceful_shutdown=10."""
Manifest = dict[str, Any]


def load(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomization() -> Manifest:
    (doc,) = load(K8S / "kustomization.yaml")
    result: Manifest = doc
    return result


def applied() -> list[Manifest]:
    """The objects `kubectl apply -k` creates besides the generated ConfigMaps."""
    return [doc for name in kustomization()["resources"] for doc in load(K8S / name)]


def secret() -> Manifest:
    (doc,) = load(K8S / "secret.yaml")
    result: Manifest = doc
    return result


def config_env() -> dict[str, str]:
    pairs = {}
    for line in (K8S / "config.env").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def one(kind: str, name: str) -> Manifest:
    (found,) = [d for d in applied() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod_specs() -> Iterator[tuple[str, Manifest]]:
    for doc in applied():
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def containers(spec: Manifest) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(deployment: str) -> Manifest:
    spec = one("Deployment", deployment)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    result: Manifest = container
    return result


def generated(name: str) -> Manifest:
    (generator,) = [g for g in kustomization()["configMapGenerator"] if g["name"] == name]
    result: Manifest = generator
    return result


def test_every_manifest_parses_and_the_kustomization_lists_what_exists() -> None:
    listed = set(kustomization()["resources"])
    for name in listed:
        assert (K8S / name).is_file(), name
    for generator in kustomization()["configMapGenerator"]:
        for path in [*generator.get("envs", []), *generator.get("files", [])]:
            assert (K8S / path).is_file(), path
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # secret.yaml is applied by hand, so that applying the directory never resets credentials
    assert on_disk - listed == {"secret.yaml"}
    for doc in [*applied(), secret()]:
        assert doc["apiVersion"], doc
        assert doc["kind"], doc
        assert doc["metadata"]["name"], doc


def test_one_image_everywhere() -> None:
    images = {c["image"] for _, spec in pod_specs() for c in containers(spec)}
    assert images == {IMAGE}
    (override,) = kustomization()["images"]
    assert override["name"] == IMAGE
    assert override["newTag"]


def test_the_api_is_probed_and_served() -> None:
    api = main_container("retention-api")
    assert api["command"][:2] == ["retention", "serve"]
    (port,) = api["ports"]
    assert api["command"][api["command"].index("--port") + 1] == str(port["containerPort"])
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"

    service = one("Service", "retention-api")
    pod_labels = one("Deployment", "retention-api")["spec"]["template"]["metadata"]["labels"]
    scorer_labels = one("Deployment", "retention-scorer")["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert not selector.items() <= scorer_labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]


def test_the_scorer_is_probed_through_the_worker_health_key() -> None:
    scorer = main_container("retention-scorer")
    assert scorer["command"] == ["retention", "worker"]
    mounts = {m["name"]: m["mountPath"] for m in scorer["volumeMounts"]}
    volumes = one("Deployment", "retention-scorer")["spec"]["template"]["spec"]["volumes"]
    (scripts,) = [v for v in volumes if v.get("configMap", {}).get("name") == SCRIPTS]
    probe_files = {Path(f).name for f in generated(SCRIPTS)["files"]}
    for probe in ("startupProbe", "livenessProbe"):
        command = scorer[probe]["exec"]["command"]
        assert command[0] == "python"
        script = Path(command[1])
        assert str(script.parent) == mounts[scripts["name"]]
        assert script.name == "worker_alive.py"
        assert script.name in probe_files


def test_new_pods_wait_for_the_migrated_schema_and_the_job_migrates() -> None:
    for name in ("retention-api", "retention-scorer"):
        spec = one("Deployment", name)["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        assert Path(init["command"][1]).name == "wait_for_schema.py"
    job = one("Job", "retention-migrate")["spec"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    (container,) = job["template"]["spec"]["containers"]
    assert container["command"] == ["retention", "migrate"]


def test_credentials_come_from_the_secret_and_settings_from_the_config() -> None:
    keys = set(secret()["stringData"])
    assert keys == FROM_SECRET
    generators = {g["name"] for g in kustomization()["configMapGenerator"]}
    for pod, spec in pod_specs():
        for container in containers(spec):
            env = {e["name"]: e for e in container.get("env", [])}
            for name, entry in env.items():
                assert "value" not in entry, f"{pod}/{container['name']} sets {name} inline"
                ref = entry["valueFrom"]["secretKeyRef"]
                assert ref["name"] == SECRET
                assert ref["key"] == name
                assert name in keys
            assert "DATABASE_URL" in env, f"{pod}/{container['name']}"
            sources = [s["configMapRef"]["name"] for s in container["envFrom"]]
            assert sources == [CONFIG]
    assert CONFIG in generators
    for deployment in ("retention-api", "retention-scorer"):
        names = {e["name"] for e in main_container(deployment)["env"]}
        assert names == FROM_SECRET, deployment
    (migrate,) = one("Job", "retention-migrate")["spec"]["template"]["spec"]["containers"]
    assert {e["name"] for e in migrate["env"]} == {"DATABASE_URL", "RETENTION_SECRET_KEY"}


def test_every_setting_in_the_config_is_one_settings_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A misspelt RETENTION_ name would be ignored silently (extra="ignore"); a bad value would
    stop every pod at start."""
    names = {f"RETENTION_{field}".upper() for field in Settings.model_fields} - {
        "RETENTION_DATABASE_URL",
        "RETENTION_REDIS_URL",
    }
    config = config_env()
    retention = {k for k in config if k.startswith("RETENTION_")}
    assert retention <= names, retention - names
    assert set(config) - retention <= {"PGSSLMODE", "PGSSLROOTCERT"}
    assert not retention & {"RETENTION_SECRET_KEY", "RETENTION_METRICS_TOKEN"}, "secrets"
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    loaded = Settings(_env_file=None)
    assert str(loaded.import_dir) == config["RETENTION_IMPORT_DIR"]


def test_the_imports_volume_is_shared_where_the_settings_point() -> None:
    (pvc,) = [d for d in applied() if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    import_dir = config_env()["RETENTION_IMPORT_DIR"]
    for deployment in ("retention-api", "retention-scorer"):
        spec = one("Deployment", deployment)["spec"]["template"]["spec"]
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["mountPath"]: m["name"] for m in main_container(deployment)["volumeMounts"]}
        assert claims[mounts[import_dir]] == pvc["metadata"]["name"], deployment


def test_every_container_has_requests_and_a_memory_limit() -> None:
    for pod, spec in pod_specs():
        for container in containers(spec):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), f"{pod}/{container['name']}"
            assert "memory" in resources["limits"], f"{pod}/{container['name']}"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_autoscalers_and_budgets_aim_at_the_deployments() -> None:
    deployments = {d["metadata"]["name"]: d for d in applied() if d["kind"] == "Deployment"}
    scaled = set()
    for hpa in [d for d in applied() if d["kind"] == "HorizontalPodAutoscaler"]:
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # CPU utilisation is measured against the containers' CPU requests
        assert "cpu" in main_container(target["name"])["resources"]["requests"]
        scaled.add(target["name"])
    assert scaled == set(deployments)
    budgeted = set()
    for pdb in [d for d in applied() if d["kind"] == "PodDisruptionBudget"]:
        selector = pdb["spec"]["selector"]["matchLabels"]
        (name,) = [
            n
            for n, d in deployments.items()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        budgeted.add(name)
        # with the HPA's minimum, a voluntary eviction never takes the last pod
        (hpa,) = [
            h
            for h in applied()
            if h["kind"] == "HorizontalPodAutoscaler"
            and h["spec"]["scaleTargetRef"]["name"] == name
        ]
        assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    assert budgeted == set(deployments)


def test_grace_periods_cover_the_drains() -> None:
    """The api's: its preStop pause plus uvicorn's graceful shutdown as `retention serve` sets
    it; the scorer's: the webhook delivery job's time limit."""
    api = one("Deployment", "retention-api")["spec"]["template"]["spec"]
    pause = main_container("retention-api")["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    assert api["terminationGracePeriodSeconds"] > int(pause[1]) + UVICORN_DRAIN_SECONDS
    scorer = one("Deployment", "retention-scorer")["spec"]["template"]["spec"]
    assert scorer["terminationGracePeriodSeconds"] > DELIVERY_JOB_SECONDS


def run_script(name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run(
        [sys.executable, str(K8S / "scripts" / name), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_liveness_script_reads_the_worker_health_key(settings: Settings) -> None:
    env = {"REDIS_URL": settings.require_redis_url(), "RETENTION_QUEUE_NAME": settings.queue_name}
    redis = Redis.from_url(settings.require_redis_url())
    try:
        await redis.delete(settings.worker_health_key)
        missing = await asyncio.to_thread(run_script, "worker_alive.py", env)
        assert missing.returncode == 1, missing
        assert settings.worker_health_key in missing.stderr

        await redis.set(settings.worker_health_key, b"Nov-23 08:00:00 j_complete=3", px=11_000)
        alive = await asyncio.to_thread(run_script, "worker_alive.py", env)
        assert alive.returncode == 0, alive
        assert "j_complete=3" in alive.stdout
    finally:
        await redis.delete(settings.worker_health_key)
        await redis.aclose()

    unreachable = await asyncio.to_thread(
        run_script, "worker_alive.py", {**env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert unreachable.returncode == 1, unreachable


async def test_the_schema_wait_passes_at_or_past_the_image_revision_only(
    settings: Settings, make_database: Callable[[], Awaitable[str]]
) -> None:
    async def once(url: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            run_script, "wait_for_schema.py", {"DATABASE_URL": url}, "--once"
        )

    current = await once(settings.require_database_url())
    assert current.returncode == 0, current

    empty = await make_database()
    waiting = await once(empty)
    assert waiting.returncode == 1, waiting
    assert "no revision" in waiting.stderr

    script = ScriptDirectory.from_config(migrations.alembic_config(empty))
    (head,) = script.get_heads()
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    await asyncio.to_thread(migrations.upgrade, empty, previous)
    behind = await once(empty)
    assert behind.returncode == 1, behind
    assert head in behind.stderr

    # A newer release's revision, as after a rollback of the image: the old pods may start.
    engine = create_async_engine(empty)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    await engine.dispose()
    ahead = await once(empty)
    assert ahead.returncode == 0, ahead
