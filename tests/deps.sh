# Sourced by tests/run and qemu/run: installs what is missing on a Debian 12 machine.
# Needs root (or password-less sudo) only when something is missing.

# Packages and why: QEMU + firmware (SeaBIOS comes with qemu-system-x86; OVMF for UEFI), GRUB and the
# tools grub-mkrescue needs for the hybrid image, a C toolchain for linking host crates, iproute2 for
# taps/namespaces, ethtool for the hosted runner's veth hosts (offloads off), and the real clients the
# integration tests drive.
IRONFLOW_APT_PACKAGES=(
  qemu-system-x86 ovmf grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools
  openvswitch-common openvswitch-switch iperf3 tcpdump python3 python3-venv
  iproute2 iputils-ping ethtool gcc libc6-dev curl ca-certificates git
)

ironflow_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
ironflow_die() { printf '\033[1;31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }

ironflow_as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

ironflow_install_deps() {
  local missing=() p
  for p in "${IRONFLOW_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    ironflow_log "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    ironflow_as_root apt-get update -q \
      || ironflow_die "cannot run apt-get as root; install: apt-get install -y ${missing[*]}"
    ironflow_as_root apt-get install -y -q --no-install-recommends "${missing[@]}" \
      || ironflow_die "apt-get install ${missing[*]} failed"
  fi
  if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v rustup >/dev/null; then
    ironflow_log "installing rustup (no Rust toolchain found)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
      | sh -s -- -y -q --profile minimal --default-toolchain none \
      || ironflow_die "rustup install failed"
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  # rust-toolchain.toml pins stable with rustfmt, clippy and x86_64-unknown-none. `rustup toolchain
  # install` (rustup >= 1.28) installs it; older rustup installs it on the first cargo call.
  (cd "$IRONFLOW_ROOT" && { rustup toolchain install >/dev/null 2>&1 || true; cargo --version >/dev/null; }) \
    || ironflow_die "rustup could not install the toolchain pinned in rust-toolchain.toml"
  if ! (cd "$IRONFLOW_ROOT" && rustup target list --installed | grep -qx x86_64-unknown-none); then
    ironflow_log "rustup target add x86_64-unknown-none"
    (cd "$IRONFLOW_ROOT" && rustup target add x86_64-unknown-none) \
      || ironflow_die "rustup target add x86_64-unknown-none failed"
  fi
  ironflow_install_osken
  ironflow_install_ovs_python
}

# os-ken (the OpenFlow controller tests/tests/controller.rs drives the switch with) in a venv under
# target/ (Debian 12's pip refuses system-wide installs). 2.11.2 has `osken-manager` and imports
# with the current eventlet (PyPI's os-ken >= 2.0 ships no sample apps: the test brings its own).
IRONFLOW_OSKEN_VERSION=2.11.2
ironflow_install_osken() {
  local venv="$IRONFLOW_ROOT/target/osken-venv"
  if [ -x "$venv/bin/osken-manager" ] \
    && "$venv/bin/python" -c "import os_ken, sys; sys.exit(os_ken.__version__ != '$IRONFLOW_OSKEN_VERSION')" 2>/dev/null; then
    return 0
  fi
  ironflow_log "installing os-ken $IRONFLOW_OSKEN_VERSION into $venv"
  /usr/bin/python3 -m venv "$venv" \
    && "$venv/bin/pip" install -q "os-ken==$IRONFLOW_OSKEN_VERSION" \
    || ironflow_die "pip install os-ken==$IRONFLOW_OSKEN_VERSION into $venv failed"
}

# The Python `ovs` library (PyPI `ovs`: the OVSDB IDL tests/ovsdb_idl.py drives the appliance with,
# run by tests/tests/ovsdb_idl.rs), in the same venv as os-ken: os-ken depends on it, so this is
# usually already satisfied; pinned to the version os-ken's install resolves to.
IRONFLOW_OVS_PY_VERSION=4.0.0
ironflow_install_ovs_python() {
  local venv="$IRONFLOW_ROOT/target/osken-venv"
  if [ -x "$venv/bin/python" ] \
    && "$venv/bin/python" -W ignore -c "import ovs.db.idl, ovs.version, sys; sys.exit(ovs.version.VERSION != '$IRONFLOW_OVS_PY_VERSION')" 2>/dev/null; then
    return 0
  fi
  ironflow_log "installing the Python ovs library $IRONFLOW_OVS_PY_VERSION into $venv"
  { [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"; } \
    && "$venv/bin/pip" install -q "ovs==$IRONFLOW_OVS_PY_VERSION" \
    || ironflow_die "pip install ovs==$IRONFLOW_OVS_PY_VERSION into $venv failed"
}
