package runtime

import (
	"encoding/json"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SyncPipeEnv names the fd on which nsrun reports the container's start to its supervisor,
// like conmon's _OCI_SYNCPIPE: one JSON line, {"pid":N} or {"error":"…"}.
const SyncPipeEnv = "HARDWAY_SYNCPIPE"

var syncPipe *os.File

// TakeSyncPipe claims the sync pipe named by HARDWAY_SYNCPIPE, if any. It runs first thing
// in main: the fd is made close-on-exec and the variable unset so the container inherits
// neither.
func TakeSyncPipe() {
	v, ok := os.LookupEnv(SyncPipeEnv)
	if !ok {
		return
	}
	os.Unsetenv(SyncPipeEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return // not open
	}
	unix.CloseOnExec(fd)
	syncPipe = os.NewFile(uintptr(fd), "syncpipe")
}

// reportSync writes the one message and closes the pipe; later calls do nothing.
func reportSync(msg map[string]any) {
	if syncPipe == nil {
		return
	}
	b, _ := json.Marshal(msg)
	syncPipe.Write(append(b, '\n'))
	syncPipe.Close()
	syncPipe = nil
}

// ReportStartError tells a waiting supervisor that the container could not be started.
func ReportStartError(err error) {
	if err != nil {
		reportSync(map[string]any{"error": errText(err)})
	}
}
