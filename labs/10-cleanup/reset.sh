#!/usr/bin/env bash
# Lab 10 removes; there is nothing of its own to undo. Forget its status.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_forget
