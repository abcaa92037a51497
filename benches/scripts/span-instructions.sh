#!/usr/bin/env bash
# Instructions per span of each pipeline of the spans bench, counted by
# callgrind: repeatable whatever else the machine is doing, where the
# bench's nanoseconds move with a shared host. Counts what each pipeline's
# function runs, divided by its spans (each root and its 1,000 children).
# The aitrace rows also hold the untimed clear of the buffer between roots
# (some 16 a span).
#
#   benches/scripts/span-instructions.sh [roots]     (default 300, at least 2)
#
# Needs valgrind. Builds the bench first.
set -euo pipefail
roots=${1:-300}
if [ "$roots" -lt 2 ]; then
    echo "roots: at least 2" >&2
    exit 2
fi
cd "$(dirname "$0")/../.."
bin=$(cargo bench -p aitrace-benches --bench spans --no-run --message-format=json |
    grep -o '"executable":"[^"]*spans-[^"]*"' | tail -1 | cut -d'"' -f4)
if [ -z "$bin" ]; then
    echo "the spans bench did not build" >&2
    exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for pipeline in fastrace registry core layer; do
    case $pipeline in
    core) function='spans::Pipelines::core \[' spans=$((roots * 1001)) ;;
    fastrace) function='spans::Pipelines::fastrace \[' spans=$((roots * 1001)) ;;
    registry) function='spans::per_span \[' spans=$((roots * 1001)) ;;
    layer) function='spans::per_span \[' spans=$((roots / 2 * 1001)) ;;
    esac
    SPANS_PROFILE=$pipeline SPANS_ROOTS=$roots valgrind --tool=callgrind \
        --callgrind-out-file="$out/$pipeline" "$bin" >/dev/null 2>&1
    total=$(callgrind_annotate --inclusive=yes "$out/$pipeline" 2>/dev/null |
        grep "$function" | head -1 | awk '{print $1}' | tr -d ,)
    if [ -z "$total" ]; then
        echo "$pipeline: no count for ${function%% *} in callgrind's output" >&2
        exit 1
    fi
    echo "$pipeline: $((total / spans)) instructions per span"
done
