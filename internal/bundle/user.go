package bundle

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/trace"
)

// maxEtcFile bounds what is read of the image's /etc/passwd and /etc/group: they come
// from an untrusted image.
const maxEtcFile = 4 << 20

// readInRoot reads name (like "etc/passwd") inside rootfs with openat2(RESOLVE_IN_ROOT):
// symlinks in the image resolve inside its root, as they would in the container, never to
// the host's files. A missing file reads as empty.
func readInRoot(rootfs, name string) ([]byte, error) {
	rfd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: rootfs, Err: err}
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: "/" + name, Err: err}
	}
	f := os.NewFile(uintptr(fd), "/"+name)
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("image's /%s is not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxEtcFile+1))
	if len(b) > maxEtcFile {
		return nil, fmt.Errorf("image's /%s is larger than %d bytes", name, maxEtcFile)
	}
	return b, err
}

// etcEntry is one line of passwd or group: name:x:id:gid-or-members:…
type etcEntry struct {
	name string
	id   uint32
	rest []string
}

func parseEtc(b []byte, minFields int) []etcEntry {
	var out []etcEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxEtcFile)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < minFields {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		out = append(out, etcEntry{name: f[0], id: uint32(id), rest: f[3:]})
	}
	return out
}

// ResolveUser turns the image's User (user, uid, user:group, uid:gid, and mixes) into the
// OCI process user, the way Docker does: a name is looked up in the container's
// /etc/passwd (read inside rootfs), the primary gid is the passwd one unless a group is
// given, and the additional gids are the groups of /etc/group that list the user. A uid
// missing from passwd runs with gid 0. home is the passwd home dir ("" if unknown).
func ResolveUser(rootfs, u string) (user specs.User, home string, err error) {
	if u == "" {
		u = "0"
	}
	us, gs, hasGroup := strings.Cut(u, ":")
	hint := "fix the image's User, or its /etc/passwd and /etc/group"
	var passwd, group []etcEntry
	if rootfs != "" {
		b, err := readInRoot(rootfs, "etc/passwd")
		if err != nil {
			return user, "", cli.Hint(err, hint)
		}
		passwd = parseEtc(b, 7)
		if b, err = readInRoot(rootfs, "etc/group"); err != nil {
			return user, "", cli.Hint(err, hint)
		}
		group = parseEtc(b, 4)
	}
	var pw *etcEntry
	if uid, err := strconv.ParseUint(us, 10, 32); err == nil {
		user.UID = uint32(uid)
		for i := range passwd {
			if passwd[i].id == user.UID {
				pw = &passwd[i]
				break
			}
		}
	} else {
		for i := range passwd {
			if passwd[i].name == us {
				pw = &passwd[i]
				break
			}
		}
		if pw == nil {
			return user, "", cli.Errorf(hint, "image user %q: no such user in the image's /etc/passwd", us)
		}
		user.UID = pw.id
	}
	if pw != nil {
		gid, _ := strconv.ParseUint(pw.rest[0], 10, 32)
		user.GID = uint32(gid)
		home = pw.rest[2]
	}
	if hasGroup {
		if gid, err := strconv.ParseUint(gs, 10, 32); err == nil {
			user.GID = uint32(gid)
		} else {
			found := false
			for _, g := range group {
				if g.name == gs {
					user.GID, found = g.id, true
					break
				}
			}
			if !found {
				return user, "", cli.Errorf(hint, "image user %q: no such group in the image's /etc/group", u)
			}
		}
	}
	if pw != nil {
		// Supplementary groups: those listing the user by name, except the primary one.
		for _, g := range group {
			if g.id == user.GID {
				continue
			}
			for _, m := range strings.Split(g.rest[0], ",") {
				if m == pw.name {
					user.AdditionalGids = append(user.AdditionalGids, g.id)
					break
				}
			}
		}
	}
	if u != "0" {
		trace.Stepf("image user %q is uid %d gid %d, more gids %v (from the image's /etc/passwd and /etc/group)", u, user.UID, user.GID, user.AdditionalGids)
	}
	return user, home, nil
}
