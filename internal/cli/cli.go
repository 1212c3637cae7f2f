// Package cli holds what every hardway binary shares at its front door: the kong setup, the
// --trace flag, reading the handle from an argument or one line of stdin, and the one-line
// error convention `TOOL: error: WHAT (HINT)` with exit 1 (usage errors exit 2).
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"golang.org/x/term"

	"github.com/hardway/hardway/internal/trace"
)

// Globals are the flags every tool has.
type Globals struct {
	Trace bool `help:"Narrate each kernel-level step and its equivalent shell command on stderr (also HARDWAY_TRACE=1)."`
}

// HintError is an error with advice on what to do about it.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string {
	if e.Hint == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + " (" + e.Hint + ")"
}

func (e *HintError) Unwrap() error { return e.Err }

// Hint wraps err with a hint; a nil err stays nil.
func Hint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: hint}
}

// Errorf builds an error with a hint: Errorf("run: unpack IMAGE", "layer %s is not unpacked", d).
func Errorf(hint, format string, args ...any) error {
	return &HintError{Err: fmt.Errorf(format, args...), Hint: hint}
}

// ExitError asks the front end to exit with Code without printing anything more (nsrun
// passes the container's exit code through it).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Main parses the command line into cmd, sets up tracing and runs the selected command.
// It never returns. The tool's name prefixes every error and trace line.
func Main(name, description string, cmd any, globals *Globals, opts ...kong.Option) {
	opts = append([]kong.Option{
		kong.Name(name),
		kong.Description(description),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: false}),
		kong.Exit(func(code int) { os.Exit(code) }),
	}, opts...)
	parser, err := kong.New(cmd, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", name, err)
		os.Exit(1)
	}
	ctx, err := parser.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: error: %v (see: %s --help)\n", name, err, name)
		os.Exit(2)
	}
	trace.Setup(name, globals != nil && globals.Trace)
	if err := ctx.Run(globals); err != nil {
		os.Exit(Report(name, err))
	}
	os.Exit(0)
}

// Report prints err in the one-line convention and returns the exit code to use.
func Report(name string, err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(os.Stderr, "%s: error: %s\n", name, msg)
	return 1
}

// Input returns the handle a stage works on: the argument when given, else one line read
// from stdin when stdin is not a terminal. what names the handle in the error ("IMAGE").
func Input(arg, what string) (string, error) {
	return input(arg, what, os.Stdin)
}

func input(arg, what string, stdin *os.File) (string, error) {
	if arg = strings.TrimSpace(arg); arg != "" {
		return arg, nil
	}
	if stdin == nil || term.IsTerminal(int(stdin.Fd())) {
		return "", Errorf("pass it as an argument or pipe it in on stdin", "no %s given", what)
	}
	line, err := readLine(stdin)
	if err != nil {
		return "", Errorf("pass it as an argument or pipe it in on stdin", "no %s given: reading stdin: %v", what, err)
	}
	if line == "" {
		return "", Errorf("the previous stage printed nothing: check its error above", "no %s given: stdin was empty", what)
	}
	return line, nil
}

// readLine reads exactly one line without buffering past it, so that whatever follows on
// stdin is left for the container.
func readLine(r io.Reader) (string, error) {
	var sb strings.Builder
	b := make([]byte, 1)
	for sb.Len() < 64<<10 {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			sb.WriteByte(b[0])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimSpace(sb.String()), nil
}

// IsTerminal reports whether f is a terminal (progress bars and colour only then).
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// PrintJSON writes v to stdout as one indented JSON document (the --json form of a view).
func PrintJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
