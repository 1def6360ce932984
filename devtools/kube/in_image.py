"""Run one pod's command inside its image's root filesystem: the node's container runtime.

Started by the node as `unshare --mount --propagation private python in_image.py ...`, so the
mounts below live in a mount namespace of the pod's own and vanish with its last process.
The image's root (a podman image mount, read-only to us) is the lower layer of an overlay
whose upper layer is in the pod's folder, as a container runtime gives each container a
writable layer of its own. `/proc`, `/dev` and `/sys` are the host's (there is no PID
namespace here), `/etc/hosts` and `/etc/resolv.conf` too (host networking, as
`hostNetwork: true`), and each `--share` folder is bound at the same path, standing in for the
volumes a real cluster's nodes share. Then it changes root, takes the image's user and working
folder, and execs the command: the pod's process is this process, so the node's signals reach
it. Standard library only: it runs with the host's Python before the root changes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _bind(host: str, root: Path, *, recursive: bool = False) -> None:
    target = root / host.lstrip("/")
    if Path(host).is_dir():
        target.mkdir(parents=True, exist_ok=True)
    elif Path(host).exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    else:
        return
    _mount("--rbind" if recursive else "--bind", host, str(target))


def _user(root: Path, user: str) -> tuple[int, int]:
    """The image's `USER` (a name, uid, or uid:gid) as numbers, read from the image's passwd."""
    name, _, group = user.partition(":")
    if not name:
        return 0, 0
    if name.isdigit():
        uid = int(name)
        gid = int(group) if group.isdigit() else uid
        for line in (root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 3 and fields[2] == name:
                gid = int(group) if group.isdigit() else int(fields[3])
        return uid, gid
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(group) if group.isdigit() else int(fields[3])
    raise SystemExit(f"in_image: user {name!r} is not in the image's /etc/passwd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="in_image.py")
    parser.add_argument("--image-root", required=True, type=Path)
    parser.add_argument("--pod-dir", required=True, type=Path)
    parser.add_argument("--user", default="")
    parser.add_argument("--workdir", default="/")
    parser.add_argument("--share", action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    layer = args.pod_dir / "layer"
    root = layer / "root"
    for sub in ("upper", "work", "root"):
        (layer / sub).mkdir(parents=True, exist_ok=True)
    _mount(
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir={args.image_root},upperdir={layer / 'upper'},workdir={layer / 'work'}",
        str(root),
    )
    for host in ("/proc", "/sys", "/dev"):
        _bind(host, root, recursive=True)
    for host in ("/etc/hosts", "/etc/resolv.conf"):
        _bind(host, root)
    for host in args.share:
        _bind(host, root)
    uid, gid = _user(root, args.user)
    os.chroot(root)
    os.chdir(args.workdir or "/")
    if uid or gid:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    program = shutil.which(command[0], path=os.environ.get("PATH")) or command[0]
    print(f"in_image: exec {program} as uid {os.getuid()} gid {os.getgid()}", file=sys.stderr, flush=True)
    os.execvpe(command[0], command, dict(os.environ))
    return 127  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main())
