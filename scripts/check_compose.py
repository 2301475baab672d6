"""Checks docker-compose.yml by reading it, since no Docker engine runs here: it parses,
every dependency names a service, every Windlass service runs a real subcommand, and every
WINDLASS_*/AZURE_* variable it sets is one the binary reads (per `windlass <cmd> --help`)."""

import re
import subprocess
import sys

import yaml

binary, compose_path = sys.argv[1], sys.argv[2]
with open(compose_path) as f:
    compose = yaml.safe_load(f)

services = compose["services"]
problems = []
for name, service in services.items():
    if "image" not in service and "build" not in service:
        problems.append(f"{name}: neither image nor build")
    depends = service.get("depends_on", {})
    for dependency in depends if isinstance(depends, (list, dict)) else []:
        if dependency not in services:
            problems.append(f"{name}: depends on unknown service {dependency}")
    if service.get("build") == ".":
        command = service.get("command", [])
        if not command:
            problems.append(f"{name}: no windlass subcommand")
            continue
        help_text = subprocess.run(
            [binary, command[0], "--help"], capture_output=True, text=True
        )
        if help_text.returncode != 0:
            problems.append(f"{name}: `windlass {command[0]}` is not a subcommand")
            continue
        # `[env: NAME=value]`, or `[env: NAME]` for a flag whose value help never shows.
        known = set(re.findall(r"env: ([A-Z0-9_]+)[=\]]", help_text.stdout))
        for variable in service.get("environment", {}):
            if variable.startswith(("WINDLASS_", "AZURE_")) and variable not in known:
                problems.append(f"{name}: windlass {command[0]} does not read {variable}")

if problems:
    print("docker-compose.yml:", *problems, sep="\n  ")
    sys.exit(1)
print(f"docker-compose.yml: {len(services)} services consistent with the windlass binary")
