// Go's cgroup-aware GOMAXPROCS reads /proc/self/cgroup, mountinfo and a cgroup file at every
// start and re-checks them in the background: nsrun starts twice per container and does its
// work on one thread, so it goes without.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command nsrun is the container runtime stage of `docker run`, the hardway counterpart of
// runc: it runs an OCI bundle's process in new namespaces behind a pivot_root.
package main

import (
	"os"
	"slices"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/runtime"
)

const description = `Run a bundle: the runtime stage of 'docker run' (what runc does).

Reads a bundle dir (config.json + rootfs, as overlay prints it) from the argument or one line
of stdin, and starts the bundle's process as PID 1 of new mount, uts, ipc and pid namespaces
(and a new, empty network namespace unless --netns names one to join). Before the process
starts it is put in the container's cgroup (--cgroup), the root is made private, the mounts in
config.json are made inside the rootfs, /dev is filled, the hostname set, the root switched
with pivot_root, masked and read-only paths applied and the capabilities dropped.

Prints nothing of its own: the container's stdout and stderr are nsrun's. Its stdin is
/dev/null unless -i. nsrun forwards the signals it gets to the container and exits with the
container's exit code (128+signal when it was killed); 1 with an error when it could not
start it.

  netsetup add web; cgset create web
  overlay --id web IMAGE | nsrun --netns web --cgroup web
  shim --id web -- nsrun --netns web --cgroup web $HARDWAY_ROOT/containers/web
  nsrun exec web -- ps          # a second process in the running container

Without linux.seccomp in config.json the process runs under Docker's default seccomp
profile (annotation hardway.seccomp=unconfined turns it off); config.json fields nsrun does
not implement (hooks, apparmor, intelRdt, …) are refused. The run flags (--netns, --cgroup,
-t, -i, --console-socket, --userns, --no-pivot): nsrun run --help.

With -t the container gets a terminal as runc gives one: the init opens /dev/ptmx inside the
container (its own devpts instance), makes the slave its controlling terminal, stdio and
/dev/console, and sends the master out over a unix socket (SCM_RIGHTS): back to nsrun, which
relays it to its own terminal, or with --console-socket PATH to the receiver listening there
(what shim --tty does; a receiver written for runc works).`

type runCmd struct {
	Netns         string `help:"Join this network namespace instead of making an empty one: a container id (/run/netns/ID, see netsetup) or a path." placeholder:"ID|PATH"`
	Cgroup        string `help:"Put the container in cgroup hardway/ID before it starts (see cgset)." placeholder:"ID"`
	TTY           bool   `name:"tty" short:"t" help:"Give the container a terminal: a pty the init opens from the container's own devpts (tty inside names /dev/pts/0), relayed to nsrun's stdio; nsrun's own terminal goes raw, so ^C reaches the container."`
	ConsoleSocket string `name:"console-socket" help:"Send the terminal's master to this listening unix socket (SCM_RIGHTS, runc's protocol) instead of relaying it; nsrun then relays no stdio. Needs --tty or process.terminal in config.json." placeholder:"PATH"`
	Interactive   bool   `short:"i" help:"Keep the container's stdin attached to nsrun's (the bundle is then never read from stdin; no effect with --console-socket)."`
	Userns        bool   `help:"Run in a new user namespace, mapped with config.json's linux.uidMappings/gidMappings (also when linux.namespaces lists \"user\")."`
	NoPivot       bool   `help:"Switch the root with MS_MOVE and chroot instead of pivot_root (as runc --no-pivot; for a rootfs where pivot_root fails)."`
	Bundle        string `arg:"" optional:"" name:"BUNDLE" help:"Bundle dir (default: one line of stdin)."`
}

func (c *runCmd) Run(g *cli.Globals) error {
	bundle := c.Bundle
	if bundle == "" && (c.TTY || c.Interactive || c.ConsoleSocket != "") {
		err := cli.Errorf("pass the bundle as an argument", "no BUNDLE given: with -i or --tty stdin belongs to the container")
		runtime.ReportStartError(err)
		return err
	}
	bundle, err := cli.Input(bundle, "BUNDLE")
	if err != nil {
		runtime.ReportStartError(err)
		return err
	}
	return runtime.Run(runtime.Options{Bundle: bundle, Netns: c.Netns, Cgroup: c.Cgroup, TTY: c.TTY, Interactive: c.Interactive, Userns: c.Userns, NoPivot: c.NoPivot, ConsoleSocket: c.ConsoleSocket})
}

type execCmd struct {
	Pid           int      `help:"Join the namespaces of this process instead of a container's." placeholder:"PID"`
	TTY           bool     `name:"tty" short:"t" help:"Give the command a terminal, from the container's own devpts."`
	ConsoleSocket string   `name:"console-socket" help:"Send the terminal's master to this listening unix socket instead of relaying it (needs --tty)." placeholder:"PATH"`
	Interactive   bool     `short:"i" help:"Keep the command's stdin attached to nsrun's."`
	Env           []string `short:"e" sep:"none" help:"Set an environment variable (K=V, or K to pass nsrun's own value)." placeholder:"K=V"`
	Workdir       string   `short:"w" help:"Working directory inside the container (default: the container's)." placeholder:"DIR"`
	ID            string   `arg:"" optional:"" name:"ID" help:"A running container (see shim ps)."`
	Cmd           []string `kong:"-"`
}

func (c *execCmd) Run(g *cli.Globals) error {
	if len(c.Cmd) == 0 {
		return cli.Errorf("nsrun exec ID -- CMD…", "no command given")
	}
	if (c.ID == "") == (c.Pid == 0) {
		return cli.Errorf("nsrun exec ID -- CMD… or nsrun exec --pid PID -- CMD…", "give a container id or --pid, not both")
	}
	return runtime.Exec(runtime.ExecOptions{ID: c.ID, Pid: c.Pid, TTY: c.TTY, Interactive: c.Interactive, Env: c.Env, Cwd: c.Workdir, Args: c.Cmd, ConsoleSocket: c.ConsoleSocket})
}

type nsrunCmd struct {
	cli.Globals
	Run  runCmd  `cmd:"" default:"withargs" help:"Run a bundle's process as PID 1 of a new container (the default): nsrun [flags] BUNDLE."`
	Exec execCmd `cmd:"" help:"Run a command in a running container's namespaces, root, cgroup and credentials: nsrun exec ID|--pid PID -- CMD…"`
}

func main() {
	runtime.TakeSyncPipe()
	runtime.MaybeInit()
	var cmd nsrunCmd
	// For exec, everything after the first -- is the command, kept away from kong.
	for i, a := range os.Args {
		if a == "--" {
			if slices.Contains(os.Args[1:i], "exec") {
				cmd.Exec.Cmd = append([]string{}, os.Args[i+1:]...)
				os.Args = os.Args[:i]
			}
			break
		}
	}
	cli.Main("nsrun", description, &cmd, &cmd.Globals)
}
