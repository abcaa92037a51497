#!/usr/bin/env bash
# Instructions per child span of each pipeline of the spans bench, counted
# by callgrind: repeatable whatever else the machine is doing, where the
# bench's nanoseconds move with a shared host. Counts what each pipeline's
# timed function runs, divided by its spans (the core pipeline's count also
# holds the untimed buffer clear between roots, some 16 per span).
#
#   benches/scripts/span-instructions.sh [roots]     (default 300)
#
# Needs valgrind. Builds the bench first.
set -euo pipefail
roots=${1:-300}
cd "$(dirname "$0")/../.."
bin=$(cargo bench -p aitrace-benches --bench spans --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*spans-[^"]*"' | tail -1 | cut -d'"' -f4)
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
    echo "$pipeline: $((total / spans)) instructions per span"
done
