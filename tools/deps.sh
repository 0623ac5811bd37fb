#!/bin/sh
# deps.sh PKG... - make sure these Debian packages are installed.
# As root: installs what is missing (apt-get update first). Otherwise prints
# the one apt-get line to run and fails, so make stops with a clear message.
missing=""
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: not a Debian system; make sure these are installed: $*" >&2
    exit 0
fi
for p in "$@"; do
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)
    case "$st" in ii*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps.sh: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq $missing >&2 && exit 0
    echo "deps.sh: apt-get install failed" >&2
    exit 1
fi
echo "infer needs Debian packages that are missing. Run:" >&2
echo "    sudo apt-get install$missing" >&2
exit 1
