// Command shim is the supervisor stage of `docker run`, the hardway counterpart of
// containerd-shim and conmon: it keeps a container running after its caller is gone.
package main

import (
	"fmt"
	"os"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/shim"
)

const description = `Supervise a container: the shim stage of 'docker run' (what containerd-shim and conmon do).

'shim --id ID -- CMD…' records containers/ID/state.json, starts a detached supervisor in its
own session (it outlives the caller), which runs CMD (the runtime, typically
'nsrun --netns ID --cgroup ID BUNDLE'), learns the container's pid from the runtime's sync
pipe (HARDWAY_SYNCPIPE), and prints that host pid on stdout. The supervisor keeps the
container's stdout/stderr in containers/ID/log.json (Docker's json-file format; with
--log-format cri, containers/ID/container.log in kubelet's format), forwards
SIGTERM/SIGINT/SIGHUP/SIGQUIT (one that comes before the container exists is delivered
once it does), reaps it and every orphan, and records its exit code (128+signal) and
whether the OOM killer struck its cgroup (oomKilled) in state.json. An attach socket in
the run dir ($HARDWAY_RUN/ID/attach) streams the output live to 'shim attach'.

With --tty the container's stdio is a terminal instead of pipes, made as runc makes it: the
supervisor listens on a console socket ($HARDWAY_RUN/ID/console.sock) and adds
'--tty --console-socket PATH' to the nsrun command line; the container's init opens a pty
from the container's own devpts (tty inside prints /dev/pts/0) and sends the master there
(SCM_RIGHTS). The supervisor keeps it, logs what comes out of it as stdout (as Docker logs a
-t container) and types what 'shim attach' sends into it (end of input is ^D); an attach
from a terminal runs that terminal raw and passes its window size on.

  bundle=$(overlay --id web "$img")
  shim --id web -- nsrun --netns web --cgroup web "$bundle"
  shim --id sh --tty -- nsrun "$bundle"        # the container's stdio is a terminal
  shim ps; shim logs -f web; shim attach web; shim kill web; shim wait web; shim rm web

runc (or crun) works too, detached: 'shim --id ID [--tty] -- runc run -d -b BUNDLE ID'; the
supervisor adds --pid-file (and --console-socket) after 'run' and, once runc has exited,
supervises the container it inherited.

If the runtime fails, the runtime's error is printed and shim exits 1.`

type startCmd struct {
	ID          string   `name:"id" required:"" help:"Container id (names containers/ID and the run dir)."`
	LogFormat   string   `name:"log-format" default:"json-file" enum:"json-file,cri" help:"Log format: json-file (Docker's, containers/ID/log.json) or cri (<time> <stream> <P|F> <line>, containers/ID/container.log)."`
	Interactive bool     `short:"i" help:"Give the container a stdin pipe that 'shim attach' writes to (give the runtime -i too)."`
	TTY         bool     `name:"tty" short:"t" help:"Give the container a terminal: the runtime gets --console-socket (nsrun also --tty) and the container's init sends the master of a pty from its own devpts there; its output is logged as stdout, 'shim attach' types into it (implies -i)."`
	Command     []string `arg:"" passthrough:"" name:"CMD" help:"The runtime command line, after --."`
}

func (c *startCmd) Run(g *cli.Globals) error {
	args := c.Command
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	pid, err := shim.Start(c.ID, args, shim.Options{LogFormat: c.LogFormat, Interactive: c.Interactive, TTY: c.TTY})
	if err != nil {
		return err
	}
	fmt.Println(pid)
	return nil
}

type psCmd struct{}

func (psCmd) Run(g *cli.Globals) error { return shim.Ps(os.Stdout) }

type killCmd struct {
	ID     string `arg:"" help:"Container id."`
	Signal string `arg:"" optional:"" default:"TERM" help:"Signal: a name (TERM, KILL, SIGHUP) or a number."`
}

func (c *killCmd) Run(g *cli.Globals) error {
	sig, err := shim.ParseSignal(c.Signal)
	if err != nil {
		return err
	}
	return shim.Kill(c.ID, sig)
}

type waitCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *waitCmd) Run(g *cli.Globals) error {
	code, err := shim.Wait(c.ID)
	if err != nil {
		return err
	}
	fmt.Println(code)
	return nil
}

type logsCmd struct {
	ID     string `arg:"" help:"Container id."`
	Follow bool   `short:"f" help:"Keep printing new output until the container exits."`
}

func (c *logsCmd) Run(g *cli.Globals) error { return shim.Logs(c.ID, c.Follow, os.Stdout, os.Stderr) }

type attachCmd struct {
	ID      string `arg:"" help:"Container id."`
	NoStdin bool   `name:"no-stdin" help:"Do not send this terminal's stdin (only watch the output)."`
}

func (c *attachCmd) Run(g *cli.Globals) error {
	var in *os.File
	if !c.NoStdin {
		in = os.Stdin
	}
	code, err := shim.Attach(c.ID, in, os.Stdout, os.Stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return &cli.ExitError{Code: code}
	}
	return nil
}

type rmCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *rmCmd) Run(g *cli.Globals) error { return shim.Rm(c.ID) }

type shimCmd struct {
	cli.Globals
	Start  startCmd  `cmd:"" default:"withargs" help:"Start CMD under a detached supervisor and print the container's pid (the default: shim --id ID -- CMD…)."`
	Ps     psCmd     `cmd:"" help:"List containers: id, image, command, created, status, pid."`
	Kill   killCmd   `cmd:"" help:"Send a signal (default TERM) to the container's PID 1; a stopped container is a no-op."`
	Wait   waitCmd   `cmd:"" help:"Block until the container exits and print its exit code."`
	Logs   logsCmd   `cmd:"" help:"Print the container's output, stdout and stderr on their own streams (-f: follow until it exits)."`
	Attach attachCmd `cmd:"" help:"Stream a running container's output live (and send stdin to it if it was started with -i or --tty; with --tty a terminal here goes raw and lends its size); exits with its exit code."`
	Rm     rmCmd     `cmd:"" help:"Kill the container if running and remove its state, log and run dir (not the bundle: overlay rm)."`
}

func main() {
	shim.MaybeDaemon()
	var cmd shimCmd
	cli.Main("shim", description, &cmd, &cmd.Globals)
}
