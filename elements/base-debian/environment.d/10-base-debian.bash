# What DIB's Debian elements (debian-minimal) export, for DIB elements that read it;
# written by smelt's base-debian from its params.
export DISTRO_NAME=${DISTRO_NAME:-debian}
export DIB_RELEASE=${DIB_RELEASE:-$SMELT_PARAM_BASE_DEBIAN_SUITE}
export DIB_INIT_SYSTEM=${DIB_INIT_SYSTEM:-systemd}
export DIB_PYTHON_VERSION=${DIB_PYTHON_VERSION:-3}
export DIB_PYTHON=python${DIB_PYTHON_VERSION}
export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-$SMELT_PARAM_BASE_DEBIAN_MIRROR}
export DIB_DEBIAN_COMPONENTS=${DIB_DEBIAN_COMPONENTS:-main}
export DIB_DEBIAN_COMPONENTS_WS=${DIB_DEBIAN_COMPONENTS//,/ }
export EFI_BOOT_DIR="EFI/debian"
