// Package overlay keeps the layer store (one extracted layer per chain id, laid out like
// Docker's overlay2 driver) and makes containers from it: an overlay mount of the image's
// layers under a fresh upper dir, plus an OCI bundle around it.
package overlay

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/fsutil"
	"github.com/hardway/hardway/internal/layer"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
	"github.com/hardway/hardway/internal/ui"
)

// LayerDir is where the layer with this chain id lives: diff/, link, lower.
func LayerDir(chainID digest.Digest) string { return LayerDirFor(chainID, false) }

// userXattrSuffix keys the user.-form copy of a layer apart from the trusted.-form one: the
// two differ on disk (opaque dirs), so one must never be mounted as the other.
const userXattrSuffix = "-userxattr"

// userXattrMarker is the file beside diff/ that says the layer is in the user. form and must
// be mounted with the userxattr option.
const userXattrMarker = "userxattr"

// LayerDirFor is LayerDir for either xattr form of the layer.
func LayerDirFor(chainID digest.Digest, userXattr bool) string {
	name := chainID.Encoded()
	if userXattr {
		name += userXattrSuffix
	}
	return filepath.Join(state.OverlayDir(), name)
}

// LinkDir holds the short symlinks l/<SHORT> -> ../<chain-id>/diff that keep the overlay
// mount options short.
func LinkDir() string { return filepath.Join(state.OverlayDir(), "l") }

func lockLayers() (*fsutil.Lock, error) {
	return fsutil.LockFile(filepath.Join(state.LockDir(), "layers.lock"))
}

const tmpPrefix = ".tmp-"

// Layer is one unpacked layer of an image.
type Layer struct {
	Digest  digest.Digest // the layer blob in the manifest
	ChainID digest.Digest
	Link    string // short name: the layer's diff is overlay/l/<Link>
	// UserXattr: opaque dirs carry user.overlay.opaque, so the overlay must be mounted with
	// userxattr (a user namespace's mount); otherwise trusted.overlay.opaque.
	UserXattr bool
}

// Dir is where the layer lives.
func (l Layer) Dir() string { return LayerDirFor(l.ChainID, l.UserXattr) }

// UnpackOptions bound the work of Unpack.
type UnpackOptions struct {
	// MaxSize caps the bytes the image's layers may extract, all together (0: the
	// $HARDWAY_UNPACK_MAX_SIZE or layer.DefaultMaxSize).
	MaxSize int64
	// Jobs is how many layers are extracted at once (0: the number of CPUs, at least 2).
	Jobs int
	// UserXattr extracts opaque dirs as user.overlay.opaque, for overlays mounted with the
	// userxattr option inside a user namespace; these layers live apart from the others.
	UserXattr bool
	// Progress, when set (a terminal), gets a bar per layer: compressed bytes read.
	Progress io.Writer
}

// Unpack is UnpackWith default options.
func Unpack(im *layout.Image) ([]Layer, error) { return UnpackWith(im, UnpackOptions{}) }

