"""A real Kubernetes control plane on this machine: etcd, kube-apiserver, kube-controller-manager.

No Docker, no kind: `build.sh` compiles kube-apiserver and kube-controller-manager from the
published `k8s.io/kubernetes` Go module (cached per version), etcd is Debian's `etcd-server`,
and `devtools.kube.node` plays the node: it binds pending pods to itself and runs each pod's
command as a local process. Everything listens on 127.0.0.1 only.

Authentication is static bearer tokens (`--token-auth-file`), authorization RBAC, as on a
real cluster: `admin` (in `system:masters`, the `kubeconfig` everything uses) may do anything,
and `restricted` (`kubeconfig-restricted`, bound to nothing) may do only what RBAC grants every
authenticated user, so tests can see what mactl does without rights. A throw-away cluster for
tests, never exposed. The serving certificate is signed by a CA made
here, which the kubeconfig trusts, so clients verify TLS as they would against any cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devtools import REPO_ROOT
from devtools.local import process
from devtools.local.errors import LocalServiceError

VERSION = os.environ.get("KUBE_VERSION", "v1.37.2")
ETCD_PORT = 22379
ETCD_PEER_PORT = 22380
APISERVER_PORT = 26443
CONTROLLER_MANAGER_PORT = 26444
NODE_NAME = "mactl-local"
# Only what Jobs need: the Job controller makes the pods, the service-account controllers
# give each namespace its `default` account (pods are refused without it), the garbage
# collector deletes a deleted Job's pods, the namespace controller empties deleted namespaces.
CONTROLLERS = "job-controller,serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller,namespace-controller"


def cache_dir() -> Path:
    return Path(os.environ.get("KUBE_CACHE", "/var/cache/mactl/kube" if os.geteuid() == 0 else "~/.cache/mactl/kube"))


def bin_dir() -> Path:
    return cache_dir().expanduser() / VERSION / "bin"


def runtime_dir() -> Path:
    if env := os.environ.get("MACTL_KUBE_DIR"):
        return Path(env).resolve()
    return Path("/var/lib/mactl/kube") if os.geteuid() == 0 else REPO_ROOT / ".mactl-kube"


@dataclass(frozen=True)
class Layout:
    """The files of one running control plane."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def restricted(self) -> Path:
        """A kubeconfig for a user RBAC grants nothing beyond what every authenticated user has."""
        return self.root / "kubeconfig-restricted"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def pid(self, name: str) -> Path:
        return self.root / f"{name}.pid.json"

    @property
    def pods(self) -> Path:
        """Where the node keeps each pod's working folder and log."""
        return self.root / "pods"


COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "node")


def build() -> float:
    """Build the binaries if they are not cached; returns the seconds it took (0 when cached)."""
    if (bin_dir() / "kube-apiserver").is_file() and (bin_dir() / "kube-controller-manager").is_file():
        return 0.0
    began = time.monotonic()
    env = {**os.environ, "KUBE_VERSION": VERSION, "KUBE_CACHE": str(cache_dir().expanduser())}
    if not shutil.which("go") and Path("/usr/local/go/bin/go").is_file():
        env["GO"] = "/usr/local/go/bin/go"
    result = subprocess.run(["bash", str(Path(__file__).with_name("build.sh"))], env=env)
    if result.returncode != 0:
        raise LocalServiceError(f"building kube-apiserver {VERSION} failed (exit {result.returncode})")
    return time.monotonic() - began


def _etcd() -> str:
    found = shutil.which("etcd")
    if not found:
        raise LocalServiceError("etcd is not installed", hint="apt-get install etcd-server")
    return found


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_pki(pki: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1/localhost, and the service-account key pair."""
    if (pki / "serving.crt").is_file():
        return
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = str(pki / "ca.key"), str(pki / "ca.crt")
    _openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt),
        *("-days", "3650", "-subj", "/CN=mactl-kube-ca"),
    )
    _openssl(
        *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(pki / "serving.key")),
        *("-out", str(pki / "serving.csr"), "-subj", "/CN=kube-apiserver"),
    )
    extensions = pki / "serving.ext"
    extensions.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
    )
    _openssl(
        *("x509", "-req", "-in", str(pki / "serving.csr"), "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial"),
        *("-out", str(pki / "serving.crt"), "-days", "3650", "-extfile", str(extensions)),
    )
    _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def _write_credentials(layout: Layout) -> str:
    """The tokens file and a kubeconfig per user; the admin's token (kept across restarts)."""
    tokens = layout.root / "tokens.csv"
    lines = tokens.read_text().splitlines() if tokens.is_file() else []
    token = lines[0].split(",", 1)[0] if lines else secrets.token_hex(24)
    restricted = lines[1].split(",", 1)[0] if len(lines) > 1 else secrets.token_hex(24)
    tokens.write_text(f'{token},admin,admin,"system:masters"\n{restricted},restricted,restricted\n')
    tokens.chmod(0o600)
    for user, secret, path in (("admin", token, layout.kubeconfig), ("restricted", restricted, layout.restricted)):
        _write_kubeconfig(layout, user, secret, path)
    return token


def _write_kubeconfig(layout: Layout, user: str, token: str, path: Path) -> None:
    server = f"https://127.0.0.1:{APISERVER_PORT}"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(layout.pki / "ca.crt")}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(kubeconfig, indent=2))
    path.chmod(0o600)


