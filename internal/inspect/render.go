package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"golang.org/x/term"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/network"
	"github.com/hardway/hardway/internal/state"
)

// UseColor is whether f gets styled output: a terminal, and NO_COLOR not set.
func UseColor(f *os.File) bool {
	return os.Getenv("NO_COLOR") == "" && term.IsTerminal(int(f.Fd()))
}

// WriteJSON prints the view as one JSON document.
func WriteJSON(w io.Writer, v *View) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// styles colours the view on a terminal; in plain mode every style is the identity.
type styles struct {
	title, head, mark, ctr, dim func(string) string
}

func newStyles(w io.Writer, color bool) styles {
	if !color {
		id := func(s string) string { return s }
		return styles{id, id, id, id, id}
	}
	r := lipgloss.NewRenderer(w)
	r.SetColorProfile(termenv.ANSI256)
	st := func(s lipgloss.Style) func(string) string { return func(x string) string { return s.Render(x) } }
	return styles{
		title: st(r.NewStyle().Bold(true).Underline(true)),
		head:  st(r.NewStyle().Bold(true).Foreground(lipgloss.Color("12"))),
		mark:  st(r.NewStyle().Foreground(lipgloss.Color("214"))),
		ctr:   st(r.NewStyle().Bold(true).Foreground(lipgloss.Color("10"))),
		dim:   st(r.NewStyle().Faint(true)),
	}
}