// UnpackWith extracts every layer of the image that the store does not hold yet, several at
// once, and returns them all, bottom first. Each layer is verified (blob digest and size,
// diff_id) in its own temporary dir before it is renamed into place, so a dir under
// overlay/<chain-id> is always complete, whatever order the layers finish in.
func UnpackWith(im *layout.Image, o UnpackOptions) ([]Layer, error) {
	if o.MaxSize == 0 {
		var err error
		if o.MaxSize, err = layer.MaxSizeFromEnv(); err != nil {
			return nil, cli.Hint(err, "")
		}
	}
	if o.Jobs <= 0 {
		o.Jobs = max(2, runtime.NumCPU())
	}
	if err := os.MkdirAll(LinkDir(), 0o700); err != nil {
		return nil, err
	}
	if err := cleanStale(); err != nil {
		return nil, err
	}
	chains := layout.ChainIDs(im.Config.RootFS.DiffIDs)
	if len(chains) != len(im.Manifest.Layers) {
		return nil, fmt.Errorf("image %s: %d layers but %d diff_ids in its config", im.Handle(), len(im.Manifest.Layers), len(chains))
	}
	n := len(chains)
	out := make([]Layer, n)
	todo := make([]bool, n)
	prog := ui.New(o.Progress)
	bars := make([]*ui.Bar, n)
	// First the short names, bottom up: a layer's lower file lists the ones below it, so
	// new layers get theirs before any extraction starts.
	for i, desc := range im.Manifest.Layers {
		out[i] = Layer{Digest: desc.Digest, ChainID: chains[i], UserXattr: o.UserXattr}
		bars[i] = prog.Add(shortDigest(desc.Digest)+" layer", desc.Size)
		link, err := readLink(out[i].Dir())
		switch {
		case err == nil:
			trace.Stepf("layer %d/%d %s: already unpacked in %s", i+1, n, desc.Digest, out[i].Dir())
			out[i].Link = link
			bars[i].Set("already unpacked")
		case errors.Is(err, fs.ErrNotExist):
			if out[i].Link, err = newShortName(); err != nil {
				return nil, err
			}
			todo[i] = true
		default:
			return nil, err
		}
	}
	lowers := make([]string, n) // computed before any goroutine may change a Link
	for i := range n {
		lowers[i] = lowersOf(out[:i])
	}
	budget := layer.NewBudget(o.MaxSize)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.Jobs)
	for i := range n {
		if !todo[i] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// A layer that fails does not stop the others: each good one is kept (it is
			// content-addressed, the next image may share it) and the budget bounds the work.
			link, err := unpackLayer(im, i, out[i], lowers[i], layer.Options{Budget: budget, UserXattr: o.UserXattr, Progress: bars[i]})
			if err != nil {
				bars[i].Set("failed")
				errs[i] = err
				return
			}
			bars[i].Set("done")
			out[i].Link = link
		}()
	}
	wg.Wait()
	prog.Finish()
	for _, err := range errs { // the bottom-most failure, the one a learner fixes first
		if err != nil {
			return nil, err
		}
	}
	for i, l := range out {
		if err := ensureShortLink(l); err != nil {
			return nil, err
		}
		// A concurrent unpack of the same layer may have won with its own short name:
		// the lower files written with ours are then corrected.
		if todo[i] && i > 0 {
			if err := fixLower(l, lowersOf(out[:i])); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// lowersOf is the lower file's content for a layer above these: their l/ names, top first.
func lowersOf(below []Layer) string {
	names := make([]string, len(below))
	for i, l := range below {
		names[len(below)-1-i] = "l/" + l.Link
	}
	return strings.Join(names, ":")
}

func fixLower(l Layer, want string) error {
	p := filepath.Join(l.Dir(), "lower")
	if b, err := os.ReadFile(p); err == nil && string(b) == want {
		return nil
	}
	return fsutil.WriteFileAtomic(p, []byte(want), 0o644)
}

// Layers returns the image's layers, bottom first, failing on the first one not unpacked.
func Layers(im *layout.Image) ([]Layer, error) { return LayersFor(im, false) }

// LayersFor is Layers for either xattr form (userXattr: as unpack --userxattr left them).
func LayersFor(im *layout.Image, userXattr bool) ([]Layer, error) {
	chains := layout.ChainIDs(im.Config.RootFS.DiffIDs)
	var out []Layer
	for i, desc := range im.Manifest.Layers {
		l := Layer{Digest: desc.Digest, ChainID: chains[i], UserXattr: userXattr}
		link, err := readLink(l.Dir())
		if errors.Is(err, fs.ErrNotExist) {
			cmd := "unpack "
			if userXattr {
				cmd += "--userxattr "
			}
			return nil, cli.Errorf("run: "+cmd+im.Handle(), "layer %s is not unpacked", desc.Digest)
		}
		if err != nil {
			return nil, err
		}
		l.Link = link
		if err := ensureShortLink(l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// readLink reads the short name of the layer in dir; fs.ErrNotExist when it is not there.
func readLink(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "diff")); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "link"))
	if err != nil {
		return "", err
	}
	link := strings.TrimSpace(string(b))
	if link == "" || strings.ContainsAny(link, "/:.") {
		return "", fmt.Errorf("%s/link: bad short name %q", dir, link)
	}
	return link, nil
}

// ensureShortLink (re)creates l/<SHORT> -> ../<chain-id>/diff: a crash between the rename
// of a layer and its link leaves a layer without one.
func ensureShortLink(l Layer) error {
	p := filepath.Join(LinkDir(), l.Link)
	want := filepath.Join("..", filepath.Base(l.Dir()), "diff")
	if got, err := os.Readlink(p); err == nil && got == want {
		return nil
	}
	lk, err := lockLayers()
	if err != nil {
		return err
	}
	defer lk.Unlock()
	os.Remove(p)
	trace.Step("short link for the layer (keeps mount options short)", trace.Cmd("ln", "-s", want, p))
	return os.Symlink(want, p)
}

func newShortName() (string, error) {
	for {
		b := make([]byte, 16)
		rand.Read(b)
		s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b) // 26 chars
		if _, err := os.Lstat(filepath.Join(LinkDir(), s)); errors.Is(err, fs.ErrNotExist) {
			return s, nil
		}
	}
}

