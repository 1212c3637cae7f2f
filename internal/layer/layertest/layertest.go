// Package layertest builds small images for tests: a tiny tar builder, and a writer that
// puts an image (layers, config, manifest, index.json entry) straight into the OCI layout
// of the test's state root, so unpack and overlay can be tested without a registry.
package layertest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/layout"
)

// Epoch is the mtime every built entry gets unless told otherwise.
var Epoch = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// Entry is one tar entry; build them with Dir, File, Symlink, … and adjust with the methods.
type Entry struct {
	Hdr  tar.Header
	Body string
}

func hdr(name string, typ byte, mode int64) tar.Header {
	return tar.Header{Name: name, Typeflag: typ, Mode: mode, ModTime: Epoch, Format: tar.FormatPAX}
}

// Dir is a directory entry (mode 0755).
func Dir(name string) Entry { return Entry{Hdr: hdr(name, tar.TypeDir, 0o755)} }

// File is a regular file (mode 0644) holding body.
func File(name, body string) Entry {
	h := hdr(name, tar.TypeReg, 0o644)
	h.Size = int64(len(body))
	return Entry{Hdr: h, Body: body}
}

// Symlink is a symlink name -> target.
func Symlink(name, target string) Entry {
	h := hdr(name, tar.TypeSymlink, 0o777)
	h.Linkname = target
	return Entry{Hdr: h}
}

// Hardlink is a hardlink name to the entry target.
func Hardlink(name, target string) Entry {
	h := hdr(name, tar.TypeLink, 0o644)
	h.Linkname = target
	return Entry{Hdr: h}
}

// Char is a character device.
func Char(name string, major, minor int64) Entry {
	h := hdr(name, tar.TypeChar, 0o666)
	h.Devmajor, h.Devminor = major, minor
	return Entry{Hdr: h}
}

// Fifo is a named pipe.
func Fifo(name string) Entry { return Entry{Hdr: hdr(name, tar.TypeFifo, 0o644)} }

// Whiteout deletes name of the layers below (the .wh. file Docker writes).
func Whiteout(name string) Entry {
	return File(filepath.Join(filepath.Dir(name), ".wh."+filepath.Base(name)), "")
}

// Opaque hides everything the layers below have in dir.
func Opaque(dir string) Entry { return File(filepath.Join(dir, ".wh..wh..opq"), "") }

// Mode sets the permission bits (incl. setuid 0o4000, setgid 0o2000, sticky 0o1000).
func (e Entry) Mode(m int64) Entry { e.Hdr.Mode = m; return e }

// Owner sets uid and gid.
func (e Entry) Owner(uid, gid int) Entry { e.Hdr.Uid, e.Hdr.Gid = uid, gid; return e }

// MTime sets the modification time.
func (e Entry) MTime(t time.Time) Entry { e.Hdr.ModTime = t; return e }

// Xattr adds an extended attribute as a PAX SCHILY.xattr record.
func (e Entry) Xattr(k, v string) Entry {
	m := map[string]string{}
	for a, b := range e.Hdr.PAXRecords {
		m[a] = b
	}
	m["SCHILY.xattr."+k] = v
	e.Hdr.PAXRecords = m
	return e
}

// Gzip compresses b as a gzip stream.
func Gzip(t testing.TB, b []byte) []byte { return compress(t, "+gzip", b) }

// Tar builds an uncompressed tar stream of the entries, in order.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Layer is one layer of a test image.
type Layer struct {
	Tar []byte
	// MediaType picks the compression (…tar, …tar+gzip, …tar+zstd, or Docker's names);
	// empty means OCI gzip.
	MediaType string
	// DiffID overrides the diff_id written into the config (to test verification).
	DiffID digest.Digest
	// Blob, when set, is stored as the layer blob as is (a corrupt stream, say), instead of
	// Tar compressed by MediaType.
	Blob []byte
}

// Image is a test image; Write stores it.
type Image struct {
	Name   string // repository, e.g. 127.0.0.1:5000/test/img (default test.local/NAME-of-test)
	Tag    string // default "latest"
	Config ocispec.ImageConfig
	Layers []Layer
}

// Write stores the image in the OCI layout of the current state root (state.OCIDir) and
// returns its handle NAME@sha256:…, what pull would print.
func (im Image) Write(t testing.TB) string {
	t.Helper()
	if im.Name == "" {
		im.Name = "test.local/" + strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
				return r
			}
			return '-'
		}, strings.ToLower(t.Name()))
	}
	if im.Tag == "" {
		im.Tag = "latest"
	}
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, l := range im.Layers {
		mt := l.MediaType
		if mt == "" {
			mt = ocispec.MediaTypeImageLayerGzip
		}
		blob := l.Blob
		if blob == nil {
			blob = compress(t, mt, l.Tar)
		}
		layers = append(layers, writeBlob(t, mt, blob))
		d := l.DiffID
		if d == "" {
			d = digest.FromBytes(l.Tar)
		}
		diffIDs = append(diffIDs, d)
	}
	cfg := ocispec.Image{
		Created:  &Epoch,
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   im.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	cb, _ := json.Marshal(cfg)
	man := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    writeBlob(t, ocispec.MediaTypeImageConfig, cb),
		Layers:    layers,
	}
	mb, _ := json.Marshal(man)
	md := writeBlob(t, ocispec.MediaTypeImageManifest, mb)
	if err := layout.Tag(md, im.Name+":"+im.Tag); err != nil {
		t.Fatal(err)
	}
	return im.Name + "@" + md.Digest.String()
}

func compress(t testing.TB, mediaType string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch {
	case strings.HasSuffix(mediaType, "gzip"):
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
	case strings.HasSuffix(mediaType, "zstd"):
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(b)
		zw.Close()
	default:
		return b
	}
	return buf.Bytes()
}

func writeBlob(t testing.TB, mediaType string, b []byte) ocispec.Descriptor {
	t.Helper()
	if err := layout.Init(); err != nil {
		t.Fatal(err)
	}
	d, err := layout.PutBlob(b)
	if err != nil {
		t.Fatal(err)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}
