#!/bin/sh
# Refresh MQTT.js's browser bundle shipped in the package (src/zanzara/static/), which a WebSocket
# listener with `bundle = true` serves at /mqtt.min.js (Mosca's http.bundle).
#
# usage: scripts/update-mqtt-js.sh [VERSION]     (default: 5, the newest 5.x on npm)
#
# Takes dist/mqtt.min.js and LICENSE.md from the npm package itself (`npm pack`, no install, no
# build: the bundle is the one MQTT.js publishes), and records the version and checksum in
# src/zanzara/static/README.md. Then run tests/transports/test_bundle.py and commit the three files.
set -eu

spec="mqtt@${1:-5}"
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/src/zanzara/static"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
tarball=$(npm pack "$spec" --silent)
tar -xzf "$tarball"
version=$(node -p 'require("./package/package.json").version')
license=$(node -p 'require("./package/package.json").license')
[ -s package/dist/mqtt.min.js ] || { echo "$spec has no dist/mqtt.min.js" >&2; exit 1; }

mkdir -p "$dest"
cp package/dist/mqtt.min.js "$dest/mqtt.min.js"
cp package/LICENSE.md "$dest/mqtt.LICENSE.md"
sum=$(sha256sum "$dest/mqtt.min.js" | cut -d' ' -f1)
cat > "$dest/README.md" <<README
# Files served by zanzara itself

- \`mqtt.min.js\`: MQTT.js $version's browser bundle (\`dist/mqtt.min.js\` of the npm package
  \`mqtt@$version\`, $license licence: \`mqtt.LICENSE.md\`; the licences of the code it bundles are
  at its end), served at \`/mqtt.min.js\` by a WebSocket listener with \`bundle = true\`.
  Refreshed with \`scripts/update-mqtt-js.sh\`; do not edit by hand.
  sha256 \`$sum\`
README
echo "MQTT.js $version -> $dest/mqtt.min.js ($(wc -c < "$dest/mqtt.min.js") bytes, sha256 $sum)"