// unpackLayer extracts layer i into a temporary dir, verifies it and renames it into place
// with the short name l.Link. It returns the short name the layer ends up with.
func unpackLayer(im *layout.Image, i int, l Layer, lowers string, lo layer.Options) (string, error) {
	chain, short := l.ChainID, l.Link
	desc := im.Manifest.Layers[i]
	diffID := im.Config.RootFS.DiffIDs[i]
	blob := layout.BlobPath(desc.Digest)
	if _, err := os.Stat(blob); err != nil {
		return "", cli.Errorf("run: pull "+im.Handle(), "layer blob %s is not in the store", desc.Digest)
	}
	final := l.Dir()

	// The temp dir is created and flocked under the store lock, so cleanStale (which also
	// runs under it) never takes a dir that an unpack is still filling.
	lk, err := lockLayers()
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(state.OverlayDir(), tmpPrefix+chain.Encoded()[:12]+"-")
	var tmpLock *os.File
	if err == nil {
		tmpLock, err = lockDir(tmp, false)
	}
	lk.Unlock()
	if err != nil {
		return "", err
	}
	defer tmpLock.Close()
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	diff := filepath.Join(tmp, "diff")
	if err := os.Mkdir(diff, 0o755); err != nil {
		return "", err
	}
	comp, _ := layer.CompressionOf(desc.MediaType)
	decomp := map[layer.Compression]string{layer.Gzip: "gzip -dc ", layer.Zstd: "zstd -dc ", layer.Uncompressed: "cat "}[comp]
	trace.Step(fmt.Sprintf("extract layer %d/%d %s (%s, %d bytes)", i+1, len(im.Manifest.Layers), desc.Digest, comp, desc.Size),
		decomp+trace.Quote(blob)+" | tar -x --xattrs --xattrs-include='*' --numeric-owner -C "+trace.Quote(diff))
	if _, err = layer.ExtractBlobWith(diff, blob, desc, diffID, lo); err != nil {
		if errors.Is(err, layer.ErrTooBig) {
			return "", cli.Hint(err, "raise "+layer.EnvMaxSize+" or unpack --max-size if the image is really that big")
		}
		return "", err
	}
	trace.Step("blob digest verified: "+desc.Digest.String(), "sha256sum "+trace.Quote(blob))
	trace.Step("diff_id verified: "+diffID.String(), decomp+trace.Quote(blob)+" | sha256sum")

	if err := fsutil.WriteFileAtomic(filepath.Join(tmp, "link"), []byte(short), 0o644); err != nil {
		return "", err
	}
	if l.UserXattr {
		trace.Step("mark the layer as user.-xattr form: mount it with the userxattr option",
			trace.Cmd("touch", filepath.Join(tmp, userXattrMarker)))
		if err := fsutil.WriteFileAtomic(filepath.Join(tmp, userXattrMarker), nil, 0o644); err != nil {
			return "", err
		}
	}
	if lowers != "" {
		if err := fsutil.WriteFileAtomic(filepath.Join(tmp, "lower"), []byte(lowers), 0o644); err != nil {
			return "", err
		}
	}

	lk, err = lockLayers()
	if err != nil {
		return "", err
	}
	defer lk.Unlock()
	if _, err := os.Stat(final); err == nil {
		// Another unpack of the same layer won the race: use its copy.
		lk.Unlock()
		return readLink(final)
	}
	trace.Step("move the verified layer into place", trace.Cmd("mv", tmp, final))
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	done = true
	return short, nil
}

// lockDir flocks a directory; with nonblock it fails at once when someone holds it.
func lockDir(dir string, nonblock bool) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if nonblock {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// cleanStale removes temporary dirs that an interrupted unpack left behind: one whose
// flock is free has no living owner.
func cleanStale() error {
	ents, err := os.ReadDir(state.OverlayDir())
	if err != nil {
		return err
	}
	lk, err := lockLayers()
	if err != nil {
		return err
	}
	defer lk.Unlock()
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		p := filepath.Join(state.OverlayDir(), e.Name())
		f, err := lockDir(p, true)
		if err != nil {
			continue // in use, or already gone
		}
		trace.Step("remove a half-extracted layer left by an interrupted unpack", trace.Cmd("rm", "-rf", p))
		err = os.RemoveAll(p)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// shortDigest is a digest cut for people: sha256:0123456789ab.
func shortDigest(d digest.Digest) string {
	if s := d.String(); len(s) > len(d.Algorithm())+13 {
		return s[:len(d.Algorithm())+13]
	}
	return d.String()
}
