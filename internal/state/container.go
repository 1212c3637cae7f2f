package state

import (
	"encoding/json"
	"os"
	"time"

	"github.com/hardway/hardway/internal/fsutil"
)

// Container statuses, as docker ps names them.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusExited  = "exited"
)

// Container is containers/ID/state.json: what shim records as the container's life goes on,
// the daemonless counterpart of the State part of Docker's config.v2.json.
type Container struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"`
	Bundle    string     `json:"bundle"`
	Image     string     `json:"image,omitempty"`
	Command   []string   `json:"command,omitempty"`
	ShimPid   int        `json:"shimPid,omitempty"`
	Pid       int        `json:"pid,omitempty"`
	Created   time.Time  `json:"created"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
	ExitCode  *int       `json:"exitCode,omitempty"`
	OOMKilled bool       `json:"oomKilled,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// ReadContainer loads containers/ID/state.json.
func ReadContainer(id string) (*Container, error) {
	b, err := os.ReadFile(StateFile(id))
	if err != nil {
		return nil, err
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// WriteContainer replaces containers/ID/state.json atomically.
func WriteContainer(c *Container) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(StateFile(c.ID), append(b, '\n'), 0o644)
}
