"""SSM Run Command in the local cloud: ``AWS-RunShellScript`` on the local training host.

- `host`: the training host's instance id and its folder, prepared the way the Terraform user
  data prepares the real host (client side: `ops.target` imports it, so this package's
  ``__init__`` imports nothing of the server);
- `commands`: commands and their invocations (the backend) and the runner that executes them
  under ``/bin/sh`` as the SSM agent does;
- `api`: the operations answered here; `service`: `SsmService`, which wires them.
"""
