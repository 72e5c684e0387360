#!/usr/bin/env bash
# Checks that gst-inspect-1.0 finds both elements in the plugin built in $1 and that every
# property has a blurb that is more than its name.
set -euo pipefail
dir=$1
export GST_PLUGIN_PATH=$dir GST_REGISTRY=$(mktemp -d)/registry.bin
for el in rawudpaudiosrc plcjitterbuffer; do
  out=$(gst-inspect-1.0 "$el")
  echo "$out" | grep -q "Plugin Details" || { echo "$el: not found"; exit 1; }
  # Property lines look like "  name  : blurb"; each blurb must say something.
  echo "$out" | awk '/^Element Properties:/{p=1;next} p && /^  [a-z-]+ +: /{
      split($0, a, ": "); if (length(a[2]) < 20) { print "undocumented: " $0; bad=1 } }
      END{exit bad}'
  echo "$el: ok"
done
