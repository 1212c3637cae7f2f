package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/fsutil"
	"github.com/hardway/hardway/internal/state"
)

// lockPath is the flock that serialises writers of index.json.
func lockPath() string { return filepath.Join(state.LockDir(), "oci.lock") }

// Init creates the layout (oci-layout, an empty index.json, blobs/sha256) if it is not
// there yet, and leaves an existing one alone.
func Init() error {
	dir := state.OCIDir()
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	removeStaleTemps(filepath.Join(dir, "blobs", "sha256"))
	lk, err := fsutil.LockFile(lockPath())
	if err != nil {
		return err
	}
	defer lk.Unlock()
	// Every writer of these two files holds the lock we hold now, so a temp copy of either
	// is the leftover of a writer killed before its rename.
	for _, pat := range []string{".index.json.tmp-*", "." + ocispec.ImageLayoutFile + ".tmp-*"} {
		stale, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range stale {
			os.Remove(f)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); errors.Is(err, fs.ErrNotExist) {
		b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, ocispec.ImageLayoutFile), b, 0o644); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, fs.ErrNotExist) {
		idx, _ := ReadIndex()
		return writeIndex(idx)
	}
	return nil
}

// staleAfter is how long a temporary blob file may go unwritten before it is taken for the
// leftover of a killed pull (a live download touches its file with every write).
const staleAfter = time.Hour

// partialStaleAfter is how long the partial download of a killed pull is kept for a later
// pull to resume from.
const partialStaleAfter = 7 * 24 * time.Hour

func removeStaleTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(e.Name(), ".tmp-") && time.Since(fi.ModTime()) > staleAfter:
			os.Remove(filepath.Join(dir, e.Name()))
		case strings.HasPrefix(e.Name(), ".partial-") && time.Since(fi.ModTime()) > partialStaleAfter:
			removeUnlocked(filepath.Join(dir, e.Name()))
		}
	}
}

// removeUnlocked removes a partial download unless a pull holds it.
func removeUnlocked(path string) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		os.Remove(path)
	}
}

// HasBlob reports whether the store holds blob d of the given size (size < 0: any) with
// content that hashes to d. A blob that does not verify is reported absent, so it is
// fetched again and replaced.
func HasBlob(d digest.Digest, size int64) bool {
	f, err := os.Open(BlobPath(d))
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || (size >= 0 && st.Size() != size) {
		return false
	}
	v := d.Verifier()
	if _, err := io.Copy(v, f); err != nil {
		return false
	}
	return v.Verified()
}

// VerifyError says that content did not match its descriptor.
type VerifyError struct {
	Digest digest.Digest
	Msg    string
}

func (e *VerifyError) Error() string { return fmt.Sprintf("blob %s: %s", e.Digest, e.Msg) }

// WriteBlob streams r into the store as blob d, checking that it is exactly size bytes
// (size < 0: any) and hashes to d. The content goes to a temporary file in the blob dir and
// is renamed under its digest only once verified, so a failed or interrupted write never
// leaves a file under blobs/<alg>/<hex>. It returns the number of bytes written.
//
// Blobs are not fsynced before the rename (crane does not either; skopeo and containerd
// do): waiting for the disk was up to a fifth of a pull's time. kill -9 cannot tell: the page
// cache outlives the process. A power loss can leave a blob, or a partial download, short,
// empty or holding zeros (ext4 may commit the rename before the delayed data). Every reader
// hashes what it reads (HasBlob, ReadBlob, unpack; pull --missing checks sizes), so such
// bytes are refused, never used, and the next pull fetches them again. index.json, which
// names images, is still fsynced (fsutil.WriteFileAtomic). docs/pull.md has the numbers.
func WriteBlob(d digest.Digest, size int64, r io.Reader) (int64, error) {
	if err := d.Validate(); err != nil {
		return 0, err
	}
	final := BlobPath(d)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(dir, ".tmp-"+d.Encoded()[:12]+"-*")
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := d.Algorithm().Hash()
	src := r
	if size >= 0 {
		// One byte more than promised shows a body that is too long.
		src = io.LimitReader(r, size+1)
	}
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		return n, err
	}
	if size >= 0 && n != size {
		return n, &VerifyError{d, fmt.Sprintf("got %d bytes, the descriptor says %d", n, size)}
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		return n, &VerifyError{d, fmt.Sprintf("content hashes to %s", got)}
	}
	if err := f.Chmod(0o644); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return n, err
	}
	ok = true
	return n, nil
}

