#!/usr/bin/env bash
# Starts the real engines, runs a command, and stops the engines whatever happens.
# Usage: test/integration/with-engines.sh COMMAND [ARG...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
trap 'bash "$here/engines.sh" down' EXIT
bash "$here/engines.sh" up
"$@"
