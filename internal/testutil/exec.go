package testutil

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"
)

// Result is what a user sees of a command: its stdout, its stderr and its exit code.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs a built tool from bin/ with args and returns what a user would see; it fails
// the test only when the tool cannot be started at all.
func Run(t testing.TB, tool string, args ...string) Result {
	t.Helper()
	return RunCmd(t, exec.Command(Bin(t, tool), args...))
}

// RunCmd runs a prepared command (its Stdout and Stderr are set here) and returns what a
// user would see.
func RunCmd(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return Result{out.String(), errb.String(), code}
}
