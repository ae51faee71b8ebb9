"""The local training host: the instance id the local cloud's SSM answers for, and its folder.

On AWS the host is Terraform's EC2 instance; its user data checks the project out into
``install_dir`` (default ``/opt/dogops``) and creates the project's virtual environment at
``<install_dir>/.venv``. Locally the host is a folder, ``$DOGOPS_HOME/hosts/<instance id>/``,
prepared the same way: ``opt/dogops/`` holds a link to each top-level entry of the project and
``opt/dogops/.venv`` links the virtual environment `ops` runs from. Training runs write into
a real folder beside the links (``opt/dogops/runs/``, see `ops.ec2`), not into the project.

The id is fixed rather than a record in moto's EC2: creating the first instance there costs
moto about 7 s of AMI loading at every start of the local cloud, and nothing here needs more
than an id that SSM accepts (`^i-\\w{17}$`).
"""

from __future__ import annotations

import os
from pathlib import Path

TRAINING_HOST_ID = "i-0dogopslocalhost1"
INSTALL_PATH = Path("opt") / "dogops"  # the module's install_dir default, under the host folder


def host_dir(home: Path, instance_id: str = TRAINING_HOST_ID) -> Path:
    return home / "hosts" / instance_id


def prepare(home: Path, project: Path, venv: Path) -> tuple[Path, Path]:
    """Make the host folder's install dir the project (linked entry by entry) with ``venv`` as
    its ``.venv``; returns (install dir, venv dir). Idempotent: links that point elsewhere (a
    moved checkout, another venv) are replaced."""
    install_dir = host_dir(home) / INSTALL_PATH
    install_dir.mkdir(parents=True, exist_ok=True)
    links = {entry.name: entry for entry in project.iterdir()}
    links[".venv"] = venv
    for name, source in links.items():
        link = install_dir / name
        if link.is_symlink() and Path(os.readlink(link)) == source:
            continue
        if link.is_symlink():
            link.unlink()
        link.symlink_to(source)
    return install_dir, install_dir / ".venv"
