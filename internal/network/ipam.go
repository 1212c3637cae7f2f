package network

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// The address book is a dir with one file per allocated address, named by the address and
// holding the container id, as CNI's host-local plugin keeps it. Files are claimed
// exclusively, and every change happens under the network lock, so two adds never get the same address.

// lookupIP finds the address held by id ("" if none).
func lookupIP(id string) (net.IP, error) {
	ents, err := os.ReadDir(state.IPAMDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		ip := net.ParseIP(e.Name())
		if ip == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(state.IPAMDir(), e.Name()))
		if err == nil && strings.TrimSpace(string(b)) == id {
			return ip.To4(), nil
		}
	}
	return nil, nil
}

// allocated counts the addresses in use.
func allocated() int {
	ents, _ := os.ReadDir(state.IPAMDir())
	n := 0
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			n++
		}
	}
	return n
}

// allocate returns id's address, reserving the lowest free one of subnet if it has none.
// The gateway (the first address), the network and broadcast addresses are never given.
func allocate(id string, subnet *net.IPNet) (net.IP, error) {
	if ip, err := lookupIP(id); err != nil || ip != nil {
		return ip, err
	}
	if err := os.MkdirAll(state.IPAMDir(), 0o755); err != nil {
		return nil, err
	}
	sweepClaims()
	// The id is written to a temporary file first and hard-linked to the address's name:
	// link(2) fails if the name exists, so the claim is exclusive, and a crash never leaves
	// an address file without its owner in it.
	tmp, err := os.CreateTemp(state.IPAMDir(), ".claim-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(id)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, werr
	}
	base := binary.BigEndian.Uint32(subnet.IP.To4())
	ones, bits := subnet.Mask.Size()
	size := uint32(1) << uint(bits-ones)
	for off := uint32(2); off < size-1; off++ {
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, base+off)
		p := filepath.Join(state.IPAMDir(), ip.String())
		err := os.Link(tmp.Name(), p)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		trace.Step("reserve "+ip.String()+" for "+id, "echo "+id+" > "+p)
		return ip, nil
	}
	return nil, cli.Errorf("remove stopped containers with: netsetup del ID", "no free address left in %s", subnet)
}

// sweepClaims removes the claim files of adds killed mid-claim (kill -9 skips their
// deferred removal). Called under the network lock, so no claim in the dir is alive.
func sweepClaims() {
	tmps, _ := filepath.Glob(filepath.Join(state.IPAMDir(), ".claim-*"))
	for _, p := range tmps {
		os.Remove(p)
	}
}

// release frees id's address; none held is fine.
func release(id string) error {
	ip, err := lookupIP(id)
	if err != nil || ip == nil {
		return err
	}
	p := filepath.Join(state.IPAMDir(), ip.String())
	trace.Step("release "+ip.String(), "rm "+p)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// ContainerIP is the address netsetup gave the container.
func ContainerIP(id string) (net.IP, error) {
	ip, err := lookupIP(id)
	if err != nil {
		return nil, err
	}
	if ip == nil {
		return nil, cli.Errorf("run: netsetup add "+id, "container %s has no network address", id)
	}
	return ip, nil
}
