#!/bin/sh
# Benchmark of Berth's text formats: builds an optimized binary from the module sources
# (the same single-module build the fuzz targets use) and runs it.
#   bench/formats/run.sh            # from the package root
set -eu
cd "$(dirname "$0")/../.."
out=${TMPDIR:-/tmp}/berth-formats-bench
swiftc -O -parse-as-library -module-name BerthFormatsBench \
    Sources/BerthModel/*.swift Sources/BerthFormats/*.swift bench/formats/main.swift -o "$out"
"$out" Tests/BerthFormatsTests/Fixtures
