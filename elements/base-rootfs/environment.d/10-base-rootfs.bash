# What DIB's distro elements export, from base-rootfs's params, for DIB elements that
# read them (a SLES ramdisk: distro = "opensuse"); written by smelt's base-rootfs.
[ -z "$SMELT_PARAM_BASE_ROOTFS_DISTRO" ] || export DISTRO_NAME=${DISTRO_NAME:-$SMELT_PARAM_BASE_ROOTFS_DISTRO}
[ -z "$SMELT_PARAM_BASE_ROOTFS_RELEASE" ] || export DIB_RELEASE=${DIB_RELEASE:-$SMELT_PARAM_BASE_ROOTFS_RELEASE}
[ -z "$SMELT_PARAM_BASE_ROOTFS_INIT_SYSTEM" ] || export DIB_INIT_SYSTEM=${DIB_INIT_SYSTEM:-$SMELT_PARAM_BASE_ROOTFS_INIT_SYSTEM}
export DIB_PYTHON_VERSION=${DIB_PYTHON_VERSION:-3}
export DIB_PYTHON=python${DIB_PYTHON_VERSION}
