# Source this file (". .ci/node.sh") to put Node.js 22 on PATH.
#
# If the node on PATH is already 22.19 or newer it is used as is. Otherwise the official
# Node 22 build that the npm registry ships as the package node-linux-<arch>@22 is installed
# into a cache directory (TREADLE_NODE_CACHE, default ~/.cache/treadle-node22) and put first on
# PATH. npm_config_nodedir points node-gyp at that build's headers so native addons
# (better-sqlite3) compile for the right ABI without downloading anything else.
_treadle_node_setup() {
  local cache="${TREADLE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/treadle-node22}"
  local arch pkg major minor
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  minor=$(node -p 'process.versions.node.split(".")[1]' 2>/dev/null || echo 0)
  if [ "$major" -gt 22 ] 2>/dev/null || { [ "$major" -eq 22 ] && [ "$minor" -ge 19 ]; } 2>/dev/null; then
    return 0
  fi
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo ".ci/node.sh: unsupported machine $(uname -m); install Node.js 22 yourself" >&2; return 1 ;;
  esac
  pkg="node-linux-$arch"
  if [ ! -x "$cache/node_modules/$pkg/bin/node" ]; then
    mkdir -p "$cache" || return 1
    if ! npm install --silent --no-save --no-package-lock --no-audit --no-fund \
      --prefix "$cache" "$pkg@22" >/dev/null 2>&1; then
      echo ".ci/node.sh: could not install $pkg@22 from the npm registry" >&2
      return 1
    fi
  fi
  export PATH="$cache/node_modules/$pkg/bin:$PATH"
  export npm_config_nodedir="$cache/node_modules/$pkg"
  hash -r 2>/dev/null
}
_treadle_node_setup
unset -f _treadle_node_setup
