package pid1

import (
	"slices"
	"testing"
)

func TestDiskMountsAndSwaps(t *testing.T) {
	mounts := `rootfs / rootfs rw 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
devtmpfs /dev devtmpfs rw,size=1000k 0 0
/dev/vda1 /storage ext4 rw,noatime 0 0
tmpfs /run tmpfs rw 0 0
/dev/vdb1 /storage/with\040space xfs rw 0 0
/dev/loop0 /sysroot/usr/lib/modules/6.1.0-57-amd64 squashfs ro,nosuid,nodev,relatime,errors=continue 0 0
10.0.2.2:/srv /mnt/nfs nfs4 rw 0 0
`
	if got, want := diskMounts(mounts), []string{"/storage", "/storage/with space"}; !slices.Equal(got, want) {
		t.Errorf("diskMounts = %q, want %q", got, want)
	}
	swaps := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/storage/swapfile                       file\t\t1048572\t\t0\t\t-2\n/dev/vdc\\0402 partition 1 0 -3\n"
	if got, want := parseSwaps(swaps), []string{"/storage/swapfile", "/dev/vdc 2"}; !slices.Equal(got, want) {
		t.Errorf("parseSwaps = %q, want %q", got, want)
	}
	if got := unescapeMount(`a\134b\04`); got != `a\b\04` {
		t.Errorf("unescapeMount = %q", got)
	}
}