// Render prints the view as text, styled with lipgloss when color is set.
func Render(w io.Writer, v *View, color bool) error {
	s := newStyles(w, color)
	var b strings.Builder
	title := fmt.Sprintf("pid %d", v.Pid)
	if v.Container != "" {
		title = fmt.Sprintf("container %s (pid %d)", v.Container, v.Pid)
	}
	fmt.Fprintf(&b, "%s\n\n", s.title(title))
	if v.Processes != nil {
		renderTree(&b, s, v)
	}
	if v.Namespaces != nil {
		renderNamespaces(&b, s, v)
	}
	if v.Mounts != nil {
		renderMounts(&b, s, v)
	}
	if v.Cgroup != nil {
		renderCgroup(&b, s, v)
	}
	if v.Network != nil {
		renderNetwork(&b, s, v.Network)
	}
	if v.Image != nil || v.State != nil {
		renderImage(&b, s, v)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func short(args string) string {
	if len(args) > 100 {
		return args[:97] + "..."
	}
	return args
}

func renderTree(b *strings.Builder, s styles, v *View) {
	top := "the process"
	if v.ShimPid != 0 {
		top = "the shim"
	}
	fmt.Fprintf(b, "%s (PID 1 down to %s and below; [..] marks namespaces that differ from the parent's)\n",
		s.head("PROCESSES"), top)
	for _, p := range v.Processes {
		label := fmt.Sprintf("%s(%d)", short(p.Args), p.Pid)
		if p.PidInside != 0 {
			label = fmt.Sprintf("%s(%d, pid %d inside)", short(p.Args), p.Pid, p.PidInside)
		}
		if p.Ancestor {
			label = s.dim(label)
		}
		if p.Container {
			label = s.ctr(label)
		}
		mark := ""
		if len(p.NSChange) > 0 {
			mark = " " + s.mark("["+strings.Join(p.NSChange, ",")+"]")
		}
		arrow := ""
		if p.Container {
			arrow = s.ctr("   <- the container")
		}
		fmt.Fprintf(b, "  %s%s%s%s\n", strings.Repeat("  ", p.Depth), label, mark, arrow)
	}
	b.WriteString("\n")
}

func renderNamespaces(b *strings.Builder, s styles, v *View) {
	fmt.Fprintf(b, "%s (pid %d against the host's: %s)\n", s.head("NAMESPACES"), v.Pid, v.HostNSFrom)
	fmt.Fprintf(b, "  %-7s %-22s %-22s %s\n", "TYPE", "PROCESS", "HOST", "")
	for _, n := range v.Namespaces {
		st := "shared with the host"
		if n.New {
			st = s.mark("NEW (own namespace)")
		}
		fmt.Fprintf(b, "  %-7s %-22d %-22d %s\n", n.Type, n.Ino, n.Host, st)
	}
	b.WriteString("\n")
}

func renderMounts(b *strings.Builder, s styles, v *View) {
	fmt.Fprintf(b, "%s (/proc/%d/mountinfo, %d entries)\n", s.head("MOUNTS"), v.Pid, len(v.Mounts))
	for _, g := range Groups {
		first := true
		for _, m := range v.Mounts {
			if m.Group != g {
				continue
			}
			if first {
				fmt.Fprintf(b, "  %s:\n", g)
				first = false
			}
			line := fmt.Sprintf("    %-24s %-9s %s", m.Point, m.FSType, m.Source)
			if m.Root != "/" {
				line += "  from " + m.Root
			}
			line += "  (" + m.Options + ")"
			if m.Note != "" && m.Group != GroupRoot {
				line += "  " + s.dim(m.Note)
			}
			b.WriteString(line + "\n")
			for i, l := range m.Lower {
				fmt.Fprintf(b, "      lowerdir %d: %s%s\n", i+1, l, s.dim(shortLink(l)))
			}
			if m.Upper != "" {
				fmt.Fprintf(b, "      %-10s %s\n", "upperdir:", m.Upper)
				fmt.Fprintf(b, "      %-10s %s\n", "workdir:", m.Work)
			}
		}
	}
	b.WriteString("\n")
}

func renderCgroup(b *strings.Builder, s styles, v *View) {
	fmt.Fprintf(b, "%s (/proc/%d/cgroup)\n", s.head("CGROUP"), v.Pid)
	for _, l := range v.Cgroup.Membership {
		fmt.Fprintf(b, "  %s\n", l)
	}
	if v.Cgroup.Info != nil {
		var sb strings.Builder
		cgroup.WriteInfo(&sb, v.Cgroup.Info)
		for _, l := range strings.Split(strings.TrimSpace(sb.String()), "\n") {
			if !strings.HasPrefix(l, "dirs:") && !strings.HasPrefix(l, " ") {
				fmt.Fprintf(b, "  %s\n", l)
			}
		}
	}
	b.WriteString("\n")
}

func renderNetwork(b *strings.Builder, s styles, in *network.Info) {
	fmt.Fprintf(b, "%s (netns %s)\n", s.head("NETWORK"), in.Netns)
	var sb strings.Builder
	network.WriteInfo(&sb, in)
	for _, l := range strings.Split(strings.TrimSpace(sb.String()), "\n") {
		fmt.Fprintf(b, "  %s\n", l)
	}
	b.WriteString("\n")
}

func renderImage(b *strings.Builder, s styles, v *View) {
	fmt.Fprintf(b, "%s\n", s.head("IMAGE AND STATE"))
	if im := v.Image; im != nil {
		fmt.Fprintf(b, "  %-10s %s\n", "image:", im.Reference)
		if im.Error != "" {
			fmt.Fprintf(b, "  %-10s %s\n", "", s.dim("("+im.Error+")"))
		}
		if im.Resolved != "" {
			fmt.Fprintf(b, "  %-10s %s\n", "resolved:", im.Resolved)
			fmt.Fprintf(b, "  %-10s %s\n", "config:", im.Config)
			fmt.Fprintf(b, "  layers (bottom first):\n")
			for i, l := range im.Layers {
				fmt.Fprintf(b, "    %d. %s  %d bytes  (diff_id %s)\n", i+1, l.Digest, l.Size, l.DiffID)
			}
		}
	}
	if c := v.State; c != nil {
		st := c.Status
		if c.ExitCode != nil {
			st += fmt.Sprintf(" (exit code %d)", *c.ExitCode)
		}
		if c.OOMKilled {
			st += ", killed by the OOM killer"
		}
		fmt.Fprintf(b, "  %-10s %s\n", "status:", st)
		ts := func(k string, t *time.Time) {
			if t != nil && !t.IsZero() {
				fmt.Fprintf(b, "  %-10s %s\n", k, t.Format(time.RFC3339Nano))
			}
		}
		ts("created:", &c.Created)
		ts("started:", c.Started)
		ts("finished:", c.Finished)
	}
	b.WriteString("\n")
}

// shortLink says where a relative lowerdir (overlay's short name l/XXXX, resolved from the
// layer store's dir) points: the layer's diff dir.
func shortLink(l string) string {
	if filepath.IsAbs(l) {
		return ""
	}
	if t, err := os.Readlink(filepath.Join(state.OverlayDir(), l)); err == nil {
		return "  -> " + filepath.Clean(filepath.Join(state.OverlayDir(), filepath.Dir(l), t))
	}
	return ""
}
