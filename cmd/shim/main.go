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
container's stdout/stderr in containers/ID/log.json (Docker's json-file format), forwards
SIGTERM/SIGINT/SIGHUP/SIGQUIT, reaps it, and records its exit code in state.json.

  bundle=$(overlay --id web "$img")
  shim --id web -- nsrun --netns web --cgroup web "$bundle"
  shim ps; shim logs web; shim kill web; shim wait web; shim rm web

If the runtime fails, the runtime's error is printed and shim exits 1.`

type startCmd struct {
	ID      string   `name:"id" required:"" help:"Container id (names containers/ID and the run dir)."`
	Command []string `arg:"" passthrough:"" name:"CMD" help:"The runtime command line, after --."`
}

func (c *startCmd) Run(g *cli.Globals) error {
	args := c.Command
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	pid, err := shim.Start(c.ID, args)
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
	ID string `arg:"" help:"Container id."`
}

func (c *logsCmd) Run(g *cli.Globals) error { return shim.Logs(c.ID, os.Stdout, os.Stderr) }

type rmCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *rmCmd) Run(g *cli.Globals) error { return shim.Rm(c.ID) }

type shimCmd struct {
	cli.Globals
	Start startCmd `cmd:"" default:"withargs" help:"Start CMD under a detached supervisor and print the container's pid (the default: shim --id ID -- CMD…)."`
	Ps    psCmd    `cmd:"" help:"List containers: id, image, command, created, status, pid."`
	Kill  killCmd  `cmd:"" help:"Send a signal (default TERM) to the container's PID 1; a stopped container is a no-op."`
	Wait  waitCmd  `cmd:"" help:"Block until the container exits and print its exit code."`
	Logs  logsCmd  `cmd:"" help:"Print the container's output, stdout and stderr on their own streams."`
	Rm    rmCmd    `cmd:"" help:"Kill the container if running and remove its state, log and run dir (not the bundle: overlay rm)."`
}

func main() {
	shim.MaybeDaemon()
	var cmd shimCmd
	cli.Main("shim", description, &cmd, &cmd.Globals)
}
