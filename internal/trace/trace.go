// Package trace is the toolkit's teaching voice: with --trace or HARDWAY_TRACE=1 every
// kernel-level step is printed to stderr as it happens, followed by the standard command a
// learner could type to do the same thing by hand.
package trace

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

var (
	mu      sync.Mutex
	enabled           = envOn()
	tool              = "hardway"
	out     io.Writer = os.Stderr
)

func envOn() bool {
	v := os.Getenv("HARDWAY_TRACE")
	return v != "" && v != "0" && v != "false"
}

// Setup names the tool that prefixes each line and turns tracing on when asked.
func Setup(name string, on bool) {
	mu.Lock()
	defer mu.Unlock()
	tool = name
	if on {
		enabled = true
		// Children (nsrun under shim, the init stage of nsrun) inherit the wish to narrate.
		os.Setenv("HARDWAY_TRACE", "1")
	}
}

// SetEnabled turns narration on or off (tests use it).
func SetEnabled(on bool) {
	mu.Lock()
	defer mu.Unlock()
	enabled = on
}

// Enabled reports whether steps are narrated.
func Enabled() bool {
	mu.Lock()
	defer mu.Unlock()
	return enabled
}

// SetOutput redirects the narration (tests use it).
func SetOutput(w io.Writer) {
	mu.Lock()
	defer mu.Unlock()
	out = w
}

// Step narrates one step: what it is for, then the equivalent commands, each on its own
// indented line.
//
//	overlay: mount the merged root (3 layers, top first)
//	         mount -t overlay overlay -o lowerdir=…
func Step(what string, equivalent ...string) {
	mu.Lock()
	defer mu.Unlock()
	if !enabled {
		return
	}
	prefix := tool + ": "
	fmt.Fprintf(out, "%s%s\n", prefix, what)
	pad := strings.Repeat(" ", len(prefix))
	for _, e := range equivalent {
		if e != "" {
			fmt.Fprintf(out, "%s%s\n", pad, e)
		}
	}
}

// Stepf is Step with a formatted description and no equivalent command.
func Stepf(format string, args ...any) {
	Step(fmt.Sprintf(format, args...))
}

// Quote renders an argument for a shell line the learner could paste.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("-_./:=,@+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Cmd renders argv as a shell line.
func Cmd(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}
