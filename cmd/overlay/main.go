// Command overlay mounts a container's root filesystem and writes its OCI bundle.
package main

import (
	"fmt"
	"os"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/state"
)

const description = `Make a container's root filesystem and OCI bundle from an unpacked image.

overlay --id ID IMAGE [-- CMD…] reads IMAGE (NAME@sha256:…) from the argument or one line of
stdin and makes $HARDWAY_ROOT/containers/ID: an init/ layer (Docker's <id>-init: mount points
/proc /sys /dev/pts /dev/shm, placeholder /etc/hosts /etc/hostname /etc/resolv.conf,
/etc/mtab -> /proc/mounts) over the image's layers (top first), all mounted under a fresh
upper/ dir on rootfs/ with overlayfs (the new mount API, one fsconfig lowerdir+ per layer,
else mount(2) with short l/ names; index=off, redirect_dir=nofollow, metacopy=off; at most
500 lower dirs, the kernel's limit). Then hostname, hosts, resolv.conf and config.json: the
OCI runtime spec built from the image config (CMD after -- replaces the image's Cmd, as
docker run does; a named User is looked up in the image's own /etc/passwd and /etc/group).
--env, --workdir, --user and --volume are docker run's -e, -w, -u and -v: they override the
image config in config.json (a --volume is a bind mount, rbind+rprivate, +ro with :ro).
--volatile mounts with overlayfs' volatile option (no syncs of the upper dir) for a
container that is thrown away when it exits. Prints the bundle dir on stdout. Running it
again for the same ID and IMAGE changes nothing and prints the same dir, even with other
--env/--workdir/--user/--volume/--hostname/-t/--volatile or CMD: the first run's config.json
stays (overlay rm ID first to change them); a failure
leaves nothing behind.

overlay rm ID unmounts the rootfs and removes the container's dir.

Example:
  pull 127.0.0.1:5000/library/busybox:latest | unpack | overlay --id box -- sh -c 'echo hi'
  overlay rm box`

type createCmd struct {
	ID        string   `name:"id" required:"" help:"Container id (letters, digits, '_', '.', '-')."`
	Hostname  string   `help:"Hostname inside the container (default: the id)."`
	Tty       bool     `short:"t" help:"The process will get a terminal (sets terminal: true and TERM)."`
	UserXattr bool     `name:"userxattr" env:"HARDWAY_UNPACK_USERXATTR" help:"Mount the layers unpack --userxattr made, with the userxattr option (user.overlay.* xattrs: the form an overlay in a user namespace reads)."`
	Volatile  bool     `help:"A throwaway container (docker-run --rm passes it, as podman run --rm does): overlayfs' volatile option, so nothing ever syncs the upper dir, and the bundle's files written without fsync. Not meant to survive a crash of the machine."`
	Env       []string `short:"e" sep:"none" placeholder:"K=V" help:"Environment variable, over the image's (docker run -e; K alone takes K from this environment). Repeatable."`
	Workdir   string   `short:"w" placeholder:"DIR" help:"Working dir inside, absolute (docker run -w; default: the image's WorkingDir, else /)."`
	User      string   `short:"u" placeholder:"U[:G]" help:"User to run as: uid[:gid] or name[:group] from the image's /etc/passwd and /etc/group (docker run -u; default: the image's User)."`
	Volume    []string `short:"v" sep:"none" placeholder:"HOST:CTR[:ro]" help:"Bind-mount existing host path HOST on CTR, both absolute; :ro read-only (docker run -v). Repeatable."`
	Image     string   `arg:"" optional:"" help:"Image handle NAME@sha256:… (default: one line of stdin)."`
	Cmd       []string `kong:"-"`
}

func (c *createCmd) Run(g *cli.Globals) error {
	h, err := cli.Input(c.Image, "IMAGE")
	if err != nil {
		return err
	}
	if err := state.ValidID(c.ID); err != nil {
		return err
	}
	im, err := layout.Resolve(h)
	if err != nil {
		return err
	}
	dir, err := overlay.Create(im, overlay.Options{
		ID: c.ID, Hostname: c.Hostname, Cmd: c.Cmd, Tty: c.Tty, UserXattr: c.UserXattr, Volatile: c.Volatile,
		Env: c.Env, WorkingDir: c.Workdir, User: c.User, Volumes: c.Volume,
	})
	if err != nil {
		return err
	}
	fmt.Println(dir)
	return nil
}

type rmCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *rmCmd) Run(g *cli.Globals) error { return overlay.Remove(c.ID) }

type overlayCmd struct {
	cli.Globals
	Create createCmd `cmd:"" default:"withargs" help:"Mount the rootfs and write the bundle (the default): overlay --id ID IMAGE [-- CMD…]."`
	Rm     rmCmd     `cmd:"" help:"Unmount the rootfs and remove the container's dir."`
}

func main() {
	var c overlayCmd
	// Everything after the first -- is the container's command, kept away from kong so that
	// an IMAGE read from stdin is not confused with the command's first word.
	for i, a := range os.Args {
		if a == "--" {
			c.Create.Cmd = append([]string{}, os.Args[i+1:]...)
			os.Args = os.Args[:i]
			break
		}
	}
	cli.Main("overlay", description, &c, &c.Globals)
}
