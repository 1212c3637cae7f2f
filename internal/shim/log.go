package shim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
)

// maxLogLine is where Docker splits a long line into partial messages (and where we split
// a CRI line into P records).
const maxLogLine = 16 << 10

// Log formats: Docker's json-file driver, and the CRI format kubelet reads (conmon's
// k8s-file).
const (
	FormatJSON = "json-file"
	FormatCRI  = "cri"
)

// CRILogFile is where a container started with --log-format cri logs, beside log.json.
func CRILogFile(id string) string { return filepath.Join(state.ContainerDir(id), "container.log") }

// CheckFormat rejects a log format the shim does not write.
func CheckFormat(f string) error {
	if f != FormatJSON && f != FormatCRI {
		return cli.Errorf("use json-file or cri", "unknown log format %q", f)
	}
	return nil
}

// logEntry is one line of Docker's json-file log.
type logEntry struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

// ctrLog cuts the container's output into lines and appends them to the log file in one of
// the two formats. Each stream keeps its own unfinished line.
type ctrLog struct {
	mu      sync.Mutex
	f       *os.File
	format  string
	pending map[string][]byte
	last    string // the last stderr line, for a runtime that dies without reporting
}

func openLog(id, format string) (*ctrLog, error) {
	path := state.LogFile(id)
	if format == FormatCRI {
		path = CRILogFile(id)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, err
	}
	return &ctrLog{f: f, format: format, pending: map[string][]byte{}}, nil
}

func (l *ctrLog) Close() error { return l.f.Close() }

// feed takes a chunk as it came from the pipe and logs every line it completes; a line
// that grows past 16 KiB goes out in 16 KiB pieces, as Docker does.
func (l *ctrLog) feed(stream string, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	buf := append(l.pending[stream], b...)
	for {
		i := bytes.IndexByte(buf, '\n')
		switch {
		case i >= 0 && i < maxLogLine:
			l.write(stream, buf[:i+1], false)
			buf = buf[i+1:]
			continue
		case len(buf) >= maxLogLine:
			l.write(stream, buf[:maxLogLine], true)
			buf = buf[maxLogLine:]
			continue
		}
		break
	}
	l.pending[stream] = append([]byte(nil), buf...)
}

// flush logs a last line that has no newline, as it is, once its stream is closed.
func (l *ctrLog) flush(stream string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.pending[stream]; len(b) > 0 {
		l.write(stream, b, true)
	}
	delete(l.pending, stream)
}

// write appends one record; partial says the line goes on in the next one.
func (l *ctrLog) write(stream string, b []byte, partial bool) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var rec []byte
	if l.format == FormatCRI {
		tag := "F"
		if partial {
			tag = "P"
		}
		rec = fmt.Appendf(nil, "%s %s %s %s\n", now, stream, tag, bytes.TrimSuffix(b, []byte("\n")))
	} else {
		rec, _ = json.Marshal(logEntry{Log: string(b), Stream: stream, Time: now})
		rec = append(rec, '\n')
	}
	l.f.Write(rec)
	if stream == "stderr" {
		if s := strings.TrimSpace(string(b)); s != "" {
			l.last = s
		}
	}
}

func (l *ctrLog) lastStderr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// parseRecord reads one log line of either format back into its stream and text.
func parseRecord(line []byte) (stream, text string, ok bool) {
	if len(line) > 0 && line[0] == '{' {
		var e logEntry
		if json.Unmarshal(line, &e) != nil {
			return "", "", false
		}
		return e.Stream, e.Log, true
	}
	// <time> <stream> <P|F> <text>
	f := strings.SplitN(strings.TrimSuffix(string(line), "\n"), " ", 4)
	if len(f) < 3 {
		return "", "", false
	}
	text = ""
	if len(f) == 4 {
		text = f[3]
	}
	if f[2] == "F" {
		text += "\n"
	}
	return f[1], text, true
}
