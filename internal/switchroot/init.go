package switchroot

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// FindInit returns the init to execute in the tree at dir: name when it
// is set (ociboot.init=), else the first of /sbin/init and
// /lib/systemd/systemd that the tree has. The init must be a regular,
// executable file (through the tree's links), starting as an ELF binary
// or a script ("#!") does; the error names what was looked for.
func FindInit(dir, name string) (string, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("opening the new root %s: %w", dir, err)
	}
	defer unix.Close(root)
	if name != "" {
		if err := checkInit(root, name); err != nil {
			return "", fmt.Errorf("ociboot.init=%s: %w", name, err)
		}
		return name, nil
	}
	var tried []string
	for _, candidate := range []string{"/sbin/init", "/lib/systemd/systemd"} {
		err := checkInit(root, candidate)
		if err == nil {
			return candidate, nil
		}
		tried = append(tried, fmt.Sprintf("%s (%v)", candidate, err))
	}
	return "", fmt.Errorf("the image has no init: looked for %s; name it with ociboot.init=", strings.Join(tried, ", "))
}

// checkInit checks that name, in the tree open as root, can be executed.
func checkInit(root int, name string) error {
	if !strings.HasPrefix(name, "/") {
		return errors.New("not an absolute path")
	}
	// O_PATH first: opening a FIFO to read would wait for a writer, and
	// opening a device node would open the device.
	fd, err := openInRoot(root, name, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return errors.New("missing")
	}
	if err != nil {
		return err
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	unix.Close(fd)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return errors.New("not a regular file")
	}
	if st.Mode&0o111 == 0 {
		return fmt.Errorf("not executable (mode %04o)", st.Mode&0o7777)
	}
	fd, err = openInRoot(root, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	head := make([]byte, 4)
	n, _ := unix.Read(fd, head)
	head = head[:max(n, 0)]
	if !bytes.HasPrefix(head, []byte("\x7fELF")) && !bytes.HasPrefix(head, []byte("#!")) {
		return fmt.Errorf("neither an ELF binary nor a script (starts with %q)", head)
	}
	return nil
}
