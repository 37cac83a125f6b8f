#!/usr/bin/env bash
# The whole test suite. As root on Debian/Ubuntu it first installs the system tools the
# tests check against; anywhere else it names what is missing and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(qemu-system-x86 linux-image-cloud-amd64 busybox-static cpio libarchive-tools zstd xz-utils
          isolinux syslinux-common ovmf grub-efi-amd64-bin grub-common xorriso genisoimage cloud-init
          openssl tzdata python3 python3-venv mmdebstrap git groff-base binutils rpm createrepo-c curl
          pxelinux ipxe ipxe-qemu dnsmasq-base isc-dhcp-server shim-signed grub-efi-amd64-signed sbsigntool systemd-boot-efi osslsigncode
          libvirt-daemon-system python3-libvirt skopeo openssh-client docker-registry iproute2
          libguestfs-tools libguestfs-xfs qemu-utils btrfs-progs xfsprogs dosfstools fdisk libcap2-bin cryptsetup-bin)
need_cmds=(qemu-system-x86_64 busybox cpio bsdtar zstd xz xorriso isoinfo grub-mkimage openssl /usr/bin/python3 mmdebstrap groff strip rpmbuild createrepo_c curl unshare
           dnsmasq dhcpd sbverify sbsign osslsigncode objcopy objdump libvirtd virtlogd virsh skopeo ssh-keygen docker-registry ip
           guestfish qemu-img mkfs.btrfs btrfs mkfs.xfs mkfs.vfat sfdisk losetup setcap getcap cryptsetup)
need_files=(/usr/lib/ISOLINUX/isolinux.bin /usr/lib/ISOLINUX/isohdpfx.bin /usr/lib/syslinux/modules/bios/ldlinux.c32
            /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_VARS_4M.fd /usr/lib/grub/x86_64-efi/linux.mod
            /usr/lib/python3/dist-packages/cloudinit /usr/share/zoneinfo/Europe/Madrid /usr/lib/locale/C.utf8
            /usr/lib/PXELINUX/lpxelinux.0 /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/ipxe.efi /usr/lib/ipxe/qemu/efi-virtio.rom
            /usr/lib/grub/x86_64-efi/efinet.mod /usr/lib/shim/shimx64.efi.signed /usr/lib/shim/mmx64.efi.signed
            /usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
            /usr/lib/systemd/boot/efi/linuxx64.efi.stub /usr/share/OVMF/OVMF_CODE_4M.secboot.fd /usr/share/OVMF/OVMF_VARS_4M.ms.fd
            /usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd /usr/share/ovmf/PkKek-1-snakeoil.key
            /usr/lib/python3/dist-packages/libvirt.py /usr/lib/x86_64-linux-gnu/guestfs/supermin.d/packages-xfs)

missing_cmds() {
  local m=()
  for c in "${need_cmds[@]}"; do command -v "$c" >/dev/null 2>&1 || m+=("$c"); done
  for f in "${need_files[@]}"; do [ -e "$f" ] || m+=("$f"); done
  compgen -G '/boot/vmlinuz-*' >/dev/null || m+=("a kernel in /boot/vmlinuz-*")
  echo "${m[@]:-}"
}

if [ -n "$(missing_cmds)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tests/run.sh: installing ${packages[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
  fi
fi
if [ -n "$(missing_cmds)" ]; then
  echo "tests/run.sh: missing: $(missing_cmds)" >&2
  echo "install them (Debian/Ubuntu: sudo apt-get install ${packages[*]}), or run this script as root to install them" >&2
  exit 1
fi

cargo test --locked "$@"
