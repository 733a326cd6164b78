#!/usr/bin/env bash
# Builds the benchmark's guest disk: an ext4 filesystem image (no partition table, as PyGRUB
# reads a whole-disk filesystem) with /boot/grub/grub.cfg, a 14 MB kernel and a 1 MB initrd.
# Usage: make-image.sh OUTDIR  → OUTDIR/disk.img
set -euo pipefail
out=${1:?usage: make-image.sh OUTDIR}
mkdir -p "$out"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/boot/grub"
# Incompressible contents of realistic size: the point is the bytes copied, not booting them.
head -c $((14 * 1024 * 1024)) /dev/urandom > "$tree/boot/vmlinuz-6.1.0-bench"
head -c $((1024 * 1024)) /dev/urandom > "$tree/boot/initrd.img-6.1.0-bench"
cat > "$tree/boot/grub/grub.cfg" <<'CFG'
if [ -s $prefix/grubenv ]; then
  load_env
fi
set default="0"
set timeout=5
function load_video {
  insmod all_video
}
insmod part_msdos
insmod ext2
set root='hd0'
menuentry 'Debian GNU/Linux, with Linux 6.1.0-bench' --class debian --class gnu-linux $menuentry_id_option 'gnulinux-6.1.0-bench' {
	load_video
	insmod gzio
	set root='hd0'
	echo	'Loading Linux 6.1.0-bench ...'
	linux	/boot/vmlinuz-6.1.0-bench root=/dev/vda ro console=ttyS0 quiet
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-bench
}
menuentry 'Debian GNU/Linux, with Linux 6.1.0-bench (recovery mode)' --class debian $menuentry_id_option 'gnulinux-6.1.0-bench-recovery' {
	load_video
	set root='hd0'
	linux	/boot/vmlinuz-6.1.0-bench root=/dev/vda ro single
	initrd	/boot/initrd.img-6.1.0-bench
}
CFG
rm -f "$out/disk.img"
mke2fs -q -t ext4 -d "$tree" "$out/disk.img" 64M
echo "$out/disk.img"