def _start(layout: Layout, name: str, cmd: list[str]) -> None:
    record = process.read_record(layout.pid(name))
    if record is not None and record[0].alive():
        return
    env = dict(os.environ)
    # The node is `python -m devtools.kube.node`: it imports from this checkout.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    started = process.start_detached(cmd, env=env, cwd=layout.root, log=layout.logs / f"{name}.log")
    process.write_record(layout.pid(name), started)


def _wait(what: str, ready: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.is_file() else "(no log)"
    raise LocalServiceError(f"{what} did not become ready in {timeout:.0f}s; last lines of {log}:\n{tail}")


def _healthy(token: str, ca: Path, path: str) -> bool:
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(
        f"https://127.0.0.1:{APISERVER_PORT}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def up(layout: Layout, *, timeout: float = 120.0) -> None:
    """Start whatever is not running yet and wait until the API serves and the node is Ready."""
    build()
    for folder in (layout.root, layout.logs, layout.pods, layout.root / "etcd"):
        folder.mkdir(parents=True, exist_ok=True)
    _make_pki(layout.pki)
    token = _write_credentials(layout)
    _start(
        layout,
        "etcd",
        [
            _etcd(),
            *("--data-dir", str(layout.root / "etcd"), "--name", "mactl-kube"),
            *("--listen-client-urls", f"http://127.0.0.1:{ETCD_PORT}"),
            *("--advertise-client-urls", f"http://127.0.0.1:{ETCD_PORT}"),
            *("--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}"),
            *("--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}"),
            *("--initial-cluster", f"mactl-kube=http://127.0.0.1:{ETCD_PEER_PORT}"),
            "--unsafe-no-fsync",
        ],
    )
    _wait("etcd", lambda: process.port_in_use(ETCD_PORT), 30, layout.logs / "etcd.log")
    pki = layout.pki
    _start(
        layout,
        "kube-apiserver",
        [
            str(bin_dir() / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={APISERVER_PORT}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--token-auth-file={layout.root / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/24",
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none",
        ],
    )
    _wait(
        "kube-apiserver",
        lambda: _healthy(token, pki / "ca.crt", "/readyz"),
        timeout,
        layout.logs / "kube-apiserver.log",
    )
    _start(
        layout,
        "kube-controller-manager",
        [
            str(bin_dir() / "kube-controller-manager"),
            f"--kubeconfig={layout.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={CONTROLLER_MANAGER_PORT}",
            "--leader-elect=false",
            f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false",
        ],
    )
    _start(
        layout,
        "node",
        [
            sys.executable,
            "-m",
            "devtools.kube.node",
            *("--kubeconfig", str(layout.kubeconfig), "--name", NODE_NAME, "--pods", str(layout.pods)),
            *(flag for path in node_shares() for flag in ("--share", path)),
        ],
    )
    _wait("the node", lambda: _node_ready(token, pki / "ca.crt"), 60, layout.logs / "node.log")
    _wait(
        "the default service account",
        lambda: _healthy(token, pki / "ca.crt", "/api/v1/namespaces/default/serviceaccounts/default"),
        60,
        layout.logs / "kube-controller-manager.log",
    )


def node_shares() -> list[str]:
    """Host folders a pod running in an image sees at the same path (the stand-in for the
    volumes a real cluster's nodes share): the test clusters' snapshot repositories and the
    tests' temporary folders, or MACTL_KUBE_NODE_SHARES (colon-separated)."""
    shares = os.environ.get("MACTL_KUBE_NODE_SHARES", "/tmp:/var/lib/mactl")
    return [p for p in shares.split(":") if p]


def _node_ready(token: str, ca: Path) -> bool:
    return _healthy(token, ca, f"/api/v1/nodes/{NODE_NAME}")


def down(layout: Layout) -> dict[str, str]:
    """Stop every component (the node first, so it stops its pods' processes)."""
    found: dict[str, str] = {}
    for name in reversed(COMPONENTS):
        record = process.read_record(layout.pid(name))
        found[name] = process.stop(record[0], grace_seconds=15) if record else "not running"
        layout.pid(name).unlink(missing_ok=True)
    return found


def status(layout: Layout) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in COMPONENTS:
        record = process.read_record(layout.pid(name))
        found[name] = "running" if record and record[0].alive() else "stopped"
    return found


def env_lines(layout: Layout) -> list[str]:
    if not layout.kubeconfig.is_file():
        return []
    return [f"export MACTL_TEST_KUBECONFIG={layout.kubeconfig}", f"export MACTL_KUBE_PODS={layout.pods}"]
