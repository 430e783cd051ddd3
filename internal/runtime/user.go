package runtime

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ociboot/ociboot/internal/layer"
	"golang.org/x/sys/unix"
)

// execUser is who the container's process runs as.
type execUser struct {
	uid, gid uint32
	groups   []uint32 // supplementary groups
	home     string
}

// passwdEntry and groupEntry are the fields ociboot uses of the lines of
// /etc/passwd and /etc/group.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// resolveUser resolves "USER[:GROUP]" ("" means root) against the rootfs's
// /etc/passwd and /etc/group, following runc's rules: a user given by name
// must be in /etc/passwd; a user given by number may be missing from it (the
// group is then 0); a named group must be in /etc/group; without an explicit
// group, the supplementary groups are those of /etc/group that list the
// user's name.
func resolveUser(root int, spec string) (execUser, error) {
	userPart, groupPart, hasGroup := strings.Cut(firstNonEmpty(spec, "0"), ":")
	u := execUser{home: "/"}
	users, err := readPasswd(root)
	if err != nil {
		return u, err
	}
	var found *passwdEntry
	if n, ok := parseID(userPart); ok {
		u.uid = n
		for i := range users {
			if users[i].uid == n {
				found = &users[i]
				break
			}
		}
	} else {
		for i := range users {
			if users[i].name == userPart {
				found = &users[i]
				break
			}
		}
		if found == nil {
			return u, notFound(root, "user", userPart, "etc/passwd")
		}
	}
	if found != nil {
		u.uid, u.gid = found.uid, found.gid
		u.home = firstNonEmpty(found.home, "/")
	}

	if !hasGroup && found == nil {
		return u, nil
	}
	groups, err := readGroup(root)
	if err != nil {
		return u, err
	}
	if hasGroup {
		gid, err := resolveGroup(root, groups, groupPart)
		u.gid = gid
		return u, err
	}
	for _, g := range groups {
		for _, m := range g.members {
			if m == found.name {
				u.groups = append(u.groups, g.gid)
				break
			}
		}
	}
	return u, nil
}

func resolveGroup(root int, groups []groupEntry, name string) (uint32, error) {
	if n, ok := parseID(name); ok {
		return n, nil
	}
	for _, g := range groups {
		if g.name == name {
			return g.gid, nil
		}
	}
	return 0, notFound(root, "group", name, "etc/group")
}

// notFound says that the user or group name is not in file, or that the
// image has no such file.
func notFound(root int, what, name, file string) error {
	if ok, err := layer.ExistsInRoot(root, file); err == nil && !ok {
		return fmt.Errorf("no %s %q: the image has no /%s", what, name, file)
	}
	return fmt.Errorf("no %s %q in the image's /%s", what, name, file)
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// readPasswd reads the rootfs's /etc/passwd; a missing file gives no
// entries. Lines that do not parse are skipped, as the C library does.
func readPasswd(root int) ([]passwdEntry, error) {
	var users []passwdEntry
	err := readColonFile(root, "etc/passwd", func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		users = append(users, e)
	})
	return users, err
}

// readGroup reads the rootfs's /etc/group like readPasswd.
func readGroup(root int) ([]groupEntry, error) {
	var groups []groupEntry
	err := readColonFile(root, "etc/group", func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, ok := parseID(f[2])
		if !ok {
			return
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		groups = append(groups, e)
	})
	return groups, err
}

// readColonFile calls line for the colon-separated fields of each line of
// the file name in root that is neither blank nor a comment. A missing file
// is not an error.
func readColonFile(root int, name string, line func(fields []string)) error {
	data, err := layer.ReadFileInRoot(root, name)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading /%s of the image: %w", name, err)
	}
	for _, text := range strings.Split(string(data), "\n") {
		text = strings.TrimSpace(text)
		if text != "" && text[0] != '#' {
			line(strings.Split(text, ":"))
		}
	}
	return nil
}
