package layer

import (
	"errors"
	// go-digest only knows the algorithms a binary links in.
	_ "crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression of a layer blob, from its media type (OCI and Docker names).
type Compression int

const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

// CompressionOf maps a layer media type to its compression.
func CompressionOf(mediaType string) (Compression, error) {
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck
		"application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
		return Gzip, nil
	case ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		"application/vnd.docker.image.rootfs.diff.tar.zstd":
		return Zstd, nil
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerNonDistributable, //nolint:staticcheck
		"application/vnd.docker.image.rootfs.diff.tar":
		return Uncompressed, nil
	}
	if strings.HasSuffix(mediaType, "+gzip") {
		return Gzip, nil
	}
	if strings.HasSuffix(mediaType, "+zstd") {
		return Zstd, nil
	}
	return 0, fmt.Errorf("unsupported layer media type %q", mediaType)
}

func (c Compression) String() string {
	return [...]string{"tar", "gzip", "zstd"}[c]
}

// readOnly hides WriterTo: pgzip's WriteTo reports io.EOF as an error (klauspost/pgzip#38),
// so io.Copy must go through Read.
type readOnly struct{ io.Reader }

// Result is what ExtractBlob verified and did.
type Result struct {
	Stats
	Compression Compression
}

// ExtractBlob extracts the layer blob at blobPath into dir and verifies, on the same single
// pass, the blob's digest and size against desc (the compressed bytes) and the sha256 of the
// uncompressed tar stream against diffID. Bytes after the tar's end marker are drained so
// they are hashed too. dir holds garbage when an error is returned: the caller extracts
// into a temporary dir and throws it away.
// budget caps what may be written (nil: DefaultMaxSize).
func ExtractBlob(dir, blobPath string, desc ocispec.Descriptor, diffID digest.Digest, budget *Budget) (Result, error) {
	return ExtractBlobWith(dir, blobPath, desc, diffID, Options{Budget: budget})
}

// ExtractBlobWith is ExtractBlob with options: the budget, the xattr form of opaque dirs and
// a progress writer fed with the compressed bytes as they are read.
func ExtractBlobWith(dir, blobPath string, desc ocispec.Descriptor, diffID digest.Digest, o Options) (Result, error) {
	res := Result{}
	comp, err := CompressionOf(desc.MediaType)
	if err != nil {
		return res, err
	}
	res.Compression = comp
	f, err := os.Open(blobPath)
	if err != nil {
		return res, err
	}
	defer f.Close()

	blobDigester := desc.Digest.Algorithm().Digester()
	var hashed io.Writer = blobDigester.Hash()
	if o.Progress != nil {
		hashed = io.MultiWriter(hashed, o.Progress)
	}
	counted := &countingReader{r: io.TeeReader(f, hashed)}

	var tarStream io.Reader
	switch comp {
	case Gzip:
		// 1 MiB blocks, 4 read ahead: pgzip decompresses ahead of tar on another core, with
		// bounded memory per layer even when layers are extracted in parallel.
		zr, err := pgzip.NewReaderN(counted, 1<<20, 4)
		if err != nil {
			return res, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		defer zr.Close()
		tarStream = readOnly{zr}
	case Zstd:
		zr, err := zstd.NewReader(counted)
		if err != nil {
			return res, fmt.Errorf("layer %s: zstd: %w", desc.Digest, err)
		}
		defer zr.Close()
		tarStream = readOnly{zr}
	default:
		tarStream = counted
	}
	diffDigester := diffID.Algorithm().Digester()
	tarStream = io.TeeReader(tarStream, diffDigester.Hash())

	st, applyErr := ApplyWith(dir, tarStream, o)
	res.Stats = st
	if errors.Is(applyErr, ErrTooBig) {
		// Draining a bomb would decompress all of it: stop here, bounded.
		return res, applyErr
	}
	// Hash what follows the end-of-archive marker, then whatever the decompressor left of
	// the blob, so both digests cover every byte.
	if _, err := io.Copy(io.Discard, readOnly{tarStream}); err != nil && applyErr == nil {
		applyErr = err
	}
	if _, err := io.Copy(io.Discard, readOnly{counted}); err != nil && applyErr == nil {
		applyErr = err
	}
	if got := blobDigester.Digest(); got != desc.Digest {
		return res, fmt.Errorf("layer blob %s hashes to %s (the store is corrupt: remove the blob and pull again)", desc.Digest, got)
	}
	if desc.Size > 0 && counted.n != desc.Size {
		return res, fmt.Errorf("layer blob %s is %d bytes, the manifest says %d", desc.Digest, counted.n, desc.Size)
	}
	if applyErr != nil {
		return res, fmt.Errorf("layer %s: %w", desc.Digest, applyErr)
	}
	if got := diffDigester.Digest(); got != diffID {
		return res, fmt.Errorf("layer %s: uncompressed content hashes to %s but the image config's diff_id is %s", desc.Digest, got, diffID)
	}
	return res, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
