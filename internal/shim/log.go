package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// maxLogLine is where Docker splits a long line into partial messages.
const maxLogLine = 16 << 10

// logEntry is one line of Docker's json-file log.
type logEntry struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

// jsonLog appends the container's output to log.json, one JSON object per line.
type jsonLog struct {
	mu   sync.Mutex
	f    *os.File
	last string // the last stderr line, for a runtime that dies without reporting
}

func openLog(path string) (*jsonLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, err
	}
	return &jsonLog{f: f}, nil
}

func (l *jsonLog) Close() error { return l.f.Close() }

func (l *jsonLog) write(stream string, b []byte) {
	line, _ := json.Marshal(logEntry{Log: string(b), Stream: stream, Time: time.Now().UTC().Format(time.RFC3339Nano)})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.Write(append(line, '\n'))
	if stream == "stderr" {
		if s := strings.TrimSpace(string(b)); s != "" {
			l.last = s
		}
	}
}

// copy logs r line by line until EOF: a line over 16 KiB goes out in 16 KiB pieces, a last
// line without a newline as it is.
func (l *jsonLog) copy(r io.ReadCloser, stream string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			l.write(stream, b)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (l *jsonLog) lastStderr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}