// PutBlob stores b (a manifest, an index, a config) byte for byte and returns its digest.
func PutBlob(b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	if HasBlob(d, int64(len(b))) {
		return d, nil
	}
	_, err := WriteBlob(d, int64(len(b)), bytes.NewReader(b))
	return d, err
}

// Tag records image manifest desc in index.json under refName
// (org.opencontainers.image.ref.name), replacing any older entry of the same name. It is a
// no-op when the entry is already there as asked.
//
// OCI-only readers (skopeo 1.9, umoci 0.4) look a name up among OCI image manifests only, so
// a Docker schema2 manifest is not what refName names: refName gets its OCI translation
// (ToOCI, stored first), annotated hardway.converted-from with desc's digest, and desc
// itself is kept as an entry of no name, so it stays reachable (umoci gc) and its digest
// stays the image's handle. That unnamed entry goes when no name leads to it any more.
func Tag(desc ocispec.Descriptor, refName string) error {
	_, err := TagImage(desc, refName)
	return err
}

// TagImage is Tag, returning the entry refName now names.
func TagImage(desc ocispec.Descriptor, refName string) (ocispec.Descriptor, error) {
	if err := Init(); err != nil {
		return ocispec.Descriptor{}, err
	}
	// The translation is a blob like any other: in place before the name that leads to it.
	named, keep, err := ociView(desc)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	lk, err := fsutil.LockFile(lockPath())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer lk.Unlock()
	idx, err := ReadIndex()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	named.Annotations = copyAnnotations(named.Annotations)
	named.Annotations[ocispec.AnnotationRefName] = refName
	haveKeep := keep == nil
	for _, m := range idx.Manifests {
		if keep != nil && isKept(m, keep.Digest) {
			haveKeep = true
		}
	}
	kept := idx.Manifests[:0:0]
	var replaced []digest.Digest // Docker manifests the old entry of refName translated
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == refName {
			if sameDescriptor(m, named) && haveKeep {
				return named, nil
			}
			if from := convertedFrom(m); from != "" {
				replaced = append(replaced, from)
			}
			continue
		}
		kept = append(kept, m)
	}
	if !haveKeep {
		kept = append(kept, *keep)
	}
	kept = append(kept, named)
	for _, from := range replaced {
		kept = dropUnreferenced(kept, from)
	}
	idx.Manifests = kept
	return named, writeIndex(idx)
}

// dropUnreferenced removes the unnamed entry of Docker manifest d unless a named entry
// still translates it. (A translation whose name another tool took over, as skopeo copy
// to an existing name leaves it, does not count.)
func dropUnreferenced(ms []ocispec.Descriptor, d digest.Digest) []ocispec.Descriptor {
	for _, m := range ms {
		if convertedFrom(m) == d && m.Annotations[ocispec.AnnotationRefName] != "" {
			return ms
		}
	}
	out := ms[:0]
	for _, m := range ms {
		if !isKept(m, d) {
			out = append(out, m)
		}
	}
	return out
}

func writeIndex(idx *ocispec.Index) error {
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(state.OCIDir(), "index.json"), append(b, '\n'), 0o644)
}

func copyAnnotations(a map[string]string) map[string]string {
	out := make(map[string]string, len(a)+1)
	for k, v := range a {
		out[k] = v
	}
	return out
}

func sameDescriptor(a, b ocispec.Descriptor) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
