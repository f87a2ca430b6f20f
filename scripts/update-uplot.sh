#!/bin/sh
# Refresh uPlot, the chart library of the admin dashboard (src/zanzara/admin/dashboard/).
#
# usage: scripts/update-uplot.sh [VERSION]     (default: 1, the newest 1.x on npm)
#
# Takes dist/uPlot.iife.min.js, dist/uPlot.min.css and LICENSE from the npm package itself
# (`npm pack`, no install, no build), and records the version and checksums in the dashboard's
# VENDORED.md. Then run tests/admin/test_dashboard.py and commit the four files.
set -eu

spec="uplot@${1:-1}"
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/src/zanzara/admin/dashboard"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
tarball=$(npm pack "$spec" --silent)
tar -xzf "$tarball"
version=$(node -p 'require("./package/package.json").version')
license=$(node -p 'require("./package/package.json").license')
for f in dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE; do
    [ -s "package/$f" ] || { echo "$spec has no $f" >&2; exit 1; }
done

mkdir -p "$dest"
cp package/dist/uPlot.iife.min.js "$dest/uPlot.iife.min.js"
cp package/dist/uPlot.min.css "$dest/uPlot.min.css"
cp package/LICENSE "$dest/uPlot.LICENSE"
js=$(sha256sum "$dest/uPlot.iife.min.js" | cut -d' ' -f1)
css=$(sha256sum "$dest/uPlot.min.css" | cut -d' ' -f1)
cat > "$dest/VENDORED.md" <<README
# Third-party files of the dashboard

- \`uPlot.iife.min.js\` and \`uPlot.min.css\`: uPlot $version (\`dist/\` of the npm package
  \`uplot@$version\`, $license licence: \`uPlot.LICENSE\`), the dashboard's charts.
  Refreshed with \`scripts/update-uplot.sh\`; do not edit by hand.
  sha256 \`$js\` (js), \`$css\` (css)
README
echo "uPlot $version -> $dest ($(wc -c < "$dest/uPlot.iife.min.js") bytes of js)"
